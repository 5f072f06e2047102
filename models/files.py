"""Storyreel's own files: its cache folder, and small JSON files written so that a reader sees
the old one or the new one, never half.

Shared by every room (it imports nothing of the project): the history database, a scene's info
file, a job's manifest, the accounts file and the registry of model folders use
`write_json_atomic`; the converted LLM, the model registry and the compile cache live under
`cache_dir()`.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """Storyreel's cache folder: STORYREEL_CACHE, or ~/.cache/storyreel."""
    return Path(os.environ.get("STORYREEL_CACHE") or Path.home() / ".cache" / "storyreel")


def write_json_atomic(path: Path, data: Any, mode: int | None = None,
                      indent: int | None = 2) -> None:
    """Write `data` to `path` through a temporary file, fsynced, then renamed over it (and the
    rename fsynced too). Each writer (process and thread) has its own temporary file, so two
    writers never interleave. `mode` sets the file's permissions before it appears (0o600 for
    secrets)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    with open(partial, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False, indent=indent)
        out.flush()
        os.fsync(out.fileno())
    if mode is not None:
        os.chmod(partial, mode)
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
