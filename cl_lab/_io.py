"""Atomic file writes: a reader never sees a half-written file, even after ``kill -9``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


MAGIC = b"cl_lab-verified-1\n"


class VerifyError(ValueError):
    """A verified file is not one, fails its checksum, or holds more than tensors and plain containers."""


def write_verified(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` (tensors and plain containers) as a header with the SHA-256 of the
    ``torch.save`` bytes that follow, so a reader checks the bytes before deserialising anything."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    return atomic_write(path, lambda p: p.write_bytes(header + payload))


def read_verified(path: str | Path) -> Any:
    """What ``write_verified`` wrote: the checksum is verified first, then only tensors and plain
    containers are read (``torch.load(weights_only=True)``). Raises ``VerifyError`` otherwise."""
    import io

    import torch

    data = Path(path).read_bytes()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 65:
        raise VerifyError("not a cl_lab verified file (no checksum header)")
    digest, payload = data[len(MAGIC): len(MAGIC) + 64].decode("ascii", "replace"), data[len(MAGIC) + 65:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise VerifyError("the checksum does not match (the file was changed or damaged)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:
        raise VerifyError(f"it holds objects other than tensors and plain containers ({type(e).__name__}); "
                          "refused unread") from e


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


RUN_LOG_ENV = "CL_LAB_RUN_LOG"
"""When set to a file path, every run (and MDL setup) that finishes appends one line there: ``cl-lab report``
prints them while a notebook executes, so long notebooks show progress."""


def announce(line: str) -> None:
    """Append ``line`` to the ``CL_LAB_RUN_LOG`` file when one is set; never fails the caller."""
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    try:
        with open(path, "a") as f:
            f.write(line.replace("\n", " ") + "\n")
    except OSError:
        pass  # progress lines are a courtesy, never a reason to fail a run
