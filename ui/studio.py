"""The studio: Gradio Blocks around the in-process pipeline.

Create: prompt -> "Write storyboard" (the planner's text streams in) -> editable table ->
"Render" (previews arrive scene by scene, with progress and Cancel) -> the film and its files.
History: your past jobs. System: device, memory, models and how to get missing ones.

Handlers are small generators that read the pipeline's events and yield UI updates; GPU work
(plan, render) shares one concurrency id with limit 1, so other people wait in the queue.
"""
import hashlib
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from pipeline.events import (CastDrawn, Notice, SceneDone, SceneFailed, SceneStarted,
                             StepProgress, describe)
from pipeline.jobs import FilmReady, JobError, Jobs, scenes_folder
from pipeline.planner import PlanRequest, PromptRejected
from pipeline.render import QUALITIES, LocalWorkers, scene_paths
from pipeline.beats import detect_language
from pipeline.assemble import cast_picture
from pipeline.storyboard import (ASPECTS, DEFAULT_LOOK_STRENGTH, DEFAULT_STRENGTH, MAX_CAST,
                                 MAX_SCENES, TABLE_COLUMNS, Storyboard)
from pipeline.subtitles import (POSITIONS, SUBTITLE_STYLES, SubtitleStyle, burn_in,
                                subtitle_band, subtitle_style, words_of)
from pipeline.voice import (SAMPLE_TEXT, VoiceError, narrate, voice_choices, voice_language,
                            write_wav)
from models.files import partial_name
from models.registry import EMBEDDED_LLM, KNOWN_MODELS
from ui.access import Accounts, FileRegistry
from ui.text import i18n

GPU = "gpu"            # concurrency id shared by every event that uses the GPU
DOWNLOADABLE = [m.name for m in KNOWN_MODELS if m is not EMBEDDED_LLM]  # the System tab's list
QUEUE_SIZE = 20        # more waiting renders than this are refused with "queue is full"
LOCAL_USER = "local"   # the one user of a studio without accounts
LOCAL = LocalWorkers.NAME  # the in-process renderer (its scenes need no worker named)
PREVIEW_LINE = "A small fox walks into the snowy village."  # the subtitle style preview's text


@dataclass
class Studio:
    jobs: Jobs
    accounts: Accounts | None = None
    registry: FileRegistry = field(default_factory=FileRegistry)
    cancels: dict[str, threading.Event] = field(default_factory=dict)

    def user(self, request: gr.Request | None) -> str:
        name = getattr(request, "username", None) if request is not None else None
        return name or LOCAL_USER

    def admin(self, request: gr.Request | None) -> bool:
        return self.accounts.is_admin(self.user(request)) if self.accounts else True

    def share(self, path: Path | str, request: gr.Request | None) -> str:
        """A file handed to this person's browser; with accounts it is recorded, so the file
        guard can refuse it to everyone else (without accounts there is no guard). A file
        outside the outputs folder (a command-line film saved elsewhere) is served from a copy
        inside it: the studio serves nothing else."""
        path = self._inside_outputs(Path(path))
        if self.accounts is None:
            return str(path)
        return self.registry.register(path, self.user(request))

    def _inside_outputs(self, path: Path) -> Path:
        root = self.jobs.history.root.resolve()
        path = path.resolve()
        if path.is_relative_to(root) or not path.is_file():
            return path
        key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        copy = root / ".studio" / "copies" / key / path.name
        stat = path.stat()
        if not copy.is_file() or copy.stat().st_mtime < stat.st_mtime:
            copy.parent.mkdir(parents=True, exist_ok=True)
            partial = partial_name(copy)
            shutil.copyfile(path, partial)
            os.replace(partial, copy)
        return copy

    def _job(self, job_id: str, request: gr.Request) -> dict[str, Any]:
        """This person's job (admins: anyone's), or a gr.Error the page shows."""
        try:
            return self.jobs.job(self.user(request), (job_id or "").strip(), self.admin(request))
        except JobError as err:
            raise gr.Error(str(err)) from None


    def plan(self, prompt: str, style: str, scenes: float, seconds: float | None,
             aspect: str = "16:9", voice: str = "auto", request: gr.Request | None = None):
        """Stream the planner's text, then show the storyboard table."""
        user = self.user(request)
        text: queue.Queue[Any] = queue.Queue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["job"], result["board"] = self.jobs.plan(user, PlanRequest(
                    prompt=prompt, scenes=int(scenes or 5), seconds=seconds or None,
                    style=style or PlanRequest.style, aspect=aspect or "16:9",
                    voice=voice or "auto"), on_text=text.put)
            except PromptRejected as err:
                result["error"] = str(err)
            finally:
                text.put(None)

        threading.Thread(target=work, daemon=True).start()
        streamed = ""
        while (piece := text.get()) is not None:
            streamed += piece
            yield streamed, gr.skip(), gr.skip(), gr.skip()
        if "error" in result:
            raise gr.Error(result["error"])
        board: Storyboard = result["board"]
        notes = "\n".join(f"- {n}" for n in board.notes)
        notes += f"\n\n*{board.planner}* · " + " · ".join(f"{k}: {v}" for k, v in
                                                           board.provenance.items())
        yield streamed, board.to_rows(), result["job"]["id"], notes

    def _job_and_board(self, job_id: str, table: Any, request: gr.Request,
                       aspect: str | None = None, voice: str | None = None):
        """The person's job and the edited table as a checked storyboard (or a gr.Error), in
        the aspect and voice chosen on the page (None keeps the job's)."""
        job = self._job(job_id, request)
        changes = {k: v for k, v in (("aspect", aspect), ("voice", voice)) if v}
        try:
            board, notes = self.jobs.board_from_rows(job, _rows(table), **changes)
        except JobError as err:
            raise gr.Error(str(err)) from None
        for note in notes:
            gr.Info(note)
        return job, board

    def render(self, job_id: str, table: Any, quality: str = "auto", aspect: str | None = None,
               voice: str | None = None, subtitles: str | None = None,
               subtitle_size: float | None = None, subtitle_colour: str | None = None,
               subtitle_position: str | None = None, request: gr.Request | None = None):
        job, board = self._job_and_board(job_id, table, request, aspect, voice)
        yield from self._stream(request, job, board, None, quality, _style(
            subtitles, subtitle_size, subtitle_colour, subtitle_position))

    def rerender(self, job_id: str, table: Any, scene: float, new_seed: bool,
                 quality: str = "auto", aspect: str | None = None, voice: str | None = None,
                 subtitles: str | None = None, subtitle_size: float | None = None,
                 subtitle_colour: str | None = None, subtitle_position: str | None = None,
                 request: gr.Request | None = None):
        job, board = self._job_and_board(job_id, table, request, aspect, voice)
        number = int(scene or 0)
        if not 1 <= number <= len(board.scenes):
            raise gr.Error(f"scene {number}: the storyboard has scenes 1-{len(board.scenes)}")
        if new_seed:
            board.scenes[number - 1].seed = random.randint(0, 2**32 - 1)
        yield from self._stream(request, job, board, [number], quality, _style(
            subtitles, subtitle_size, subtitle_colour, subtitle_position))

    def fit_table(self, job_id: str, table: Any, voice: str | None = None,
                  request: gr.Request | None = None):
        """After an edit: lengthen the scenes whose narration no longer fits, in the table
        itself (a bad cell is left for Render to name)."""
        rows = _rows(table)
        try:
            job = self.jobs.job(self.user(request), (job_id or "").strip(), self.admin(request))
            board, notes = self.jobs.board_from_rows(job, rows,
                                                     **({"voice": voice} if voice else {}))
        except JobError:
            return gr.skip()
        column = TABLE_COLUMNS.index("duration")
        fitted = board.to_rows()
        if len(fitted) != len(rows) or all(
                _same_number(a[column], b[column]) for a, b in zip(fitted, rows)):
            return gr.skip()
        for note in notes:
            gr.Info(note)
        return fitted

    def resume(self, job_id: str, request: gr.Request):
        """Render an interrupted job's missing scenes (same seeds and models), then the film."""
        job = self._job(job_id, request)
        board = Storyboard.from_dict(job["storyboard"])
        missing = self.jobs.missing_scenes(job)
        yield from self._stream(request, job, board, missing)

    def _stream(self, request: gr.Request, job: dict[str, Any], board: Storyboard,
                only: list[int] | None, quality: str | None = None,
                subtitles: SubtitleStyle | None = None):
        """Yield (progress, previews, film, downloads) as the render's events arrive."""
        cancel = threading.Event()
        self.cancels[request.session_hash or job["id"]] = cancel
        folder = scenes_folder(job)
        previews: dict[int, tuple[str, str]] = {}
        if only is not None:  # keep showing the scenes that are not being rendered again
            for number in range(1, len(board.scenes) + 1):
                clip = scene_paths(folder, number)["clip"]
                if number not in only and clip.is_file():
                    previews[number] = (self.share(clip, request), _caption(board, number))
        total = len(only if only is not None else board.scenes)
        started, done, status = time.perf_counter(), 0, ""
        working: dict[int, str] = {}  # scene in flight -> where it is (one line per worker)
        try:
            for event in self.jobs.render(self.user(request), job["id"], board, cancel, only,
                                         self.admin(request), quality=_quality(quality),
                                         subtitles=subtitles):
                film, files = gr.skip(), gr.skip()
                if isinstance(event, SceneStarted):
                    where = f" on {event.worker}" if event.worker not in ("", LOCAL) else ""
                    working[event.scene] = f"scene {event.scene}{where}"
                    status = _working(working, "started", event.scene, done, total)
                elif isinstance(event, StepProgress):
                    status = _working(working, f"{event.stage} step {event.step}/{event.steps}",
                                      event.scene, done, total)
                elif isinstance(event, SceneDone):
                    working.pop(event.scene, None)
                    done += 1
                    previews[event.scene] = (self.share(event.clip, request),
                                             _caption(board, event.scene, event.backend))
                    status = f"scene {event.scene} done ({done} of {total})"
                elif isinstance(event, SceneFailed):
                    status = f"scene {event.scene} failed: {event.message}"
                    gr.Warning(status)
                elif isinstance(event, Notice):
                    gr.Info(_with_download_hint(event.message))
                elif isinstance(event, CastDrawn):
                    status = describe(event).split(" -> ")[0]
                elif isinstance(event, FilmReady):
                    film = self.share(event.film, request)
                    cast_sheet = event.film.with_name(f"{event.film.stem}_cast.png")
                    files = [self.share(p, request) for p in (event.film, event.srt,
                                                             event.contact_sheet, cast_sheet)
                             if p.is_file()]
                    status = f"film ready: {event.duration:.1f} s"
                yield (_progress(status, started, done, total),
                       [previews[k] for k in sorted(previews)], film, files)
        except JobError as err:
            raise gr.Error(_with_download_hint(str(err))) from None
        finally:
            self.cancels.pop(request.session_hash or job["id"], None)

    def upload_keyframe(self, job_id: str, table: Any, scene: float, upload: str | None,
                        request: gr.Request):
        """Keep an uploaded image as a scene's keyframe and write it into the table."""
        rows = _rows(table)
        number = int(scene or 0)
        if not upload:
            raise gr.Error("choose an image to upload first")
        if not 1 <= number <= len(rows):
            raise gr.Error(f"scene {number}: the storyboard has scenes 1-{len(rows)}")
        try:
            value = self.jobs.add_keyframe(self.user(request), job_id, number, Path(upload),
                                           self.admin(request))
        except JobError as err:
            raise gr.Error(str(err)) from None
        rows[number - 1][TABLE_COLUMNS.index("keyframe")] = value
        return rows

    def upload_music(self, job_id: str, upload: str | None, request: gr.Request) -> str:
        """Check background music and keep it with the job; the next render uses it."""
        if not upload:
            raise gr.Error("choose a music file to upload first")
        try:
            kept = self.jobs.add_music(self.user(request), job_id, Path(upload),
                                       self.admin(request))
        except JobError as err:
            raise gr.Error(str(err)) from None
        return f"music: {kept.name}"

    def hear_voice(self, voice: str, prompt: str = "") -> str:
        """A sample sentence in the chosen voice (in the prompt's language), as a WAV file."""
        language = voice_language(voice) or (detect_language(prompt) if prompt.strip() else "en")
        try:
            speech = narrate(SAMPLE_TEXT[language], language, voice or "auto")
        except VoiceError as err:
            raise gr.Error(str(err)) from None
        path = Path(tempfile.gettempdir()) / "storyreel_voices" / \
            f"{(voice or 'auto').replace(':', '_')}_{language}.wav"
        write_wav(speech, path)
        return str(path)

    @staticmethod
    def subtitle_preview(name: str, aspect: str = "16:9", size: float | None = None,
                         colour: str | None = None, position: str | None = None) -> Image.Image:
        """A frame of the chosen format with a sample subtitle in the chosen style."""
        width, height = (v // 2 for v in ASPECTS.get(aspect, ASPECTS["16:9"]))
        style = _style(name or "classic", size, colour, position)
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        frame = (np.array([70, 110, 150], np.float32) * (1 - ramp)
                 + np.array([200, 170, 120], np.float32) * ramp)
        frame = np.broadcast_to(frame, (height, width, 3)).astype(np.uint8)
        band = subtitle_band(PREVIEW_LINE, width, height, style,
                             highlight=len(words_of(PREVIEW_LINE)) // 2)
        return Image.fromarray(burn_in(frame, band))

    def cancel_render(self, request: gr.Request) -> str:
        event = self.cancels.get(request.session_hash)
        if event is not None:
            event.set()
        return "cancelling: the scene in flight stops within one step; finished scenes are kept"

    def list_jobs(self, request: gr.Request):
        jobs = self._visible_jobs(request)
        posters = [(self.share(picture, request), job["id"]) for job in jobs
                   if (picture := _picture_of(job)) is not None]
        return [_job_row(job) for job in jobs], posters

    def open_job(self, job_id: str, request: gr.Request):
        job = self._job(job_id, request)
        board = Storyboard.from_dict(job["storyboard"])
        folder = scenes_folder(job)
        previews = [(self.share(scene_paths(folder, n)["clip"], request), _caption(board, n))
                    for n in range(1, len(board.scenes) + 1)
                    if scene_paths(folder, n)["clip"].is_file()]
        film = job.get("film") or {}
        film_path = self.share(film["path"], request) if film and Path(film["path"]).is_file() else None
        files = [self.share(film[k], request) for k in ("path", "srt", "contact_sheet")
                 if film and Path(film[k]).is_file()]
        return (board.to_rows(), job["id"], job["prompt"], previews, film_path, files or None,
                f"{job['status']}: {job.get('message') or ''}", board.aspect,
                board.voice if board.voice in _voices() else "auto")

    # ---- History as a library of films -------------------------------------------------------

    def library(self, query: str, request: gr.Request):
        """(cards, their job ids, the jobs as rows): newest first, those whose prompt or title
        holds `query`; each card a poster shown whole with title, date, length, state, scenes."""
        jobs = self._visible_jobs(request)
        words = (query or "").strip().lower()
        shown = [job for job in jobs
                 if not words or words in f"{job.get('prompt', '')} {job.get('title', '')}".lower()]
        cards = [(self.share(_picture_of(job) or self._no_picture(), request), _card_caption(job))
                 for job in shown]
        return cards, [job["id"] for job in shown], [_job_row(job) for job in jobs]

    def _visible_jobs(self, request: gr.Request) -> list[dict[str, Any]]:
        # without accounts everyone is admin: every job made on this machine, CLI ones too
        return self.jobs.history.jobs(None if self.admin(request) else self.user(request))

    def _no_picture(self) -> Path:
        """The card of a job with no picture yet: a plain 16:9 frame."""
        path = self.jobs.history.root / ".studio" / "no_picture.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (320, 180), (40, 42, 48)).save(path)
        return path

    def open_card(self, ids: list[str], evt: gr.SelectData, request: gr.Request):
        """One click on a card: the job opens in Create (storyboard, previews, film)."""
        index = evt.index if isinstance(evt.index, int) else None
        return self._open_in_create(ids[index] if ids and index is not None
                                    and index < len(ids) else "", request)

    def open_row(self, evt: gr.SelectData, request: gr.Request):
        """One click on a row of the job list: the same as a card."""
        row = evt.row_value or []
        return self._open_in_create(str(row[0]) if row else "", request)

    def _open_in_create(self, job_id: str, request: gr.Request):
        opened = self.open_job(job_id, request)
        return (*opened, self.header(job_id, request), self.keyframes(job_id, request),
                gr.Tabs(selected="create"), job_id, self.details(job_id, request))

    def header(self, job_id: str, request: gr.Request) -> str:
        """The slim line above the tabs: the open film's title and state."""
        if not job_id:
            return "### Storyreel"
        job = self._job(job_id, request)
        return f"### {_job_title(job)} · {job['status']}"

    def details(self, job_id: str, request: gr.Request) -> str:
        if not job_id:
            return ""
        job = self._job(job_id, request)
        return f"**{_card_caption(job)}**  \njob `{job['id']}` · {job.get('message') or ''}"

    def keyframes(self, job_id: str, request: gr.Request):
        """The open job's keyframes, one per rendered scene, captioned with its number."""
        if not job_id:
            return []
        folder = scenes_folder(self._job(job_id, request))
        shown = []
        for number in range(1, MAX_SCENES + 1):
            keyframe = scene_paths(folder, number)["keyframe"]
            if keyframe.is_file():
                shown.append((self.share(keyframe, request), str(number)))
        return shown

    # ---- cast and look ---------------------------------------------------------------------

    def cast_view(self, job_id: str, request: gr.Request) -> list[Any]:
        """The Cast panel as the job keeps it: each slot's name, look, strength and picture,
        then the film's look picture and its strength."""
        job = self._job(job_id, request) if job_id else None
        board = Storyboard.from_dict(job["storyboard"]) if job else None
        values: list[Any] = []
        for k in range(1, MAX_CAST + 1):
            member = board.cast[k - 1] if board and k <= len(board.cast) else None
            picture = cast_picture(board, k, scenes_folder(job), Path(job["dir"]),
                                   drawn=False) if member else None
            values += [member.name if member else "", member.look if member else "",
                       member.strength if member else DEFAULT_STRENGTH,
                       self.share(picture, request) if picture else None]
        look = Path(job["dir"]) / board.look_reference if board and board.look_reference else None
        values += [self.share(look, request) if look and look.is_file() else None,
                   board.look_strength if board else DEFAULT_LOOK_STRENGTH]
        return values

    # The panel's handlers take the request first: Gradio passes it by position, and the
    # panel's values follow as *values (per slot: name, look, strength, picture; then the look).

    def save_cast(self, request: gr.Request, job_id: str, table: Any, *values: Any) -> list[Any]:
        """Keep the panel's cast and look with the job (a gr.Error names a bad field); returns
        the table (a renamed member renamed in it) and the panel as kept."""
        board = self._keep_cast(job_id, table, list(values), request)
        return [board.to_rows(), *self.cast_view(job_id, request)]

    def _keep_cast(self, job_id: str, table: Any, values: list[Any], request: gr.Request,
                   redraw: int | None = None) -> Storyboard:
        job = self._job(job_id, request)
        stored = Storyboard.from_dict(job["storyboard"])
        cast, renamed = [], {}
        for k in range(MAX_CAST):
            name, look, strength, picture = values[4 * k:4 * k + 4]
            if not (name or "").strip():
                continue
            old = stored.cast[k] if k < len(stored.cast) else None
            if old is not None and old.name != name.strip():
                renamed[old.name] = name.strip()
            seed = old.seed if old else random.randint(0, 2**32 - 1)
            if redraw == k:  # a new picture: drawn again from the look with a new seed
                picture, seed = None, random.randint(0, 2**32 - 1)
            cast.append({"name": name, "look": look, "strength": strength,
                         "reference": picture, "seed": seed})
        look_picture, look_strength = values[4 * MAX_CAST:4 * MAX_CAST + 2]
        try:
            return self.jobs.set_cast(self.user(request), job["id"], _rows(table), cast,
                                      look_picture, look_strength, renamed, self.admin(request))
        except JobError as err:
            raise gr.Error(str(err)) from None

    def draw_again(self, slot: int, request: gr.Request, job_id: str, table: Any, *values: Any):
        """A new picture for cast slot `slot` (0-based), drawn now from its look."""
        board = self._keep_cast(job_id, table, list(values), request, redraw=slot)
        if slot >= len(board.cast):
            raise gr.Error(f"cast {slot + 1}: give the character a name and a look first")
        lines: list[str] = []
        for event in self.jobs.draw_cast(self.user(request), job_id, self.admin(request)):
            if isinstance(event, (CastDrawn, Notice)):
                lines.append(describe(event))
                yield ["\n".join(f"- {line}" for line in lines), *[gr.skip()] * (4 * MAX_CAST + 2)]
        yield ["\n".join(f"- {line}" for line in lines), *self.cast_view(job_id, request)]

    def use_first_keyframe(self, request: gr.Request, job_id: str, table: Any,
                           *values: Any) -> list[Any]:
        """Scene 1's keyframe, once the person likes it, becomes the film's look."""
        keyframe = scene_paths(scenes_folder(self._job(job_id, request)), 1)["keyframe"]
        if not keyframe.is_file():
            raise gr.Error("look_reference: scene 1 has no keyframe yet; render it first")
        values = list(values)
        values[4 * MAX_CAST] = str(keyframe)
        board = self._keep_cast(job_id, table, values, request)
        return [board.to_rows(), *self.cast_view(job_id, request)]

    def ask_delete(self, job_id: str, request: gr.Request):
        """Delete asks first: the confirmation row, naming the film."""
        if not job_id:
            raise gr.Error("click a film first, then Delete")
        title = _job_title(self._job(job_id, request))
        return gr.Row(visible=True), f"Delete **{title}** and every file it made? This cannot " \
                                     f"be undone."

    def confirm_delete(self, job_id: str, query: str, request: gr.Request):
        self.delete_job(job_id, request)
        return (*self.library(query, request), gr.Row(visible=False), "", "")

    def rerender_film(self, job_id: str, request: gr.Request):
        """Render every scene of the selected job again, as its storyboard stands."""
        job = self._job(job_id, request)
        board = Storyboard.from_dict(job["storyboard"])
        yield from self._stream(request, job, board, None)

    def delete_job(self, job_id: str, request: gr.Request):
        try:
            self.jobs.delete(self.user(request), (job_id or "").strip(), self.admin(request))
        except JobError as err:
            raise gr.Error(str(err)) from None
        return self.list_jobs(request)

    def system_view(self) -> tuple[str, Any]:
        """The System tab: its report, and the missing models offered for download."""
        from models.status import system_report

        report = system_report()
        missing = [s.spec.name for s in report.models if not s.present and s.spec.name in DOWNLOADABLE]
        return (self.system_markdown(report),
                gr.update(choices=missing, value=missing[0] if missing else None))

    def download_model(self, name: str, source: str, request: gr.Request):
        """Fetch a model with `python -m models download` in its own process, streaming its
        progress line; the studio itself stays offline and responsive. Once it is here, the
        System tab lists it and the voice picker offers its voices (a voice model's) at once;
        the picker's choices are otherwise read when the studio starts."""
        if self.accounts and not self.admin(request):
            raise gr.Error("only an admin account can download models")
        if not name:
            raise gr.Error("choose a missing model to download (the list shows only missing ones)")
        command = [sys.executable, "-m", "models", "download", name, "--source", source or "hf"]
        env = {**os.environ, "HF_HUB_OFFLINE": "0"}  # the user asked for this download
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) as proc:  # text mode reads "\r"-ended progress as lines
            assert proc.stderr is not None and proc.stdout is not None
            last = ""
            for line in proc.stderr:
                if line.strip():
                    last = line.strip()
                    if "%" in last:
                        yield f"**{name}** ({source}): {last}", gr.skip(), gr.skip()
            proc.wait()
            ready = proc.stdout.read().strip()
        if proc.returncode:
            raise gr.Error(last.removeprefix("error: ") or f"download of {name} failed")
        yield f"**{name}**: {ready}", self.system_view()[0], gr.update(choices=_voices())

    @staticmethod
    def system_markdown(report: Any = None) -> str:
        from models.status import system_report

        report = report or system_report()
        lines = [f"**Device:** {report.device}", f"**Memory profile:** {report.profile}"]
        if report.vram_free_gib is not None:
            lines.append(f"**VRAM:** {report.vram_used_gib:.1f} GiB used by Storyreel, "
                         f"{report.vram_free_gib:.1f} GiB free")
        lines.append("**Loaded models:** " + (", ".join(report.loaded) or "none yet"))
        lines.append("\n| model | role | present | licence | how to get it |\n|---|---|---|---|---|")
        for state in report.models:
            lines.append(f"| {state.spec.repo_id} | {state.spec.role} | "
                         f"{'yes' if state.present else 'no'} | {state.spec.licence} | "
                         f"{'' if state.present else state.how_to_get} |")
        return "\n".join(lines)



# ---- helpers -------------------------------------------------------------------------------


def _with_download_hint(message: str) -> str:
    """A missing-model message, pointing at the System tab where the model can be fetched."""
    if "python -m models download" in message:
        return message + " (or use the Download button in the System tab)"
    return message


def _quality(choice: str | None) -> str | None:
    """The Quality radio's choice for the render: "auto" leaves the studio's default (its flags)
    in place; anything else the render checks and refuses by name."""
    return None if choice in (None, "", "auto") else choice


def _voices() -> list[str]:
    """The voice picker's choices: this machine's voices for both languages (read when the
    page is built, not when the module is imported)."""
    return list(dict.fromkeys(voice_choices("en") + voice_choices("zh")))


def _style(name: str | None, size: float | None = None, colour: str | None = None,
           position: str | None = None) -> SubtitleStyle | None:
    """The subtitle style picked on the page (None: the studio's default); "auto" position
    keeps the style's own."""
    if not name:
        return None
    try:
        return subtitle_style(name, size, colour or None,
                              None if position in (None, "", "auto") else position)
    except ValueError as err:
        raise gr.Error(str(err)) from None


def _same_number(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-6
    except (TypeError, ValueError):
        return False


def _rows(table: Any) -> list[list[Any]]:
    if table is None:
        return []
    if isinstance(table, dict):  # gradio_client sends {"headers": [...], "data": [...]}
        table = table.get("data", [])
    if hasattr(table, "values"):  # a pandas DataFrame
        table = table.values.tolist()
    return [list(row) for row in table]


def _caption(board: Storyboard, number: int, backend: str = "") -> str:
    label = " (animatic)" if backend == "animatic" else ""
    return f"{number}. {board.scenes[number - 1].description}{label}"


def _working(working: dict[int, str], what: str, scene: int, done: int, total: int) -> str:
    """The progress line: each scene in flight (with its worker, on several GPUs) and where it
    is; `what` is the latest news of `scene`."""
    working.setdefault(scene, f"scene {scene}")
    where = working[scene].split(":")[0]
    working[scene] = f"{where}: {what}"
    return f"{done} of {total} done; " + "; ".join(working[k] for k in sorted(working))


def _progress(status: str, started: float, done: int, total: int) -> str:
    elapsed = time.perf_counter() - started
    estimate = f", about {elapsed / done * (total - done):.0f} s left" if done else ""
    return f"{status} · {elapsed:.0f} s elapsed{estimate}"


def _job_title(job: dict[str, Any]) -> str:
    return (job.get("title") or (job.get("storyboard") or {}).get("title")
            or job.get("prompt", "")[:60])


def _job_seconds(job: dict[str, Any]) -> float:
    """The film's length, or the storyboard's before there is a film."""
    scenes = (job.get("storyboard") or {}).get("scenes", [])
    return float((job.get("film") or {}).get("duration")
                 or sum(s.get("duration", 0) for s in scenes))


def _job_date(job: dict[str, Any]) -> str:
    return job["created"][:16].replace("T", " ")


def _job_row(job: dict[str, Any]) -> list[Any]:
    """A job in the list: id, date, prompt, state, seconds."""
    return [job["id"], _job_date(job), job["prompt"][:80], job["status"],
            round(_job_seconds(job), 1)]


def _card_caption(job: dict[str, Any]) -> str:
    scenes = (job.get("storyboard") or {}).get("scenes", [])
    return (f"{_job_title(job)} · {_job_date(job)} · {_job_seconds(job):.0f} s · "
            f"{job['status']} · {len(scenes)} scenes")


def _picture_of(job: dict[str, Any]) -> Path | None:
    """The job's poster, or before there is a film its first keyframe; None without either."""
    for candidate in ((job.get("film") or {}).get("poster"), _first_keyframe(job)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _first_keyframe(job: dict[str, Any]) -> str | None:
    for scene in (job.get("scenes") or {}).values():
        if scene.get("keyframe"):
            return scene["keyframe"]
    return None


# ---- layout --------------------------------------------------------------------------------


# Passed to launch(): the History cards show each poster whole at its own aspect ratio; the
# storyboard's text columns wrap so every column fits the width; a quiet header line.
CSS = """
#job-header h3 { margin: 0; font-weight: 600; }
#history .thumbnails, #history .grid-wrap { overflow-x: hidden; }
#history button.thumbnail-item { height: auto !important; aspect-ratio: auto !important; }
#history button.thumbnail-item img { width: 100% !important; height: auto !important;
                                     object-fit: contain !important; }
#storyboard table { table-layout: fixed; width: 100% !important; }
#storyboard td { white-space: normal !important; overflow-wrap: anywhere; }
#storyboard th { white-space: normal !important; font-size: 0.8em; overflow-wrap: normal; }
#storyboard .table-wrap, #storyboard .table-container { overflow-x: hidden !important; }
"""

# Ctrl+Enter (Cmd+Enter on a Mac): in the prompt it writes the storyboard, in the table it renders.
SHORTCUTS_JS = """
() => {
  document.addEventListener('keydown', (e) => {
    if (!(e.ctrlKey || e.metaKey) || e.key !== 'Enter' || !e.target.closest) return;
    const target = e.target.closest('#prompt') ? '#plan-btn'
                 : e.target.closest('#storyboard') ? '#render-btn' : null;
    if (target) { e.preventDefault(); e.stopPropagation(); document.querySelector(target).click(); }
  }, true);
}
"""

# The storyboard's columns: wide text columns, narrow short ones (shares of the table's width;
# they add up to 95%: the row numbers' column takes the rest, down to about 960 px wide).
COLUMN_WIDTHS = {"description": "16%", "narration": "14%", "visual_prompt": "17%",
                 "cast": "7%", "camera": "8%", "motion": "6%", "duration": "6%",
                 "transition": "7%", "keyframe": "6%", "seed": "8%"}
NUMBER_COLUMNS = ("duration", "seed")


def _choices_note() -> str:
    from pipeline.storyboard import CAMERAS, MOTIONS, TRANSITIONS

    return (f"camera: {', '.join(CAMERAS)} · motion: {', '.join(MOTIONS)} · transition: "
            f"{', '.join(TRANSITIONS)} · keyframe: empty, continue, or an upload (below)")


def _draw_slot(studio: Studio, slot: int) -> Any:
    """The Draw button of cast slot `slot` (Gradio reads the handler's own signature)."""
    def draw(request: gr.Request, job_id: str, table: Any, *values: Any):
        yield from studio.draw_again(slot, request, job_id, table, *values)
    return draw


def build(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="Storyreel") as demo:
        header = gr.Markdown("### Storyreel", elem_id="job-header")
        job_id = gr.Textbox(visible=False, elem_id="job-id")  # ids stay in History and the API
        with gr.Tabs(elem_id="tabs") as tabs, gr.Tab(i18n("create"), id="create"):
            with gr.Row():
                prompt = gr.Textbox(label=i18n("prompt"), elem_id="prompt", scale=4,
                                    placeholder="制作一段关于森林探险的短视频，包含河流和小动物")
                style = gr.Textbox(label=i18n("style"), value=PlanRequest.style, scale=2)
            with gr.Row():
                scenes = gr.Slider(1, MAX_SCENES, value=5, step=1, label=i18n("scenes"),
                                   elem_id="scenes")
                seconds = gr.Number(label=i18n("seconds"), value=20, minimum=2, maximum=360)
                plan_btn = gr.Button(i18n("plan"), elem_id="plan-btn", variant="primary")
            planner_text = gr.Textbox(label=i18n("planner_text"), lines=3, max_lines=6,
                                      elem_id="planner-text", interactive=False)
            with gr.Row():
                aspect = gr.Radio(list(ASPECTS), value="16:9", label=i18n("aspect"),
                                  elem_id="aspect", scale=2)
                voice = gr.Dropdown(_voices(), value="auto", label=i18n("voice"), elem_id="voice",
                                    scale=2)
                hear_btn = gr.Button(i18n("hear_voice"), elem_id="hear-voice", scale=1)
                voice_sample = gr.Audio(label=i18n("voice_sample"), elem_id="voice-sample",
                                        type="filepath", interactive=False, scale=2)
            notes = gr.Markdown(elem_id="plan-notes")
            storyboard = gr.Dataframe(
                headers=list(TABLE_COLUMNS),
                datatype=["number" if c in NUMBER_COLUMNS else "str" for c in TABLE_COLUMNS],
                type="array", interactive=True, label=i18n("storyboard"), elem_id="storyboard",
                wrap=True, column_count=len(TABLE_COLUMNS), show_row_numbers=True,
                column_widths=[COLUMN_WIDTHS[c] for c in TABLE_COLUMNS])
            gr.Markdown(_choices_note(), elem_id="storyboard-choices")
            keyframe_strip = gr.Gallery(label=i18n("keyframes"), elem_id="keyframes",
                                        columns=MAX_SCENES // 2, height="auto",
                                        object_fit="contain", allow_preview=True)
            cast_inputs: list[Any] = []   # per slot: name, look, strength, picture; then the look
            draw_buttons: list[Any] = []
            with gr.Accordion(i18n("cast_panel"), open=True, elem_id="cast-panel"):
                with gr.Row():
                    for k in range(1, MAX_CAST + 1):
                        with gr.Column(min_width=180, elem_id=f"cast-{k}",
                                       elem_classes="cast-card"):
                            picture = gr.Image(type="filepath", label=i18n("cast_picture"),
                                               height=160, sources=["upload"],
                                               elem_id=f"cast-{k}-picture")
                            name = gr.Textbox(label=i18n("cast_name"), max_lines=1,
                                              elem_id=f"cast-{k}-name")
                            look = gr.Textbox(label=i18n("cast_look"), lines=2,
                                              elem_id=f"cast-{k}-look")
                            strength = gr.Slider(0, 1, value=DEFAULT_STRENGTH, step=0.05,
                                                 label=i18n("cast_strength"),
                                                 elem_id=f"cast-{k}-strength")
                            draw_buttons.append(gr.Button(i18n("draw_again"), size="sm",
                                                          elem_id=f"cast-{k}-draw"))
                            cast_inputs += [name, look, strength, picture]
                with gr.Row():
                    look_picture = gr.Image(type="filepath", label=i18n("look_picture"),
                                            height=160, sources=["upload"],
                                            elem_id="look-picture")
                    with gr.Column():
                        look_strength = gr.Slider(0, 1, value=DEFAULT_LOOK_STRENGTH, step=0.05,
                                                  label=i18n("look_strength"),
                                                  elem_id="look-strength")
                        use_first_btn = gr.Button(i18n("use_first_keyframe"),
                                                  elem_id="use-first-keyframe")
                        save_cast_btn = gr.Button(i18n("save_cast"), elem_id="save-cast")
                cast_inputs += [look_picture, look_strength]
                cast_notes = gr.Markdown(elem_id="cast-notes")
            with gr.Row():
                with gr.Column():
                    subtitles = gr.Dropdown(list(SUBTITLE_STYLES), value="classic",
                                            label=i18n("subtitle_style"),
                                            elem_id="subtitle-style")
                    subtitle_size = gr.Slider(0.5, 2.0, value=1.0, step=0.1,
                                              label=i18n("subtitle_size"),
                                              elem_id="subtitle-size")
                    with gr.Row():
                        subtitle_colour = gr.ColorPicker(value="#ffffff",
                                                         label=i18n("subtitle_colour"),
                                                         elem_id="subtitle-colour")
                        subtitle_position = gr.Radio(["auto", *POSITIONS], value="auto",
                                                     label=i18n("subtitle_position"),
                                                     elem_id="subtitle-position")
                subtitle_look = gr.Image(value=Studio.subtitle_preview("classic"),
                                         label=i18n("subtitle_preview"), interactive=False,
                                         elem_id="subtitle-preview", height=240)
            with gr.Row():
                quality = gr.Radio(list(QUALITIES), value="auto", label=i18n("quality"),
                                   info=i18n("quality_info"), elem_id="quality", scale=3)
                render_btn = gr.Button(i18n("render"), elem_id="render-btn", variant="primary")
                cancel_btn = gr.Button(i18n("cancel"), elem_id="cancel-btn", variant="stop")
            progress = gr.Markdown(elem_id="progress")
            previews = gr.Gallery(label=i18n("previews"), elem_id="previews", columns=3,
                                  allow_preview=True, height="auto")
            film = gr.Video(label=i18n("film"), elem_id="film", format="mp4")
            downloads = gr.File(label=i18n("downloads"), file_count="multiple",
                                elem_id="downloads")
            with gr.Row():
                scene_no = gr.Number(label=i18n("rerender_scene"), value=1, precision=0,
                                     minimum=1, maximum=MAX_SCENES)
                new_seed = gr.Checkbox(label=i18n("new_seed"), value=True)
                rerender_btn = gr.Button(i18n("rerender"), elem_id="rerender-btn")
            with gr.Row():
                keyframe_file = gr.File(label=i18n("keyframe_upload"), file_types=[
                    ".png", ".jpg", ".jpeg", ".webp"], type="filepath", elem_id="keyframe-upload")
                keyframe_btn = gr.Button(i18n("use_keyframe"), elem_id="keyframe-btn")
            with gr.Row():
                music_file = gr.File(label=i18n("music_upload"), file_types=[
                    ".mp3", ".wav", ".m4a", ".ogg", ".aac", ".flac"], type="filepath",
                    elem_id="music-upload")
                music_btn = gr.Button(i18n("use_music"), elem_id="music-btn")
        with tabs, gr.Tab(i18n("history"), id="history") as history_tab:
            with gr.Row():
                search = gr.Textbox(label=i18n("search"), elem_id="history-search", scale=4)
                refresh_btn = gr.Button(i18n("refresh"), elem_id="history-refresh", scale=1)
            cards = gr.Gallery(label=i18n("films"), elem_id="history", columns=4,
                               height="auto", object_fit="contain", allow_preview=False,
                               fit_columns=False)
            card_ids = gr.State([])
            selected = gr.Textbox(visible=False, elem_id="selected-job")  # the clicked film
            details = gr.Markdown(elem_id="history-details")
            with gr.Row():
                resume_btn = gr.Button(i18n("resume"), elem_id="resume-btn")
                rerender_film_btn = gr.Button(i18n("rerender_film"), elem_id="rerender-film-btn")
                delete_btn = gr.Button(i18n("delete"), elem_id="delete-btn", variant="stop")
            with gr.Row(visible=False, elem_id="delete-confirm-row") as confirm_row:
                confirm_text = gr.Markdown(elem_id="delete-question")
                confirm_btn = gr.Button(i18n("confirm_delete"), elem_id="delete-confirm",
                                        variant="stop")
                keep_btn = gr.Button(i18n("keep"), elem_id="delete-keep")
            with gr.Accordion(i18n("all_jobs"), open=False):
                jobs_table = gr.Dataframe(headers=["id", "date", "prompt", "status", "seconds"],
                                          type="array", interactive=False, label=i18n("jobs"),
                                          elem_id="history-list")
            posters = gr.Gallery(visible=False)  # the /history API's second output
            open_btn = gr.Button(visible=False)  # the /open_job and /delete_job APIs
            api_delete_btn = gr.Button(visible=False)
            job_status = gr.Markdown()
        with tabs, gr.Tab(i18n("system"), id="system") as system_tab:
            system = gr.Markdown(elem_id="system")
            system_btn = gr.Button(i18n("refresh"))
            with gr.Row():
                missing_model = gr.Dropdown(choices=DOWNLOADABLE, label=i18n("missing_model"),
                                            value=None, elem_id="download-model")
                source = gr.Radio(["hf", "modelscope"], value="hf", label=i18n("source"),
                                  elem_id="download-source")
                download_btn = gr.Button(i18n("download"), elem_id="download-btn")
            download_status = gr.Markdown(elem_id="download-status")

        render_outputs = [progress, previews, film, downloads]
        subtitle_inputs = [subtitles, subtitle_size, subtitle_colour, subtitle_position]
        show_cast = {"fn": studio.cast_view, "inputs": job_id, "outputs": cast_inputs,
                     "api_visibility": "private"}
        keep_cast = {"fn": studio.save_cast, "inputs": [job_id, storyboard, *cast_inputs],
                     "outputs": [storyboard, *cast_inputs], "api_visibility": "private"}
        save_cast_btn.click(**{**keep_cast, "api_visibility": "public", "api_name": "save_cast"})
        plan_btn.click(studio.plan,
                       [prompt, style, scenes, seconds, aspect, voice],
                       [planner_text, storyboard, job_id, notes],
                       api_name="plan", concurrency_id=GPU, concurrency_limit=1,
                       ).then(studio.header, job_id, header, api_visibility="private",
                              ).then(**show_cast)
        render_event = render_btn.click(**keep_cast).success(
            studio.render, [job_id, storyboard, quality, aspect, voice, *subtitle_inputs],
            render_outputs, api_name="render", concurrency_id=GPU, concurrency_limit=1)
        rerender_event = rerender_btn.click(**keep_cast).success(
            studio.rerender,
            [job_id, storyboard, scene_no, new_seed, quality, aspect, voice, *subtitle_inputs],
            render_outputs,
            api_name="rerender_scene",
            concurrency_id=GPU, concurrency_limit=1)
        for event in (render_event, rerender_event):
            event.then(studio.header, job_id, header, api_visibility="private").then(
                studio.keyframes, job_id, keyframe_strip, api_visibility="private").then(
                **show_cast)
        use_first_btn.click(studio.use_first_keyframe, [job_id, storyboard, *cast_inputs],
                            [storyboard, *cast_inputs], api_visibility="private")
        for slot, button in enumerate(draw_buttons):
            button.click(_draw_slot(studio, slot), [job_id, storyboard, *cast_inputs],
                         [cast_notes, *cast_inputs], api_visibility="private",
                         concurrency_id=GPU, concurrency_limit=1)
        hear_btn.click(studio.hear_voice, [voice, prompt], voice_sample, api_name="hear_voice")
        for control in (subtitles, subtitle_size, subtitle_colour, subtitle_position, aspect):
            control.change(studio.subtitle_preview, [subtitles, aspect, subtitle_size,
                                                     subtitle_colour, subtitle_position],
                           subtitle_look, api_visibility="private")
        storyboard.input(studio.fit_table, [job_id, storyboard, voice], storyboard,
                         api_visibility="private")
        keyframe_btn.click(studio.upload_keyframe, [job_id, storyboard, scene_no, keyframe_file],
                           storyboard, api_name="upload_keyframe")
        music_btn.click(studio.upload_music, [job_id, music_file], progress,
                        api_name="upload_music")
        cancel_btn.click(studio.cancel_render, None, progress,
                         cancels=[render_event, rerender_event], queue=False,
                         api_name="cancel")
        library = [cards, card_ids, jobs_table]
        refresh_btn.click(studio.list_jobs, None, [jobs_table, posters], api_name="history",
                          ).then(studio.library, search, library, api_visibility="private")
        for trigger in (history_tab.select, search.change):
            trigger(studio.library, search, library, api_visibility="private")
        opened = [storyboard, job_id, prompt, previews, film, downloads, job_status, aspect, voice]
        cards.select(studio.open_card, card_ids,
                     [*opened, header, keyframe_strip, tabs, selected, details],
                     api_visibility="private").then(**show_cast)
        jobs_table.select(studio.open_row, None,
                          [*opened, header, keyframe_strip, tabs, selected, details],
                          api_visibility="private").then(**show_cast)
        open_btn.click(studio.open_job, selected, opened, api_name="open_job").then(**show_cast)
        to_create = {"fn": lambda: gr.Tabs(selected="create"), "inputs": None, "outputs": tabs,
                     "api_visibility": "private"}
        resume_btn.click(**to_create).then(studio.resume, selected, render_outputs,
                                           api_name="resume", concurrency_id=GPU,
                                           concurrency_limit=1)
        rerender_film_btn.click(**to_create).then(studio.rerender_film, selected, render_outputs,
                                                  api_name="rerender_film", concurrency_id=GPU,
                                                  concurrency_limit=1)
        delete_btn.click(studio.ask_delete, selected, [confirm_row, confirm_text],
                         api_visibility="private")
        keep_btn.click(lambda: gr.Row(visible=False), None, confirm_row,
                       api_visibility="private")
        confirm_btn.click(studio.confirm_delete, [selected, search],
                          [*library, confirm_row, selected, details], api_visibility="private")
        api_delete_btn.click(studio.delete_job, selected, [jobs_table, posters],
                             api_name="delete_job")
        for trigger in (system_btn.click, system_tab.select):
            trigger(studio.system_view, None, [system, missing_model], api_visibility="private")
        download_btn.click(studio.download_model, [missing_model, source],
                           [download_status, system, voice], api_name="download_model",
                           concurrency_id="download", concurrency_limit=1)
    return demo
