"""History: every job, its storyboard, scene clips, seeds, timings and film, in TinyDB.

TinyDB is neither thread- nor process-safe and rewrites its file in place. So every operation
here holds one lock (a threading lock inside the process, an flock on a lock file across
processes) around the whole read-modify-write, and the storage writes a temporary file, fsyncs
it and renames it over the database: a crash leaves the old file or the new one, never half.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import Storage

from models.files import process_alive, write_json_atomic
from pipeline.events import Event, SceneDone, SceneFailed

STATES = ("planned", "rendering", "interrupted", "done", "failed", "cancelled")


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces the whole file atomically on every write."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text) if text.strip() else None

    def write(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path, data, indent=None)

    def close(self) -> None:
        pass


def default_root() -> Path:
    """Where films and history live: STORYREEL_OUTPUTS, else outputs/ in the project."""
    return Path(os.environ.get("STORYREEL_OUTPUTS") or Path(__file__).resolve().parents[1] / "outputs")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class History:
    """Jobs of every user in `root/history.json`; job folders under `root/<user>/<job id>/`."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.RLock()
        self._db = TinyDB(self.root / "history.json", storage=AtomicJSONStorage)
        self._jobs = self._db.table("jobs")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.root / "history.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                # Another process may have written since: forget the query cache and the
                # next document id TinyDB remembers (else two processes insert the same id).
                self._jobs.clear_cache()
                self._jobs._next_id = None
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    # ---- jobs ----------------------------------------------------------------------------

    def create(self, user: str, prompt: str, storyboard: dict[str, Any] | None = None,
               folder: Path | None = None, **fields: Any) -> dict[str, Any]:
        """A new job; its files go to `folder` (default: outputs/<user>/<job id>/)."""
        job_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        folder = Path(folder).resolve() if folder else self.user_dir(user) / job_id
        folder.mkdir(parents=True, exist_ok=True)
        job = {"id": job_id, "user": user, "prompt": prompt, "title": "",
               "status": "planned", "created": now(), "updated": now(),
               "storyboard": storyboard, "dir": str(folder), "scenes": {}, "film": None,
               "message": "", **fields}
        if storyboard:
            job["title"] = storyboard.get("title", "")
        with self._locked():
            self._jobs.insert(job)
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._locked():
            return self._jobs.get(Query().id == job_id)

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        if "status" in fields and fields["status"] not in STATES:
            raise ValueError(f"unknown job state {fields['status']!r}")
        with self._locked():
            self._jobs.update({**fields, "updated": now()}, Query().id == job_id)
            return self._jobs.get(Query().id == job_id)

    def record_scene(self, job_id: str, number: int, scene: dict[str, Any]) -> None:
        """Store one finished (or failed) scene the moment it exists."""
        with self._locked():
            job = self._jobs.get(Query().id == job_id)
            if job is None:
                raise KeyError(job_id)
            scenes = dict(job.get("scenes") or {})
            scenes[str(number)] = scene
            self._jobs.update({"scenes": scenes, "updated": now()}, Query().id == job_id)

    def record_event(self, job_id: str, event: Event, seed: int) -> None:
        """Record a render event that finishes a scene (done or failed); ignore the others."""
        if isinstance(event, SceneDone):
            self.record_scene(job_id, event.scene, {
                "status": "done", "clip": str(event.clip), "keyframe": str(event.keyframe),
                "seconds": round(event.seconds, 2), "backend": event.backend, "seed": seed})
        elif isinstance(event, SceneFailed):
            self.record_scene(job_id, event.scene, {"status": "failed", "message": event.message})

    def jobs(self, user: str | None = None) -> list[dict[str, Any]]:
        """Newest first; one user's jobs, or everyone's when user is None (admins).

        `created` is stored to the second, so jobs made within one second are ordered by when
        they were stored (the document id)."""
        with self._locked():
            found = self._jobs.all() if user is None else self._jobs.search(Query().user == user)
        return sorted(found, key=lambda j: (j["created"], j.doc_id), reverse=True)

    def delete(self, job_id: str) -> None:
        """Remove the job and its files."""
        with self._locked():
            job = self._jobs.get(Query().id == job_id)
            if job is None:
                return
            self._jobs.remove(Query().id == job_id)
        folder = Path(job["dir"]).resolve()
        if folder.is_relative_to(self.root) and folder != self.root:  # never outside outputs/
            shutil.rmtree(folder, ignore_errors=True)

    def mark_interrupted(self) -> list[str]:
        """Jobs 'rendering' whose process is gone were cut off (a crash, a kill, a closed
        terminal): mark them interrupted. Returns their ids."""
        with self._locked():
            stale = [job for job in self._jobs.search(Query().status == "rendering")
                     if not process_alive(job.get("pid"))]
            for job in stale:
                self._jobs.update({"status": "interrupted", "updated": now(),
                                   "message": "the render was cut off; resume it to finish"},
                                  Query().id == job["id"])
        return [job["id"] for job in stale]

    # ---- files ---------------------------------------------------------------------------

    def user_dir(self, user: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user).strip(".") or "_"
        return self.root / safe
