"""Where generated data, downloads and default run directories live."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CL_LAB_CACHE"
DATA_ENV = "CL_LAB_DATA"


def cache_dir() -> Path:
    """Cache root for generated streams: ``$CL_LAB_CACHE`` or ``~/.cache/cl_lab``."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else home() / ".cache" / "cl_lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def home() -> Path:
    """The user's home directory; an ``OSError`` naming ``CL_LAB_CACHE`` when there is none (HOME
    unset and a user id without a passwd entry, as in some containers)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        raise OSError(f"there is no home directory (HOME is unset and user id {os.getuid()} has no passwd entry); "
                      f"set {CACHE_ENV} (and {DATA_ENV} for real datasets) to a writable directory") from None


def data_dir() -> Path:
    """Root for downloaded real datasets: ``$CL_LAB_DATA`` or ``<cache>/datasets``."""
    root = os.environ.get(DATA_ENV)
    return Path(root).expanduser() if root else cache_dir() / "datasets"
