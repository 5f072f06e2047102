"""Render: every scene of a storyboard becomes a clip, one after another.

    for event in render_storyboard(board, Path("outputs/job"), RenderSettings(backend="animatic")):
        print(describe(event))

The work runs in a worker thread; this generator hands its events on as they happen (the
FramePack pattern), so a UI can show each scene the moment it is done. A second thread encodes
each scene's clip while the next scene is being made, so the GPU does not wait for the encoder
(a scene's SceneDone may come after the next scene's SceneStarted). Cancel is cooperative:
`cancel.set()` is checked after every denoising step; the scene in flight is dropped, and the
clips already made are kept (one still encoding is finished). Closing the generator cancels too.

Per scene, in `out_dir`: scene_NN.mp4 (H.264 yuv420p), scene_NN_keyframe.png,
scene_NN_last.png and scene_NN.json (models, seed, parameters, timings).
"""
from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from models.files import sweep_partials, write_json_atomic
from pipeline.animate import (MOTION_BUCKET, VideoParams, animatic_frames, animatic_tag,
                              frame_count, retime, svd_frames, svd_plan)
from pipeline.events import (Event, Notice, RenderFinished, SceneDone, SceneFailed, SceneStarted,
                             StepProgress)
from pipeline.fonts import FontMissing, check_fonts
from pipeline.keyframes import SceneError, fit, generate, load_upload, title_card
from pipeline.safety import ContentFilter
from pipeline.storyboard import CONTINUE, Scene, Storyboard, StoryboardError
from pipeline.video_io import write_mp4

if TYPE_CHECKING:
    from models.memory import Profile

log = logging.getLogger(__name__)

BACKENDS = ("auto", "svd", "animatic")
QUALITIES = ("auto", "turbo", "full")
TURBO_STEPS = (2, 8)    # the step-distilled model's range (4 by default)
DEFAULT_STEPS = {"turbo": 4, "full": 25}


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


class RenderError(RuntimeError):
    """The job cannot start (a model that will not load); the message says how to fix it."""


class RenderCancelled(Exception):
    """Raised inside a step callback to stop the scene in flight."""


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


def render_storyboard(board: Storyboard, out_dir: Path, settings: RenderSettings | None = None,
                      cancel: threading.Event | None = None,
                      base_dir: Path | None = None) -> Iterator[Event]:
    """Render the storyboard's scenes into `out_dir`, yielding events as they happen.

    `base_dir` resolves relative keyframe paths (the storyboard file's folder).
    """
    settings = (settings or RenderSettings()).sized_for(board)
    settings.check()
    check_renderable(board)
    cancel = cancel or threading.Event()
    events: queue.Queue[Event | BaseException | None] = queue.Queue()
    renderer = _Renderer(board, Path(out_dir), settings, cancel, events.put,
                         base_dir or Path.cwd())

    def work() -> None:
        try:
            renderer.run()
        except BaseException as err:  # handed to the consumer below, which re-raises it
            events.put(err)
        finally:
            events.put(None)

    worker = threading.Thread(target=work, name="storyreel-render", daemon=True)
    worker.start()
    try:
        while (item := events.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()  # a consumer that stops listening stops the work
        worker.join()


@dataclass
class _SceneFrames:
    """A scene whose frames are made, on its way to the encoder."""
    number: int
    scene: Scene
    frames: list[Any]     # RGB uint8 arrays at the film's fps
    seconds: float        # the clip's length: the scene's duration plus any crossfade tail
    source: str           # where the keyframe came from
    started: float        # perf_counter when the scene started
    keyframe_s: float
    video_s: float


def _collect(encoding: dict[int, Future[str]], outcomes: dict[int, str]) -> None:
    """Wait for the scene being encoded, if any, and record how it ended."""
    for number, future in list(encoding.items()):
        outcomes[number] = future.result()
        del encoding[number]


class _Renderer:
    def __init__(self, board: Storyboard, out_dir: Path, settings: RenderSettings,
                 cancel: threading.Event, emit: Any, base_dir: Path):
        self.board, self.out_dir, self.settings = board, out_dir, settings
        self.cancel, self.emit, self.base_dir = cancel, emit, base_dir
        self.backend = ""
        self.profile: Any = None
        self.video_pipe: Any = None
        self.compiling: str | None = None  # the compile key whose first run is under way
        self.image_pipe: Any = None
        self.image_model: str | None = None
        self.video_model: str | None = None
        self.quality: str | None = None  # "turbo" or "full" once the video model is chosen
        self.steps = 0                   # denoising steps per run of that quality
        self.last_frames: dict[int, Any] = {}  # the last scene made: its number -> last frame

    # ---- the job -------------------------------------------------------------------------

    def run(self) -> None:
        started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sweep_partials(self.out_dir)  # a resumed folder loses what a killed writer left
        self._choose_backend()
        self._load_image_model()
        wanted = set(self.settings.only_scenes) or set(range(1, len(self.board.scenes) + 1))
        todo = [n for n in range(1, len(self.board.scenes) + 1) if n in wanted]
        outcomes: dict[int, str] = {}  # scene -> "done", "failed", "stop" (disk full), "cancelled"
        # A scene's clip is encoded (CPU) while the next scene's keyframe and video (GPU) are made.
        # One encode at a time, so at most two scenes' frames are held in memory. Only this thread
        # writes `outcomes`: an encode's outcome is collected when it is waited for.
        encoding: dict[int, Future[str]] = {}  # the scene being encoded, if any
        with ThreadPoolExecutor(1, thread_name_prefix="storyreel-encode") as encoder:
            for number in todo:
                if self.cancel.is_set() or "stop" in outcomes.values():
                    break
                scene = self.board.scenes[number - 1]
                if self.settings.seed is not None:
                    scene = Scene(**{**asdict(scene), "seed": self.settings.seed})
                self.emit(SceneStarted(number, len(self.board.scenes), self.backend))
                outcome, made = self._attempt(number, lambda: self._make_frames(number, scene))
                if outcome != "ok":
                    outcomes[number] = outcome
                    if outcome == "cancelled":
                        break
                    continue
                _collect(encoding, outcomes)  # an unexpected error while encoding ends the job
                if "stop" in outcomes.values():
                    break  # the disk filled up under the previous scene: this one waits too
                encoding[number] = encoder.submit(self._encode_scene, made)
            _collect(encoding, outcomes)
        done = [n for n in todo if outcomes.get(n) == "done"]
        failed = [n for n in todo if outcomes.get(n) in ("failed", "stop")]
        cancelled = self.cancel.is_set() and any(outcomes.get(n) in (None, "cancelled")
                                                 for n in todo)
        self.emit(RenderFinished(done, failed, cancelled, time.perf_counter() - started))

    def _attempt(self, number: int, work: Callable[[], Any]) -> tuple[str, Any]:
        """("ok", work's result), or how the scene ended: "cancelled", "failed", or "stop" when
        every later scene would fail the same way. Failures are reported as they happen."""
        try:
            return "ok", work()
        except RenderCancelled:
            self.emit(Notice("cancelled; the scene in flight was dropped", number))
            return "cancelled", None
        except SceneError as err:
            self.emit(SceneFailed(number, str(err)))
            return "failed", None
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.emit(SceneFailed(number, f"the disk is full ({self.out_dir}); free some space "
                                          f"and resume: finished clips are kept"))
            return "stop", None
        except Exception as err:  # an unexpected failure: reported, logged, next scene
            log.exception("scene %d failed", number)
            self.emit(SceneFailed(number, f"{type(err).__name__}: {err}"))
            return "failed", None

    def _encode_scene(self, made: _SceneFrames) -> str:
        """The encoder thread's part of a scene (its clip, last frame and info file); returns
        the scene's outcome."""
        outcome, event = self._attempt(made.number, lambda: self._write_scene(made))
        if outcome != "ok":
            return outcome
        self.emit(event)
        return "done"

    def _choose_backend(self) -> None:
        from models.diffusion import is_available, placement
        from models.memory import pick_profile
        from models.registry import how_to_get

        self.profile = pick_profile(self.settings.profile)  # for the keyframe model too
        self.video_model, self.quality = self._choose_video_model()
        wanted = self.settings.backend
        if wanted == "auto":
            gpu = placement().device == "cuda"
            if gpu and is_available(self.video_model):
                wanted = "svd"
            else:
                wanted = "animatic"
                why = "no GPU" if not gpu else (f"{self.video_model} is not on this machine; to "
                                                f"get it: {how_to_get(self.video_model)}")
                self.emit(Notice(f"rendering an animatic (camera moves over still keyframes), "
                                 f"not generated video: {why}"))
        self.backend = wanted
        if wanted == "svd":
            self.steps = self.settings.steps or DEFAULT_STEPS[self.quality]
            low, high = TURBO_STEPS
            if self.quality == "turbo" and not low <= self.steps <= high:
                raise RenderError(f"steps {self.steps}: the turbo model {self.video_model} runs "
                                  f"{low}-{high} steps")
            self._load_video_model()
        else:
            self.quality = None

    def _choose_video_model(self) -> tuple[str, str]:
        """(video model, quality): the model asked for and the quality it has, or the quality's
        model; auto and turbo fall back to full quality, with a notice, when the turbo weights
        are missing."""
        from models.diffusion import default_video_model, is_available, is_turbo
        from models.registry import TURBO_VIDEO, how_to_get

        s = self.settings
        if s.video_model:
            quality = "turbo" if is_turbo(s.video_model) else "full"
            if s.quality not in ("auto", quality):
                raise RenderError(f"quality {s.quality} does not fit video model {s.video_model}, "
                                  f"which is a {quality}-quality model; leave --quality out or "
                                  f"pick the other one")
            return s.video_model, quality
        low, high = TURBO_STEPS
        if s.quality == "full" or (s.quality == "auto" and s.steps and not low <= s.steps <= high):
            return default_video_model("full"), "full"
        turbo = default_video_model("turbo")
        if is_available(turbo):
            return turbo, "turbo"
        full = default_video_model("full")
        if self.settings.backend != "animatic" and is_available(full):
            self.emit(Notice(f"full quality (25 steps): the turbo model ({TURBO_VIDEO.name}, "
                             f"4 steps, about 6x faster) is not on this machine; to get it: "
                             f"{how_to_get(TURBO_VIDEO)}"))
        return full, "full"

    def _load_video_model(self) -> None:
        from models.diffusion import load_video_pipeline
        from models.llm import ModelUnavailable, release_chat_models

        try:
            self.video_pipe = load_video_pipeline(self.video_model)
        except ModelUnavailable as err:
            raise RenderError(str(err)) from None
        release_chat_models()  # the planner's LLM leaves the GPU before the video model needs it
        self._place_video_model(self.profile)

    def _place_video_model(self, profile: Profile) -> None:
        """Put the video model on the GPU as `profile` says; say so when its compile is new."""
        from models.diffusion import apply_profile
        from models.speed import compile_is_cached

        levers = apply_profile(self.video_pipe, profile)
        if levers:
            log.info("video model placed: %s", ", ".join(levers))
        s = self.settings
        key = f"{self.video_model}|{s.width}x{s.height}x{s.frames}|{profile.name}|{self.quality}"
        self.compiling = key if profile.compile and levers and not compile_is_cached(key) else None
        if self.compiling:
            self.emit(Notice(f"first {profile.name}-profile render of this video size on this "
                             f"machine: compiling the video model, so the first scene takes about "
                             f"4 minutes longer (once; later starts reuse the compiled code)"))

    def _load_image_model(self) -> None:
        from models.diffusion import (apply_profile, default_image_model, is_available,
                                      load_image_pipeline)
        from models.llm import ModelUnavailable

        needs_images = any(s.keyframe is None for s in self.board.scenes)
        if not needs_images:
            return
        model = self.settings.image_model or default_image_model()
        if self.settings.image_model is None and not is_available(model):
            self.emit(Notice(self._no_image_model_message(model)))
            return
        try:
            self.image_pipe = load_image_pipeline(model)
            self.image_model = model
            apply_profile(self.image_pipe, self.profile)  # on the GPU, as the profile allows
        except ModelUnavailable as err:
            self.emit(Notice(f"{err}; {self._no_image_model_message(model)}"))

    def _no_image_model_message(self, model: str) -> str:
        from models.registry import how_to_get

        fix = how_to_get(model)
        if self.backend == "animatic":
            return (f"no keyframe model ({model}): scenes without an uploaded keyframe get a "
                    f"title card; to get the model: {fix}")
        return (f"no keyframe model ({model}): scenes without an uploaded or continued "
                f"keyframe cannot be rendered with SVD; to get it: {fix}")

    # ---- one scene -----------------------------------------------------------------------

    def _make_frames(self, number: int, scene: Scene) -> _SceneFrames:
        """The scene's keyframe and frames (the GPU's part of a scene)."""
        started = time.perf_counter()
        s = self.settings
        seconds = clip_seconds(self.board, number, s.crossfade)
        keyframe, source, lettering = self._keyframe(number, scene)
        keyframe_s = time.perf_counter() - started
        shown = keyframe
        if lettering is not None:
            shown = keyframe.convert("RGBA")
            shown.alpha_composite(lettering)
        shown.convert("RGB").save(scene_paths(self.out_dir, number)["keyframe"])
        video_started = time.perf_counter()
        if self.backend == "svd":  # the runs' frames, spread over the film's fps on the GPU
            frames = self._svd_with_retries(number, scene, keyframe,
                                            frame_count(seconds, s.fps))
        else:
            frames = list(animatic_frames(keyframe, scene, s.width, s.height, s.fps, seconds,
                                          lettering))
        self._check_cancel()
        self.last_frames = {number: frames[-1]}  # a "continue" scene next starts from it
        return _SceneFrames(number, scene, frames, seconds, source, started, keyframe_s,
                            time.perf_counter() - video_started)

    def _write_scene(self, made: _SceneFrames) -> SceneDone:
        paths = scene_paths(self.out_dir, made.number)
        encode_started = time.perf_counter()
        self.emit(StepProgress(made.number, "encode", 0, 1))
        fps = self.settings.fps
        wanted = frame_count(made.seconds, fps)  # both backends make exactly this many
        frames = made.frames if len(made.frames) == wanted else retime(made.frames, wanted)
        count = write_mp4(frames, paths["clip"], fps)
        Image.fromarray(made.frames[-1]).save(paths["last_frame"])
        encode_s = time.perf_counter() - encode_started
        info = self._scene_info(made.number, made.scene, made.source, count, made.keyframe_s,
                                made.video_s, encode_s)
        info["clip_seconds"] = round(made.seconds, 3)  # the duration plus the crossfade tail
        write_json_atomic(paths["info"], info)  # last: a scene whose info file exists is finished
        return SceneDone(made.number, paths["clip"], paths["keyframe"], paths["last_frame"],
                         paths["info"], time.perf_counter() - made.started, self.backend)

    def _keyframe(self, number: int, scene: Scene) -> tuple[Image.Image, str, Image.Image | None]:
        """(the picture the video starts from, where it came from, lettering drawn over every
        frame: a title card's text, or None)."""
        s = self.settings
        if scene.keyframe == CONTINUE:
            if number - 1 in self.last_frames:  # made just now; its PNG may still be being written
                return (fit(Image.fromarray(self.last_frames[number - 1]), s.width, s.height),
                        f"continue: last frame of scene {number - 1}", None)
            previous = scene_paths(self.out_dir, number - 1)["last_frame"]
            if not previous.is_file():
                raise SceneError(f"scene {number}, keyframe: 'continue' needs scene {number - 1}'s "
                                 f"last frame, which has not been rendered")
            with Image.open(previous) as image:
                return (fit(image, s.width, s.height),
                        f"continue: last frame of scene {number - 1}", None)
        if scene.keyframe:
            path = Path(scene.keyframe).expanduser()
            path = path if path.is_absolute() else self.base_dir / path
            return load_upload(path, number, s.width, s.height), f"upload: {path.name}", None
        if self.image_pipe is not None:
            image = generate(self.image_pipe, scene, s.width, s.height, s.keyframe_steps,
                             s.keyframe_guidance, self._progress(number, "keyframe"))
            return image, f"generated: {self.image_model}", None
        if self.backend == "animatic":
            tag = animatic_tag(s.width, s.height)
            card = title_card(scene, number, self.board.title, s.width, s.height,
                              reserve_right=tag.width + tag.height)
            return card.background, "title card", card.lettering
        raise SceneError(f"scene {number}: {self._no_image_model_message(s.image_model or 'default')}"
                         f", or give the scene a keyframe image")

    def _svd_with_retries(self, number: int, scene: Scene, keyframe: Image.Image,
                          count: int) -> list:
        """SVD frames; on CUDA out-of-memory, step down a profile and try the scene again."""
        import torch

        from models.memory import step_down
        from models.speed import mark_compiled

        while True:
            params = self._video_params()
            try:
                frames = svd_frames(self.video_pipe, keyframe, scene, params,
                                    self._progress(number, "video"), count)
                if self.compiling:  # the first run compiled: later starts find it cached
                    mark_compiled(self.compiling)
                    self.compiling = None
                return frames
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                lower = step_down(self.profile)
                if lower is None:
                    raise SceneError(f"scene {number}: out of GPU memory even in the low profile; "
                                     f"try a smaller --width/--height or fewer --frames") from None
                self.emit(Notice(f"out of GPU memory in the {self.profile.name} profile; "
                                 f"retrying in the {lower.name} profile", number))
                self.profile = lower
                self._place_video_model(lower)

    def _video_params(self) -> VideoParams:
        s = self.settings
        chunk = self.profile.decode_chunk_size if self.profile else 8
        if self.quality == "turbo":  # distilled without guidance: the UNet runs at batch 1
            guidance = (1.0, 1.0)
        else:
            guidance = (s.min_guidance_scale, s.max_guidance_scale)
        return VideoParams(s.width, s.height, s.fps, s.frames, self.steps, s.noise_aug_strength,
                           *guidance, chunk)

    def _progress(self, number: int, stage: str) -> Any:
        def on_step(step: int, steps: int) -> None:
            self._check_cancel()
            self.emit(StepProgress(number, stage, step, steps))
        return on_step

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise RenderCancelled()

    def _scene_info(self, number: int, scene: Scene, source: str, count: int, keyframe_s: float,
                    video_s: float, encode_s: float) -> dict[str, Any]:
        s = self.settings
        info: dict[str, Any] = {
            "scene": number, "backend": self.backend, "seed": scene.seed,
            "description": scene.description, "visual_prompt": scene.visual_prompt,
            "camera": scene.camera, "motion": scene.motion, "duration": scene.duration,
            "keyframe": source, "image_model": self.image_model,
            "frames": count, "fps": s.fps, "width": s.width, "height": s.height,
            "timings": {"keyframe_s": round(keyframe_s, 3), "video_s": round(video_s, 3),
                        "encode_s": round(encode_s, 3)},
        }
        if self.backend == "svd":
            runs, cond_fps = svd_plan(scene.duration, s.frames)
            params = self._video_params()
            info.update({"video_model": self.video_model, "quality": self.quality,
                         "profile": self.profile.name,
                         "svd": {"num_frames": s.frames, "num_inference_steps": params.num_inference_steps,
                                 "sampler": type(self.video_pipe.scheduler).__name__,
                                 "runs": runs, "fps": cond_fps,
                                 "motion_bucket_id": MOTION_BUCKET[scene.motion],
                                 "noise_aug_strength": s.noise_aug_strength,
                                 "min_guidance_scale": params.min_guidance_scale,
                                 "max_guidance_scale": params.max_guidance_scale,
                                 "decode_chunk_size": params.decode_chunk_size}})
        else:
            info["label"] = "animatic: a camera move over a still keyframe, not generated video"
        return info

