"""Jobs: plan, render, re-render and assemble one person's film, remembered in History.

The studio (ui/) and scripts call these; everything they do is recorded the moment it happens:
the storyboard when it is written or edited, each scene when its clip exists, the film when it
is assembled. Each job lives in `outputs/<user>/<job id>/` (clips in `scenes/`, the film as
`film.mp4` beside `film.srt`, `film.json` and the contact sheet).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.assemble import (AssemblyError, AssemblySettings, FilmAssembler, FilmResult,
                               check_music)
from pipeline.events import CastDrawn, Event, RenderFinished, SceneDone, SceneFailed
from pipeline.history import History
from pipeline.manifest import MANIFEST
from pipeline.planner import OnText, PlanRequest, plan_storyboard
from pipeline.render import (RenderError, RenderSettings, SceneWorkers, check_renderable,
                             render_storyboard, unfinished_scenes)
from pipeline.storyboard import (CONTINUE, TABLE_COLUMNS, Storyboard, StoryboardError,
                                 split_names)
from pipeline.subtitles import SubtitleStyle
from pipeline.voice import VoiceError, fit_to_narration

UPLOADS = "uploads"  # a job's uploaded keyframes, beside its scenes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_UPLOAD_BYTES = 20 * 2**20  # the studio's upload limit, checked here too


def _from_cli(job: dict[str, Any]) -> bool:
    """Whether the command line made the job: its folder holds the CLI's manifest."""
    return (Path(job["dir"]) / MANIFEST).is_file()


def scenes_folder(job: dict[str, Any]) -> Path:
    """Where a job's scene clips are: `scenes/` in a studio job's folder; a job made on the
    command line keeps them in its folder itself."""
    folder = Path(job["dir"])
    return folder if _from_cli(job) else folder / "scenes"


def _film_path(job: dict[str, Any]) -> Path:
    """The job's film: where the command line put it, else film.mp4 in the job's folder."""
    film = (job.get("film") or {}).get("path")
    return Path(film) if film and _from_cli(job) else Path(job["dir"]) / "film.mp4"


class JobError(RuntimeError):
    """A request the studio refuses (bad storyboard, someone else's job); shown to the user."""


@dataclass(frozen=True)
class FilmReady:
    """The last event of a render: the assembled film and its companions."""

    film: Path
    srt: Path
    contact_sheet: Path
    duration: float


class Jobs:
    def __init__(self, history: History, render_defaults: RenderSettings,
                 assembly: AssemblySettings | None = None, workers: SceneWorkers | None = None):
        self.history = history
        self.render_defaults = render_defaults
        self.assembly = assembly or AssemblySettings()
        self.workers = workers  # Ray workers (--gpus/--cluster), or None: in this process

    # ---- access --------------------------------------------------------------------------

    def job(self, user: str, job_id: str, admin: bool = False) -> dict[str, Any]:
        job = self.history.get(job_id) if job_id else None
        if job is None or (job["user"] != user and not admin):
            raise JobError(f"job {job_id!r} does not exist")  # never confirm others' jobs
        return job

    # ---- plan ----------------------------------------------------------------------------

    def plan(self, user: str, request: PlanRequest, on_text: OnText | None = None,
             ) -> tuple[dict[str, Any], Storyboard]:
        board = plan_storyboard(request, on_text=on_text)
        job = self.history.create(user, request.prompt, board.to_dict())
        return job, board

    # ---- render --------------------------------------------------------------------------

    @staticmethod
    def checked_board(board: Storyboard) -> Storyboard:
        """The storyboard, if the content filter passes every text and its fonts are here."""
        try:
            check_renderable(board)
        except (RenderError, StoryboardError) as err:
            raise JobError(str(err)) from None
        return board

    def board_from_rows(self, job: dict[str, Any], rows: list[list[Any]],
                        **changes: Any) -> tuple[Storyboard, list[str]]:
        """The edited table as the job's storyboard (with `changes` such as aspect or voice),
        checked, each scene long enough for its narration; and the notes on its voice and on
        the scenes that grew."""
        base = dataclasses.replace(Storyboard.from_dict(job["storyboard"]), **changes)
        try:
            board = self.checked_board(base.with_rows(rows))
            board, grown = fit_to_narration(board, fps=self.render_defaults.fps)
        except (StoryboardError, VoiceError) as err:
            raise JobError(str(err)) from None
        self.check_pictures(job, board)
        return board, grown

    @staticmethod
    def check_pictures(job: dict[str, Any], board: Storyboard) -> None:
        """Keyframe and cast pictures must be files uploaded to (or drawn for) this job: no
        path may reach elsewhere."""
        folder = Path(job["dir"]).resolve()
        for number, scene in enumerate(board.scenes, start=1):
            if scene.keyframe and scene.keyframe != CONTINUE:
                path = (folder / scene.keyframe).resolve()
                if not path.is_relative_to(folder / UPLOADS) or not path.is_file():
                    raise JobError(f"scene {number}, keyframe: {scene.keyframe!r} is not an image "
                                   f"uploaded to this job; upload one, or write 'continue'")
        pictures = [(f"cast {m.name}, reference", m.reference) for m in board.cast]
        pictures.append(("look_reference", board.look_reference))
        for where, value in pictures:
            if value and not ((folder / value).resolve().is_relative_to(folder)
                              and (folder / value).is_file()):
                raise JobError(f"{where}: {value!r} is not a picture uploaded to or drawn for "
                               f"this job; upload one")

    def add_keyframe(self, user: str, job_id: str, number: int, upload: Path,
                     admin: bool = False) -> str:
        """Check an uploaded image and keep it in the job; returns the keyframe cell's value."""
        job = self.job(user, job_id, admin)
        return _keep_picture(job, upload, f"scene_{number:02d}", f"scene {number}, keyframe")

    # ---- cast and look -------------------------------------------------------------------

    def set_cast(self, user: str, job_id: str, rows: list[list[Any]], cast: list[dict[str, Any]],
                 look_reference: str | None, look_strength: float,
                 renamed: dict[str, str] | None = None, admin: bool = False) -> Storyboard:
        """Keep the film's cast and look with the job (the table's scenes with them: a cast
        member `renamed` old -> new is renamed in every scene). A picture given as a file
        outside the job is checked and copied into it; the same picture as the one kept stays
        as it is. Returns the storyboard now kept."""
        job = self.job(user, job_id, admin)
        stored = Storyboard.from_dict(job["storyboard"])
        kept = {m.name: m.reference for m in stored.cast}
        members = []
        for k, member in enumerate(cast, start=1):
            member = dict(member)
            member["reference"] = self._picture_value(job, member.get("reference"),
                                                      kept.get(member.get("name", "")),
                                                      f"cast_{k:02d}", f"cast {k}, reference")
            members.append(member)
        look = self._picture_value(job, look_reference, stored.look_reference, "look",
                                   "look_reference")
        column = TABLE_COLUMNS.index("cast")
        rows = [list(r) for r in rows] or stored.to_rows()
        for row in rows:  # a renamed member keeps their scenes
            if renamed and len(row) > column and isinstance(row[column], str):
                row[column] = ", ".join(renamed.get(n, n) for n in split_names(row[column]))
        try:
            board = stored.with_rows(rows, cast=members, look_reference=look,
                                     look_strength=look_strength)
        except StoryboardError as err:
            raise JobError(str(err)) from None
        self.check_pictures(job, board)
        self.history.update(job_id, storyboard=board.to_dict())
        return board

    def _picture_value(self, job: dict[str, Any], given: str | None, kept: str | None,
                       stem: str, where: str) -> str | None:
        """A picture as the storyboard names it: the one kept when `given` is it (by path or
        by content), else `given` checked and copied into the job; None when there is none."""
        if not given:
            return None
        folder = Path(job["dir"])
        path = Path(given)
        if kept and (folder / kept).is_file():
            if path.resolve() == (folder / kept).resolve() or (
                    path.is_file() and path.read_bytes() == (folder / kept).read_bytes()):
                return kept
        if path.resolve().is_relative_to((folder / UPLOADS).resolve()) and path.is_file():
            return os.path.relpath(path.resolve(), folder.resolve())
        return _keep_picture(job, path, stem, where)  # a keyframe made a look is copied: it stays

    def draw_cast(self, user: str, job_id: str, admin: bool = False) -> Iterator[Event]:
        """Draw the pictures of the cast members that have none (and render no scene); each is
        kept with the job as it is drawn."""
        job = self.job(user, job_id, admin)
        board = Storyboard.from_dict(job["storyboard"])
        settings = dataclasses.replace(self.render_defaults, cast_only=True)
        try:
            for event in render_storyboard(board, scenes_folder(job), settings,
                                           base_dir=Path(job["dir"]), workers=self.workers):
                if isinstance(event, CastDrawn):
                    board = self._keep_drawn(job_id, board, event)
                yield event
        except RenderError as err:
            raise JobError(str(err)) from None

    def _keep_drawn(self, job_id: str, board: Storyboard, drawn: CastDrawn) -> Storyboard:
        """A picture drawn during a render, named in the job's storyboard: resume, re-render
        and the Cast panel use it from now on."""
        board = board.with_cast_member(drawn.name, reference=drawn.reference)
        self.history.update(job_id, storyboard=board.to_dict())
        return board

    def add_music(self, user: str, job_id: str, upload: Path, admin: bool = False) -> Path:
        """Check an uploaded music file and keep it with the job (used by every re-assembly)."""
        job = self.job(user, job_id, admin)
        try:
            check_music(upload)
        except AssemblyError as err:
            raise JobError(str(err)) from None
        target = Path(job["dir"]) / UPLOADS / f"music{upload.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(upload, target)
        self.history.update(job_id, music=str(target))
        return target

    def render(self, user: str, job_id: str, board: Storyboard,
               cancel: threading.Event | None = None, only_scenes: list[int] | None = None,
               admin: bool = False, quality: str | None = None,
               subtitles: SubtitleStyle | None = None) -> Iterator[Event | FilmReady]:
        """Render (all scenes, or `only_scenes`; [] renders none), record each, then assemble
        the film. `quality` ("turbo", "full", "auto") overrides the studio's default, and
        `subtitles` its subtitle style."""
        job = self.job(user, job_id, admin)
        folder = Path(job["dir"])
        self.checked_board(board)  # refused before the job changes state: nothing is touched
        settings = dataclasses.replace(self.render_defaults, only_scenes=only_scenes or [],
                                       crossfade=self.assembly.crossfade,
                                       quality=quality or self.render_defaults.quality)
        try:
            settings.check()
        except ValueError as err:
            raise JobError(str(err)) from None
        music = job.get("music")
        assembly = dataclasses.replace(self.assembly, music=Path(music) if music else None,
                                       subtitle_style=subtitles or self.assembly.subtitle_style)
        scenes_dir = scenes_folder(job)
        try:  # the film is assembled while the scenes render
            assembler = FilmAssembler(board, scenes_dir, _film_path(job), assembly, folder)
        except AssemblyError as err:
            raise JobError(str(err)) from None
        assembler.scenes_kept(set(range(1, len(board.scenes) + 1)) if only_scenes is None
                              else set(only_scenes))
        self.history.update(job_id, storyboard=board.to_dict(), title=board.title,
                            status="rendering", message="", pid=os.getpid())
        finished = RenderFinished()
        scenes = render_storyboard(board, scenes_dir, settings, cancel=cancel,
                                   base_dir=folder, workers=self.workers) \
            if only_scenes != [] else iter(())
        try:
            for event in scenes:
                if isinstance(event, CastDrawn):
                    board = self._keep_drawn(job_id, board, event)
                if isinstance(event, (SceneDone, SceneFailed)):
                    self.history.record_event(job_id, event, board.scenes[event.scene - 1].seed)
                if isinstance(event, SceneDone):
                    assembler.scene_ready(event.scene)
                elif isinstance(event, RenderFinished):
                    finished = event
                yield event
        except GeneratorExit:  # the listener went away (Cancel, closed tab): the render stopped
            assembler.close()
            self.history.update(job_id, status="cancelled", message="the render was stopped")
            raise
        except RenderError as err:
            assembler.close()
            self.history.update(job_id, status="failed", message=str(err))
            raise JobError(str(err)) from None
        if finished.cancelled or finished.failed:
            assembler.close()
        if finished.cancelled:
            self.history.update(job_id, status="cancelled",
                                message="cancelled; finished scenes are kept")
            return
        if finished.failed:
            self.history.update(job_id, status="failed",
                                message=f"scene(s) {', '.join(map(str, finished.failed))} failed")
            return
        try:
            film = assembler.finish()
        except AssemblyError as err:
            self.history.update(job_id, status="failed", message=str(err))
            raise JobError(str(err)) from None
        self.history.update(job_id, status="done", film=self._film_record(film))
        yield FilmReady(film.film, film.srt, film.contact_sheet, film.duration)

    @staticmethod
    def _film_record(film: FilmResult) -> dict[str, Any]:
        return {"path": str(film.film), "srt": str(film.srt), "info": str(film.info),
                "poster": str(film.poster), "contact_sheet": str(film.contact_sheet),
                "duration": round(film.duration, 3)}

    def missing_scenes(self, job: dict[str, Any]) -> list[int]:
        return unfinished_scenes(scenes_folder(job),
                                 len(job["storyboard"]["scenes"]))

    def delete(self, user: str, job_id: str, admin: bool = False) -> None:
        self.job(user, job_id, admin)
        self.history.delete(job_id)


def _keep_picture(job: dict[str, Any], upload: Path, stem: str, where: str) -> str:
    """Check an uploaded picture and copy it into the job's uploads as `stem`; returns the path
    the storyboard names it by (relative to the job's folder)."""
    upload = Path(upload)
    if upload.suffix.lower() not in IMAGE_SUFFIXES:
        raise JobError(f"{where}: {upload.name} is not a PNG, JPEG or WebP image")
    if not upload.is_file() or upload.stat().st_size == 0:
        raise JobError(f"{where}: {upload.name} is empty")
    if upload.stat().st_size > MAX_UPLOAD_BYTES:
        raise JobError(f"{where}: {upload.name} is over the 20 MB limit")
    try:
        with Image.open(upload) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise JobError(f"{where}: {upload.name} is not an image Storyreel can read") from None
    target = Path(job["dir"]) / UPLOADS / f"{stem}{upload.suffix.lower()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in target.parent.glob(f"{stem}.*"):  # one picture per slot
        old.unlink()
    shutil.copyfile(upload, target)
    return f"{UPLOADS}/{target.name}"
