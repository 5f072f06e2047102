"""A command-line render as a job: `job.json` in its folder says how to finish it, and History
tracks its state, so `python -m pipeline resume DIR_OR_JOB_ID` can carry on after a crash.

A killed render loses at most the scene in flight: clips are written under a temporary name
and renamed when whole, so a clip that exists is finished, and resume renders only the scenes
whose clip is missing, with the same storyboard, seeds, models and settings.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.files import write_json_atomic
from pipeline.assemble import AssemblySettings
from pipeline.events import CastDrawn, Event, SceneDone, SceneFailed
from pipeline.history import History
from pipeline.render import RenderSettings, scene_paths, unfinished_scenes
from pipeline.storyboard import Storyboard

NO_USER = ""  # a command-line job made without --user belongs to no account
MANIFEST = "job.json"


@dataclass
class CliJob:
    history: History
    job_id: str
    folder: Path
    board: Storyboard
    settings: RenderSettings
    base_dir: Path
    film: Path | None = None                 # make: the film to assemble at the end
    assembly: AssemblySettings | None = None

    def missing_scenes(self) -> list[int]:
        return unfinished_scenes(self.folder, len(self.board.scenes))

    def reconcile(self) -> None:
        """Record finished scenes the history missed (a kill between clip and record)."""
        recorded = (self.history.get(self.job_id) or {}).get("scenes") or {}
        missing = set(self.missing_scenes())
        for number in range(1, len(self.board.scenes) + 1):
            if number not in missing and recorded.get(str(number), {}).get("status") != "done":
                paths = scene_paths(self.folder, number)
                info = json.loads(paths["info"].read_text(encoding="utf-8"))
                self.history.record_scene(self.job_id, number, {
                    "status": "done", "clip": str(paths["clip"]),
                    "keyframe": str(paths["keyframe"]), "backend": info.get("backend"),
                    "seed": info.get("seed"), "seconds": None})

    def record(self, event: Event) -> None:
        if isinstance(event, CastDrawn):  # kept: a resume uses the same picture
            self.board = self.board.with_cast_member(event.name, reference=event.reference)
            _write(self)
            self.history.update(self.job_id, storyboard=self.board.to_dict())
        if isinstance(event, (SceneDone, SceneFailed)):
            self.history.record_event(self.job_id, event, self.board.scenes[event.scene - 1].seed)

    def finish(self, status: str, message: str = "", **fields: Any) -> None:
        self.history.update(self.job_id, status=status, message=message, pid=os.getpid(),
                            **fields)


def start(history: History, board: Storyboard, folder: Path, settings: RenderSettings,
          base_dir: Path, prompt: str = "", film: Path | None = None,
          assembly: AssemblySettings | None = None, user: str | None = None) -> CliJob:
    """Write the folder's job.json and record the job as rendering, as `user`'s (a studio
    account) or nobody's: the studio shows it to everyone without accounts, to admins with."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    job = history.create(user or NO_USER, prompt or board.title, board.to_dict(), folder=folder,
                         status="rendering", pid=os.getpid())
    cli_job = CliJob(history, job["id"], folder, board, settings, Path(base_dir).resolve(),
                     Path(film).resolve() if film else None, assembly)
    _write(cli_job)
    return cli_job


def load(history: History, target: str) -> CliJob:
    """The job in folder `target`, or with id `target`; raises LookupError saying which."""
    folder = Path(target)
    if not (folder / MANIFEST).is_file():
        record = history.get(target)
        if record is None:
            raise LookupError(f"{target} is neither a render folder (with {MANIFEST}) nor a job "
                              f"id in {history.root / 'history.json'}")
        folder = Path(record["dir"])
        if not (folder / MANIFEST).is_file():
            raise LookupError(f"job {target} has no {MANIFEST} in {folder}; only jobs started "
                              f"from the command line can be resumed there")
    data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if history.get(data["job_id"]) is None:  # a folder moved between machines: track it anew
        history.create(NO_USER, data["storyboard"].get("title", ""), data["storyboard"],
                       folder=folder, status="interrupted")
    assembly = data.get("assembly")
    return CliJob(history, data["job_id"], folder.resolve(),
                  Storyboard.from_dict(data["storyboard"]), RenderSettings(**data["settings"]),
                  Path(data["base_dir"]), Path(data["film"]) if data.get("film") else None,
                  AssemblySettings.from_dict(assembly) if assembly else None)


def _write(job: CliJob) -> None:
    assembly = dataclasses.asdict(job.assembly) if job.assembly else None
    if assembly and assembly.get("music"):
        assembly["music"] = str(Path(assembly["music"]).resolve())
    data = {"job_id": job.job_id, "storyboard": job.board.to_dict(),
            "settings": dataclasses.asdict(job.settings), "base_dir": str(job.base_dir),
            "film": str(job.film) if job.film else None, "assembly": assembly}
    write_json_atomic(job.folder / MANIFEST, data)


