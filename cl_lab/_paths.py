"""Where generated data, downloads and default run directories live."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CL_LAB_CACHE"
DATA_ENV = "CL_LAB_DATA"


def cache_dir() -> Path:
    """Cache root for generated streams: ``$CL_LAB_CACHE`` or ``~/.cache/cl_lab``."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "cl_lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Root for downloaded real datasets: ``$CL_LAB_DATA`` or ``<cache>/datasets``."""
    root = os.environ.get(DATA_ENV)
    return Path(root).expanduser() if root else cache_dir() / "datasets"
