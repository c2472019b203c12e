"""``RunDir``: the one owner of a run directory (CL runs and MDL runs alike).

It opens the directory under a lock, compares the stored configuration with the new one,
resumes or refuses, and writes ``config.json``, checkpoints and progress files atomically.

- **Names** derive from the configuration: a readable prefix plus a short hash of the
  compared settings (``default_name``), so two configurations never share a directory by
  accident. A user's ``run_name`` may hold letters, digits and ``. _ + -`` (not ``.`` or
  ``..``, at most 120 characters), so it can never leave ``out``.
- **Lock**: a ``filelock`` lock on ``<run>/.lock`` is held while the run is open; a second
  process that opens the same directory gets a one-line error instead of writing into it.
- **Checkpoints** carry the SHA-256 of their bytes (checked before anything is
  deserialised) and the hash of the configuration that wrote them; the payload is read
  with ``torch.load(weights_only=True)`` only (no code runs from a file).
- **Threads**: ``config.json`` records ``torch.get_num_threads()``; resuming *training* with
  another count warns and records the mix (``"1+2"``), because results differ between thread
  counts. Reopening a complete run to read it changes nothing.
- **Leftovers**: temporary files of a write that was killed (``.checkpoint.pt.*.tmp``, ...)
  are removed when the run is next opened; a directory a failed run created before it saved
  anything (only ``config.json``) is removed again, so a rerun with other values is not refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._io import VerifyError, atomic_write_json, atomic_write_text, read_verified, write_verified
from .config import ConfigError

NAME_PATTERN = r"[A-Za-z0-9._+-]+"
MAX_NAME = 120
MAX_SEED = 2**63 - 1
CHECKPOINT = "checkpoint.pt"
LOCK = ".lock"


class RunDirError(RuntimeError):
    """The run directory cannot be used (another config, in use, unwritable, corrupt file)."""


class ThreadCountWarning(UserWarning):
    """A resume or a comparison mixes thread counts (results differ between them)."""


def check_run_name(name: Any, where: str = "run") -> str:
    """``name`` if it is a safe directory name; otherwise a ConfigError saying what is allowed."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or name in (".", "..") \
            or len(name) > MAX_NAME:
        raise ConfigError(f"{where}: run_name={name!r} is not allowed; use 1-{MAX_NAME} letters, digits and . _ + - "
                          "(not '.' or '..', no '/')")
    return name


def canonical(obj: Any) -> Any:
    """``obj`` as JSON would give it back (tuples -> lists, paths -> str)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(canonical(config), sort_keys=True).encode()).hexdigest()


def identity(config: Mapping[str, Any], compared: Sequence[str], defaults: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The settings a run directory is tied to: ``config``'s ``compared`` keys, less those in
    ``defaults`` that hold their default value (settings added to the identity later leave the
    names and checkpoints of runs made at their default unchanged)."""
    defaults = defaults or {}
    return {k: config.get(k) for k in compared if not (k in defaults and config.get(k) == defaults[k])}


def default_name(prefix: str, config: Mapping[str, Any]) -> str:
    """A readable prefix plus the first 8 hex digits of the configuration's hash."""
    slug = re.sub(r"[^A-Za-z0-9._+-]", "-", prefix)[: MAX_NAME - 9].strip(".") or "run"
    return f"{slug}-{config_hash(config)[:8]}"


def hold_lock(path: Path, busy: Exception) -> Any:
    """A ``filelock`` lock on ``path``, taken at once, or ``busy`` raised if another process holds it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise busy from None
    return lock


def check_out_dir(out: Path) -> None:
    """``out`` exists (created if needed) and is writable; else a RunDirError saying what to do."""
    import os

    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"out={str(out)!r} is not a writable directory ({e.strerror or e}); choose a writable "
                          "--out") from e


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _fs_error(path: Path, e: OSError, doing: str) -> RunDirError:
    hint = {28: "free some disk space", 30: "choose a writable --out", 13: "choose a writable --out",
            36: "choose a shorter run name or --out"}.get(e.errno or 0, "check the path")
    return RunDirError(f"cannot {doing} {str(path)!r}: {e.strerror or e}; {hint}. Files written before are kept")


class RunDir:
    """A run directory opened for writing: use as a context manager (``with RunDir(...) as rd:``).

    ``config`` is everything written to ``config.json``; ``compared`` names the keys that must
    match an existing run for it to be resumed (None: every key but ``threads``).
    """

    def __init__(self, path: str | Path, config: Mapping[str, Any], compared: Sequence[str] | None = None,
                 what: str = "run", resume: bool = True, hash_defaults: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.what = what
        self.resume = resume
        self.config = {**canonical(dict(config)), "threads": _threads()}
        self.compared = list(compared) if compared is not None else [k for k in self.config if k != "threads"]
        self.defaults = canonical(dict(hash_defaults or {}))
        self.hash = config_hash(identity(self.config, self.compared, self.defaults))
        self.config["config_hash"] = self.hash
        self.resumed = False
        self.created = False
        self._old_threads: Any = None
        self._lock = None

    # ------------------------------------------------------------------ open / close
    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> RunDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _fs_error(self.path, e, "create the run directory") from e
        try:
            lock = hold_lock(self.path / LOCK, RunDirError(
                f"run directory {str(self.path)!r} is in use by another process (lock {LOCK}); wait for it to finish "
                "or choose another run_name/out"))
        except OSError as e:
            raise _fs_error(self.path, e, "lock") from e
        self._lock = lock
        try:
            self._clean_leftovers()
            self._check_or_write_config()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def discard_if_empty(self) -> bool:
        """Remove the directory again if this open created it and nothing but ``config.json`` was
        written (a run that failed before its first checkpoint); True if removed."""
        if not self.created:
            return False
        keep = {"config.json", LOCK}
        if any(p.name not in keep for p in self.path.iterdir()):
            return False
        (self.path / "config.json").unlink(missing_ok=True)  # while still locked: no other process resumes it
        self.close()
        (self.path / LOCK).unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            return False
        return True

    def _clean_leftovers(self) -> list[Path]:
        """Temporary files of atomic writes that were killed before their rename (never read)."""
        stale = [p for p in [*self.path.glob(".*.tmp"), *self.path.glob("setups/.*.tmp")] if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def training(self) -> None:
        """Called before a resumed run trains again: a thread count other than the one it started
        with is warned about and recorded as a mix (reading a finished run records nothing)."""
        old = self._old_threads
        if old is None or old == self.config["threads"] or str(old).endswith(f"+{self.config['threads']}"):
            return
        warnings.warn(f"{self.path}: resuming a run started with {old} thread(s) on {self.config['threads']}; "
                      "results differ between thread counts, so the finished run mixes both (set OMP_NUM_THREADS "
                      "/ torch.set_num_threads to match)", ThreadCountWarning, stacklevel=3)
        stored = json.loads((self.path / "config.json").read_text())
        self.write_json("config.json", {**stored, "threads": f"{old}+{self.config['threads']}"})
        self._old_threads = f"{old}+{self.config['threads']}"

    def _check_or_write_config(self) -> None:
        cfg_file = self.path / "config.json"
        if not cfg_file.exists():
            self.write_json("config.json", self.config)
            self.created = True
            return
        try:
            old = json.loads(cfg_file.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise RunDirError(f"{cfg_file} is corrupt ({e}); nothing was changed. Move the directory away or "
                              "choose another run_name/out") from e
        diff = [k for k in self.compared if old.get(k, self.defaults.get(k)) != self.config.get(k)]
        if diff:
            raise RunDirError(f"run directory {str(self.path)!r} holds a {self.what} with a different "
                              f"{', '.join(diff)}; nothing was changed. Choose another run_name or out")
        if not self.resume:
            raise RunDirError(f"run directory {str(self.path)!r} exists and resume=False; choose another run_name or out")
        self.resumed = True
        self._old_threads = old.get("threads")

    # ------------------------------------------------------------------ files
    def write_text(self, name: str, text: str) -> Path:
        try:
            return atomic_write_text(self.path / name, text)
        except OSError as e:
            raise _fs_error(self.path / name, e, "write") from e

    def write_json(self, name: str, obj: Any) -> Path:
        try:
            return atomic_write_json(self.path / name, obj)
        except OSError as e:
            raise _fs_error(self.path / name, e, "write") from e

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: Mapping[str, Any]) -> Path:
        """Write ``state`` (tensors and plain containers) with the config hash, checksummed and atomically."""
        try:
            return write_verified(self.path / CHECKPOINT, {"config_hash": self.hash, "state": dict(state)})
        except OSError as e:
            raise _fs_error(self.path / CHECKPOINT, e, "write") from e

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The saved state, verified (checksum, config hash) and read without running code; None if absent."""
        path = self.path / CHECKPOINT
        return read_checkpoint(path, self.hash) if path.exists() else None


def read_checkpoint(path: str | Path, expected_hash: str | None = None) -> dict[str, Any]:
    """A checkpoint's state after verifying its checksum (and, if given, the configuration hash).

    The bytes are checked before anything is deserialised, and then only tensors and plain
    containers are read (``weights_only=True``); anything else is refused.
    """
    path = Path(path)
    hint = "nothing was changed. Move it away to restart that run from scratch, or pick another run_name/out"
    try:
        record = read_verified(path)
    except VerifyError as e:
        raise RunDirError(f"checkpoint {str(path)!r} is refused: {e}; {hint}") from e
    except OSError as e:
        raise RunDirError(f"checkpoint {str(path)!r} is unreadable ({e.strerror or e}); {hint}") from e
    if not isinstance(record, dict) or "state" not in record:
        raise RunDirError(f"checkpoint {str(path)!r} is not a checkpoint of this cl_lab version; {hint}")
    if expected_hash is not None and record.get("config_hash") != expected_hash:
        raise RunDirError(f"checkpoint {str(path)!r} was written by another configuration "
                          f"(hash {str(record.get('config_hash'))[:12]}, this run {expected_hash[:12]}); {hint}")
    return record["state"]
