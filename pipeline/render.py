"""Render: every scene of a storyboard becomes a clip, scheduled over one or more workers.

    for event in render_storyboard(board, Path("outputs/job"), RenderSettings(backend="animatic")):
        print(describe(event))

The work runs in a thread of its own; this generator hands its events on as they happen (the
FramePack pattern), so a UI can show each scene the moment it is done. Who renders a scene is a
`SceneWorkers`: `LocalWorkers` (the default) renders in this process on this machine's GPU and
encodes a scene's clip while the next scene is being made; `pipeline.ray_workers.RayWorkers`
renders on Ray workers, one per GPU, on this machine or a LAN cluster. Both run the same
`SceneRenderer.render_scene` (pipeline/scene_render.py). This module is the head: it sends
scenes to idle workers, a "continue" scene only once its parent is done, and writes what comes
back into `out_dir` (atomically, its info file last), in the order scenes finish.

Cancel is cooperative: `cancel.set()` is checked after every denoising step; the scenes in
flight are dropped, those not started are never sent, and the clips already made are kept (one
still encoding is finished). Closing the generator cancels too.

Per scene, in `out_dir`: scene_NN.mp4 (H.264 yuv420p), scene_NN_keyframe.png,
scene_NN_last.png and scene_NN.json (models, seed, parameters, timings, worker).

The cast: a scene's keyframe prompt starts with the looks of the cast members in it, and their
pictures (and the film's style picture) steer its keyframe through the image adapter. A cast
member without a picture has one drawn from their look before the scenes start (cast_NN.png in
`out_dir`, reported as CastDrawn so the caller keeps it in the storyboard).
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from models.files import partial_name, sweep_partials, write_json_atomic
from pipeline.animate import release_frame_buffers
from pipeline.events import (CastDrawn, Event, Notice, RenderFinished, SceneDone, SceneFailed,
                             SceneStarted)
from pipeline.fonts import FontMissing, check_fonts
from pipeline.keyframes import SceneError, fit, load_upload, portrait_prompt
from pipeline.safety import ContentFilter
from pipeline.scene_render import (DEFAULT_STEPS, TURBO_STEPS, Reference, RenderCancelled,
                                   RenderedScene, RenderError, SceneRenderer, SceneTask,
                                   VideoChoice, WorkerLost)
from pipeline.storyboard import CONTINUE, CastMember, Scene, Storyboard, StoryboardError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "svd", "animatic")
QUALITIES = ("auto", "turbo", "full")
__all__ = ["BACKENDS", "DEFAULT_STEPS", "QUALITIES", "TURBO_STEPS", "LocalWorkers", "RenderError",
           "RenderSettings", "SceneWorkers", "render_storyboard"]


@dataclass
class RenderSettings:
    backend: str = "auto"           # "svd", "animatic", or "auto": svd when its weights and a GPU are here
    quality: str = "auto"           # "turbo": a step-distilled SVD-XT, 4 steps, no guidance;
                                    # "full": SVD-XT, 25 steps; auto: turbo when its weights are here
    video_model: str | None = None  # SVD id or folder; None = the quality's model
    image_model: str | None = None  # keyframe text-to-image id or folder; None = the default
    width: int | None = None        # frame size; None = the storyboard's aspect at SVD-XT's
    height: int | None = None       # native size (1024x576, 576x1024 or 768x768)
    steps: int | None = None        # denoising steps per run; None = the quality's (4 or 25)
    frames: int = 25                # frames per SVD run (SVD-XT 25, SVD 14)
    fps: int = 24                   # the film's frame rate
    profile: str = "auto"           # memory profile: fast, balanced, low, or auto (from free VRAM)
    seed: int | None = None         # overrides every scene's seed when set
    keyframe_steps: int = 2         # text-to-image steps (turbo models need 1-4)
    keyframe_guidance: float = 0.0  # turbo models are trained without guidance
    noise_aug_strength: float = 0.02
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    crossfade: float = 0.5          # seconds a crossfading scene overlaps the one before; that
                                    # scene's clip runs this much past its duration, so the film
                                    # lasts exactly the storyboard's total (assembly uses the same)
    only_scenes: list[int] = field(default_factory=list)  # 1-based; empty = every scene
    cast_only: bool = False         # draw the cast's missing pictures, render no scene

    def sized_for(self, board: Storyboard) -> RenderSettings:
        """These settings with the frame size filled in from the storyboard's aspect."""
        width, height = board.size
        if self.width is None and self.height is not None:
            width = int(round(self.height * width / height / 8)) * 8
        elif self.height is None and self.width is not None:
            height = int(round(self.width * height / width / 8)) * 8
        return replace(self, width=self.width or width, height=self.height or height)

    def check(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"backend {self.backend!r} is not one of: {', '.join(BACKENDS)}")
        if self.width is None or self.height is None:
            pass  # from the storyboard's aspect, at render time (sized_for)
        elif not (64 <= self.width <= 2048 and 64 <= self.height <= 2048):
            problems.append(f"size {self.width}x{self.height} is outside 64-2048 pixels")
        elif self.width % 8 or self.height % 8:
            problems.append(f"size {self.width}x{self.height}: width and height must be "
                            f"multiples of 8")
        if self.quality not in QUALITIES:
            problems.append(f"quality {self.quality!r} is not one of: {', '.join(QUALITIES)}")
        low, high = TURBO_STEPS
        if self.steps is not None and not 1 <= self.steps <= 200:
            problems.append(f"steps {self.steps} is outside 1-200")
        elif self.quality == "turbo" and self.steps is not None and not low <= self.steps <= high:
            problems.append(f"steps {self.steps}: turbo quality runs {low}-{high} steps (use "
                            f"--quality full for more)")
        if not 2 <= self.frames <= 64:
            problems.append(f"frames {self.frames} is outside 2-64")
        if not 1 <= self.fps <= 60:
            problems.append(f"fps {self.fps} is outside 1-60")
        if not 0 <= self.crossfade <= 5:
            problems.append(f"crossfade {self.crossfade} is outside 0-5 seconds")
        if problems:
            raise ValueError("; ".join(problems))


def picture_path(value: str, base_dir: Path) -> Path:
    """A picture the storyboard names (a keyframe upload, a cast or look picture): absolute, or
    relative to `base_dir`, the storyboard's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def drawn_picture(out_dir: Path, index: int) -> Path:
    """Where cast member `index`'s (1-based) picture is kept once drawn: beside the clips."""
    return out_dir / f"cast_{index:02d}.png"


def scene_paths(out_dir: Path, number: int) -> dict[str, Path]:
    stem = out_dir / f"scene_{number:02d}"
    return {"clip": stem.with_suffix(".mp4"), "keyframe": Path(f"{stem}_keyframe.png"),
            "last_frame": Path(f"{stem}_last.png"), "info": stem.with_suffix(".json")}


def clip_seconds(board: Storyboard, number: int, crossfade: float) -> float:
    """How long scene `number`'s clip runs: its duration, plus the crossfade when the next scene
    fades in over its end (the film's timeline gives each scene exactly its duration)."""
    return board.scenes[number - 1].duration + board.crossfade_into(number + 1, crossfade)


def check_renderable(board: Storyboard) -> None:
    """What every render and assembly checks before any model loads: the content filter over
    every text the film will draw or render (StoryboardError naming scene and field), and a
    font for every script in it (RenderError with the install hint)."""
    problems = ContentFilter.default().check_storyboard(board)
    if problems:
        raise StoryboardError(problems)
    try:
        check_fonts(board.drawn_texts())
    except FontMissing as err:
        raise RenderError(str(err)) from None


def unfinished_scenes(out_dir: Path, count: int) -> list[int]:
    """Scenes (1-based) not finished in `out_dir`: a scene is finished once its info JSON,
    written last and atomically, exists beside its clip."""
    return [n for n in range(1, count + 1)
            if not all(scene_paths(out_dir, n)[k].is_file() for k in ("clip", "info"))]



class SceneWorkers(Protocol):
    """Who renders scenes: `LocalWorkers` here, or `pipeline.ray_workers.RayWorkers`."""

    def prepare(self, settings: RenderSettings, needs_images: bool,
                emit: Callable[[Event], None], cancel: threading.Event,
                out_dir: Path) -> VideoChoice:
        """Get every worker ready for a film (models chosen and loaded); the film's choice.
        `out_dir` is the job's folder (a worker on this machine may encode its clips there)."""

    def idle(self) -> list[str]:
        """Workers that can take a scene now."""

    def submit(self, worker: str, task: SceneTask) -> None:
        """Start rendering `task` on `worker`."""

    def finished(self, timeout: float) -> list[tuple[int, RenderedScene | BaseException]]:
        """Scenes that ended since the last call (waits up to `timeout` s for one): the finished
        scene, or what stopped it (RenderCancelled, WorkerLost, the scene's own error)."""

    def cancel(self) -> None:
        """Stop the scenes in flight (within one denoising step)."""

    def release(self) -> None:
        """The film is over: free the workers for the next one."""


def render_storyboard(board: Storyboard, out_dir: Path, settings: RenderSettings | None = None,
                      cancel: threading.Event | None = None, base_dir: Path | None = None,
                      workers: SceneWorkers | None = None) -> Iterator[Event]:
    """Render the storyboard's scenes into `out_dir`, yielding events as they happen.

    `base_dir` resolves relative keyframe paths (the storyboard file's folder); `workers`
    renders the scenes (default: `LocalWorkers`, in this process).
    """
    settings = (settings or RenderSettings()).sized_for(board)
    settings.check()
    check_renderable(board)
    cancel = cancel or threading.Event()
    events: queue.Queue[Event | BaseException | None] = queue.Queue()
    director = _Director(board, Path(out_dir), settings, cancel, events.put,
                         base_dir or Path.cwd(), workers or LocalWorkers())

    def work() -> None:
        try:
            director.run()
        except BaseException as err:  # handed to the consumer below, which re-raises it
            events.put(err)
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name="storyreel-render", daemon=True)
    thread.start()
    try:
        while (item := events.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()  # a consumer that stops listening stops the work
        thread.join()


class _Director:
    """The head of a render: which scene goes to which worker, and what comes back."""

    MAX_LOST = 2  # a scene whose worker dies is sent again this many times

    def __init__(self, board: Storyboard, out_dir: Path, settings: RenderSettings,
                 cancel: threading.Event, emit: Callable[[Event], None], base_dir: Path,
                 workers: SceneWorkers):
        self.board, self.out_dir, self.settings = board, out_dir, settings
        self.cancel, self.emit, self.base_dir, self.workers = cancel, emit, base_dir, workers
        self.last_frames: dict[int, np.ndarray] = {}  # scenes finished in this render
        self.pictures: dict[Path, np.ndarray] = {}     # reference pictures read for this render
        self.portraits: list[int] = []  # cast pictures to draw first: -1 for the first member

    def run(self) -> None:
        started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sweep_partials(self.out_dir)  # a resumed folder loses what a killed writer left
        needs_images = self.settings.cast_only or any(s.keyframe is None
                                                      for s in self.board.scenes)
        try:
            choice = self.workers.prepare(self.settings, needs_images, self.emit, self.cancel,
                                          self.out_dir)
            for note in choice.notices:
                self.emit(Notice(note))
            self.portraits = self._portraits_to_draw(choice)
            outcomes = self._schedule(choice)
        finally:
            self.workers.release()
        todo = self._todo()
        done = [n for n in todo if outcomes.get(n) == "done"]
        failed = [n for n in todo if outcomes.get(n) in ("failed", "stop")]
        cancelled = self.cancel.is_set() and any(outcomes.get(n) in (None, "cancelled")
                                                 for n in todo)
        self.emit(RenderFinished(done, failed, cancelled, time.perf_counter() - started))

    def _todo(self) -> list[int]:
        if self.settings.cast_only:
            return []
        wanted = set(self.settings.only_scenes) or set(range(1, len(self.board.scenes) + 1))
        return [n for n in range(1, len(self.board.scenes) + 1) if n in wanted]

    def _portraits_to_draw(self, choice: VideoChoice) -> list[int]:
        """The cast members (as -1, -2, ...) in a scene to render with a generated keyframe who
        have no picture yet: drawn first, once, from their look."""
        wanted = set(self._todo())
        needed = [k for k, member in enumerate(self.board.cast, start=1) if not member.reference
                  and (self.settings.cast_only or any(
                      member.name in self.board.scenes[n - 1].cast
                      and self.board.scenes[n - 1].keyframe is None for n in wanted))]
        if needed and choice.image_model is None:
            names = ", ".join(self.board.cast[k - 1].name for k in needed)
            self.emit(Notice(f"no keyframe model to draw the pictures of {names}: their scenes "
                             f"follow their look text only"))
            return []
        return [-k for k in needed]

    def _schedule(self, choice: VideoChoice) -> dict[int, str]:
        """Send scenes to idle workers until every one has ended; returns each scene's outcome:
        "done", "failed", "stop" (disk full: every later scene would fail too), "cancelled".
        Cast pictures to draw (negative numbers) go first; scenes wait for them."""
        waiting = self.portraits + self._todo()  # not sent yet, in film order
        running: dict[int, str] = {}    # scene -> the worker rendering it
        outcomes: dict[int, str] = {}
        lost: Counter[int] = Counter()
        stopping = False
        while waiting or running:
            if not stopping and (self.cancel.is_set() or "stop" in outcomes.values()):
                stopping = True  # nothing more is sent; the scenes in flight are stopped
                waiting.clear()
                self.workers.cancel()
            for worker in self.workers.idle():
                number = self._next_scene(waiting, running)
                if number is None:
                    break
                waiting.remove(number)
                task = self._task(number)
                if isinstance(task, str):
                    outcomes[number] = task
                    continue
                self.workers.submit(worker, task)
                log.info("scene %d sent to %s", number, worker)
                running[number] = worker
                if number < 0:
                    self.emit(Notice(f"drawing {task.portrait_of}'s picture from their "
                                     f"look ({worker})"))
                else:
                    self.emit(SceneStarted(number, len(self.board.scenes), choice.backend,
                                           worker))
            for number, result in self.workers.finished(timeout=0.1):
                del running[number]
                if number < 0:
                    self._keep_portrait(-number, result)
                    continue
                if (isinstance(result, WorkerLost) and not stopping
                        and lost[number] < self.MAX_LOST):
                    lost[number] += 1
                    self.emit(Notice(f"{result}; scene {number} is rendered again", number))
                    waiting.insert(0, number)
                    continue
                if "stop" in outcomes.values() and isinstance(result, (RenderedScene,
                                                                     RenderCancelled)):
                    continue  # the disk is full: it would fail the same way; a resume redoes it
                outcomes[number] = self._attempt(number, lambda r=result: self._save(r))
        return outcomes

    def _next_scene(self, waiting: list[int], running: dict[int, str]) -> int | None:
        """The first waiting scene that can start now: a "continue" scene waits for its parent."""
        for number in waiting:
            if number < 0:
                return number
            if any(n < 0 for n in (*waiting, *running)):
                return None  # the cast's pictures first
            continues = self.board.scenes[number - 1].keyframe == CONTINUE
            if not (continues and (number - 1 in waiting or number - 1 in running)):
                return number
        return None

    def _task(self, number: int) -> SceneTask | str:
        """The scene's task, its keyframe resolved here (an upload, or the parent's last frame);
        or its outcome when it cannot start (reported)."""
        if number < 0:
            return self._portrait_task(self.board.cast[-number - 1], number)
        scene = self.board.scenes[number - 1]
        if self.settings.seed is not None:
            scene = Scene(**{**asdict(scene), "seed": self.settings.seed})
        seconds = clip_seconds(self.board, number, self.settings.crossfade)
        task = SceneTask(number, scene, self.board.title, seconds,
                         prompt=self.board.scene_prompt(number))

        def resolve() -> SceneTask:
            keyframe = self._given_keyframe(number, scene)
            if keyframe is not None:
                task.keyframe = np.asarray(keyframe[0].convert("RGB"))
                task.keyframe_source = keyframe[1]
                return task
            task.characters = [Reference(m.name, self._picture(m.reference, f"scene {number}, "
                                                               f"cast {m.name}"), m.strength)
                               for m in self.board.cast_of(number) if m.reference]
            task.look = self._look(f"scene {number}, look_reference")
            return task
        outcome = self._attempt(number, resolve)
        return task if outcome == "done" else outcome

    def _portrait_task(self, member: CastMember, number: int) -> SceneTask:
        """The task that draws a cast member's picture from their look (and the film's look)."""
        scene = Scene(description=member.name, visual_prompt=member.look, seed=member.seed)
        task = SceneTask(number, scene, self.board.title, 0.0, portrait_of=member.name,
                         prompt=portrait_prompt(member.look, self.board.style))
        try:
            task.look = self._look(f"cast {member.name}")
        except SceneError as err:
            self.emit(Notice(str(err)))
        return task

    def _keep_portrait(self, index: int, result: RenderedScene | BaseException) -> None:
        """Keep a drawn cast picture beside the scenes (cast_NN.png), name it in this render's
        storyboard and report it; a picture that could not be drawn leaves the look text."""
        member = self.board.cast[index - 1]
        if isinstance(result, BaseException):
            if not isinstance(result, RenderCancelled):
                self.emit(Notice(f"{member.name}'s picture could not be drawn ({result}); their "
                                 f"scenes follow their look text only"))
            return
        path = drawn_picture(self.out_dir, index)
        _write_bytes(path, result.keyframe_png)
        kept = os.path.relpath(path, self.base_dir) if path.resolve().is_relative_to(
            self.base_dir.resolve()) else str(path.resolve())
        self.board = self.board.with_cast_member(member.name, reference=kept)
        self.emit(CastDrawn(member.name, path, kept))

    def _look(self, where: str) -> Reference | None:
        """The film's style picture, when it has one."""
        if not self.board.look_reference:
            return None
        return Reference("look", self._picture(self.board.look_reference, where),
                         self.board.look_strength)

    def _picture(self, value: str, where: str) -> np.ndarray:
        """A reference picture (a path, relative to the storyboard's folder), read once."""
        path = picture_path(value, self.base_dir)
        if path not in self.pictures:
            try:
                with Image.open(path) as image:
                    image.thumbnail((1024, 1024))
                    self.pictures[path] = np.asarray(image.convert("RGB"))
            except (OSError, Image.DecompressionBombError) as err:
                raise SceneError(f"{where}: the picture {path.name} cannot be read "
                                 f"({type(err).__name__}); upload it again or clear it") from None
        return self.pictures[path]

    def _given_keyframe(self, number: int, scene: Scene) -> tuple[Image.Image, str] | None:
        """The picture a scene starts from when it is not generated: its upload, or the last
        frame of the scene before it for "continue"."""
        s = self.settings
        if scene.keyframe == CONTINUE:
            source = f"continue: last frame of scene {number - 1}"
            if number - 1 in self.last_frames:
                return fit(Image.fromarray(self.last_frames[number - 1]), s.width, s.height), source
            previous = scene_paths(self.out_dir, number - 1)["last_frame"]
            if not previous.is_file():
                raise SceneError(f"scene {number}, keyframe: 'continue' needs scene {number - 1}'s "
                                 f"last frame, which has not been rendered")
            with Image.open(previous) as image:
                return fit(image, s.width, s.height), source
        if scene.keyframe:
            path = picture_path(scene.keyframe, self.base_dir)
            return load_upload(path, number, s.width, s.height), f"upload: {path.name}"
        return None

    def _attempt(self, number: int, work: Callable[[], object]) -> str:
        """"done" when `work` ran, or how the scene ended: "cancelled", "failed", or "stop" when
        every later scene would fail the same way. Failures are reported as they happen."""
        try:
            work()
            return "done"
        except RenderCancelled:
            self.emit(Notice("cancelled; the scene in flight was dropped", number))
            return "cancelled"
        except (SceneError, WorkerLost) as err:
            self.emit(SceneFailed(number, str(err)))
            return "failed"
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.exception("scene %d failed", number)
                self.emit(SceneFailed(number, f"{type(err).__name__}: {err}"))
                return "failed"
            self.emit(SceneFailed(number, f"the disk is full ({self.out_dir}); free some space "
                                          f"and resume: finished clips are kept"))
            return "stop"
        except Exception as err:  # an unexpected failure: reported, logged, next scene
            log.exception("scene %d failed", number)
            self.emit(SceneFailed(number, f"{type(err).__name__}: {err}"))
            return "failed"

    def _save(self, result: RenderedScene | BaseException) -> None:
        """Write a finished scene into the job folder (each file whole or not at all, the info
        file last: a scene whose info file exists is finished) and report it."""
        if isinstance(result, BaseException):
            raise result
        paths = scene_paths(self.out_dir, result.number)
        _write_bytes(paths["keyframe"], result.keyframe_png)
        _write_bytes(paths["clip"], result.clip)
        _write_bytes(paths["last_frame"], result.last_frame_png)
        self.last_frames[result.number] = result.last_frame
        write_json_atomic(paths["info"], result.info)
        log.info("scene %d kept", result.number)
        self.emit(SceneDone(result.number, paths["clip"], paths["keyframe"], paths["last_frame"],
                            paths["info"], result.seconds, result.backend))


def _write_bytes(path: Path, data: bytes) -> None:
    partial = partial_name(path)
    partial.write_bytes(data)
    os.replace(partial, path)


_gpu_thread: ThreadPoolExecutor | None = None
_gpu_thread_lock = threading.Lock()


def gpu_thread() -> ThreadPoolExecutor:
    """The one thread that makes video-model scenes in this process, kept from film to film like
    the models it drives (an animatic, made on the CPU, gets a thread of its own per render).
    With a new thread per film, each film's first scene took 2.5-2.9 s against 2.1 s for the
    others on an H100 (turbo; bench/make_gpu.py); with this one, 2.1 s. Why a new thread is
    slower at first (per-thread state in torch or the CUDA libraries) was not traced."""
    global _gpu_thread
    with _gpu_thread_lock:
        if _gpu_thread is None:
            _gpu_thread = ThreadPoolExecutor(1, thread_name_prefix="storyreel-gpu")
        return _gpu_thread


class LocalWorkers:
    """Scenes rendered in this process, one at a time (this machine's GPU, or its CPU for an
    animatic), a video model's on `gpu_thread()`. A scene's clip is encoded on a thread of its
    own while the next scene is made, so the GPU does not wait for the encoder; at most two
    scenes' frames wait to be encoded."""

    NAME = "this machine"

    def __init__(self) -> None:
        self.renderer: SceneRenderer | None = None
        self.results: dict[int, Future[RenderedScene]] = {}
        self.making = False
        self.changed = threading.Event()
        self.stopped = threading.Event()  # set by cancel(): the scene being made stops
        self.maker: ThreadPoolExecutor | None = None  # where scenes are made: gpu_thread() or own
        self.making_jobs: list[Future[None]] = []  # this film's scenes sent to it
        self.encoder: ThreadPoolExecutor | None = None

    def prepare(self, settings: RenderSettings, needs_images: bool,
                emit: Callable[[Event], None], cancel: threading.Event,
                out_dir: Path) -> VideoChoice:
        self.stopped.clear()
        self.renderer = SceneRenderer(settings, emit,
                                      lambda: cancel.is_set() or self.stopped.is_set(), out_dir,
                                      self.NAME)
        self.encoder = ThreadPoolExecutor(1, thread_name_prefix="storyreel-encode")
        choice = self.renderer.prepare(needs_images)
        self.maker = (gpu_thread() if choice.backend == "svd"
                      else ThreadPoolExecutor(1, thread_name_prefix="storyreel-scene"))
        return choice

    def idle(self) -> list[str]:
        waiting = sum(not f.done() for f in self.results.values())
        return [] if self.making or waiting > 1 else [self.NAME]

    def submit(self, worker: str, task: SceneTask) -> None:
        result: Future[RenderedScene] = Future()
        self.results[task.number] = result
        self.making = True
        renderer = self.renderer

        def encode(made: object) -> None:
            try:
                result.set_result(renderer.finish(made))
            except BaseException as err:  # noqa: BLE001 - handed to the head through the future
                result.set_exception(err)
            self.changed.set()

        def make() -> None:
            try:
                made = renderer.make_frames(task)
            except BaseException as err:  # noqa: BLE001 - handed to the head through the future
                result.set_exception(err)
            else:
                self.encoder.submit(encode, made)
            finally:
                self.making = False
                self.changed.set()

        self.making_jobs.append(self.maker.submit(make))

    def finished(self, timeout: float) -> list[tuple[int, RenderedScene | BaseException]]:
        self.changed.wait(timeout)
        self.changed.clear()
        ended = []
        for number in [n for n, f in self.results.items() if f.done()]:
            future = self.results.pop(number)
            ended.append((number, future.exception() or future.result()))
        return ended

    def cancel(self) -> None:
        self.stopped.set()  # the renderer reads it after every step; an encode is finished

    def release(self) -> None:
        wait(self.making_jobs)
        for pool in (self.maker, self.encoder):
            if pool is not None and pool is not _gpu_thread:
                pool.shutdown(wait=True)
        self.renderer, self.maker, self.encoder = None, None, None
        self.making_jobs, self.results = [], {}
        release_frame_buffers()
