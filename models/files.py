"""Storyreel's own files: its cache folder, and small JSON files written so that a reader sees
the old one or the new one, never half.

Shared by every room (it imports nothing of the project): the history database, a scene's info
file, a job's manifest, the accounts file and the registry of model folders use
`write_json_atomic` (and videos the same rule: `partial_name`); the converted LLM, the model registry and the compile cache live under
`cache_dir()`.
"""
from __future__ import annotations

import json
import os
import re
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
    sweep_partials(path.parent)  # what a killed writer left here goes with the next write


# A writer's temporary file: ".NAME.<pid>[.<thread>].partial[.ext]" (an older form had no pid).
PARTIAL = re.compile(r"^\..+?(?:\.(\d+)(?:\.\d+)?)?\.partial(?:\.[A-Za-z0-9]+)?$")


def partial_name(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed into place: it carries
    the writer's pid, so `sweep_partials` can tell a live writer's file from a dead one's."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def sweep_partials(folder: Path) -> list[Path]:
    """Remove the temporary files in `folder` whose writer is gone (killed between write and
    rename); returns what was removed. Files of live processes, this one included, stay."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = PARTIAL.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1)) if match.group(1) else None
        if pid is not None and process_alive(pid):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass  # another sweeper was first
    return removed


def process_alive(pid: int | None) -> bool:
    """Whether process `pid` still runs (this one counts; someone else's counts)."""
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
