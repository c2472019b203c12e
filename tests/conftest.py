import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """Generated streams go to one per-session cache, never to the user's."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("CL_LAB_CACHE")
    os.environ["CL_LAB_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CL_LAB_CACHE", None)
    else:
        os.environ["CL_LAB_CACHE"] = old


@pytest.fixture(scope="session")
def mini():
    from cl_lab.data import load_stream

    return load_stream("synth-mini")


@pytest.fixture
def fast():
    """Runner settings for quick tests."""
    return {"epochs": 1, "batch_size": 32, "progress": False, "pretrained": None}
