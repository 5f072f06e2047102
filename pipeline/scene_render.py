"""One scene's work: keyframe, video, frames re-timed and encoded, its info. Nothing else.

    renderer = SceneRenderer(settings, emit, cancelled, scratch, worker="this machine")
    choice = renderer.prepare(needs_images=True)   # picks the backend, loads the models
    rendered = renderer.render_scene(task)         # a RenderedScene: the clip's bytes and more

The same renderer runs in this process (pipeline/render.py) and inside a Ray worker, one per
GPU (pipeline/ray_workers.py); whoever runs it writes the files it returns into the job folder.
A `SceneTask` carries everything a scene needs, a keyframe already resolved where there is one
(an upload, or the parent scene's last frame for "continue"), so a worker on another machine
needs no access to the job folder. `render_scene` is `finish(make_frames(task))`: the
in-process path runs the two halves on two threads, so the GPU makes the next scene while the
CPU encodes this one.
"""
from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pipeline.animate import (MOTION_BUCKET, VideoParams, animatic_frames, animatic_tag,
                              frame_count, retime, svd_frames, svd_plan)
from pipeline.events import Event, Notice, StepProgress
from pipeline.keyframes import SceneError, generate, title_card
from pipeline.storyboard import Scene
from pipeline.video_io import encode_mp4

if TYPE_CHECKING:
    from models.memory import Profile
    from pipeline.render import RenderSettings

log = logging.getLogger(__name__)

TURBO_STEPS = (2, 8)    # the step-distilled model's range (4 by default)
DEFAULT_STEPS = {"turbo": 4, "full": 25}


class RenderError(RuntimeError):
    """The job cannot start (a model that will not load); the message says how to fix it."""


class RenderCancelled(Exception):
    """Raised inside a step callback to stop the scene in flight."""


class WorkerLost(RuntimeError):
    """The worker rendering a scene went away (its process died); the scene can run again."""


@dataclass(frozen=True)
class VideoChoice:
    """How a worker will render the film's scenes, decided once per film by `prepare`."""

    backend: str                 # "svd" or "animatic"
    quality: str | None          # "turbo" or "full" (svd only)
    video_model: str | None
    steps: int                   # denoising steps per SVD run (0 for an animatic)
    image_model: str | None      # the keyframe model, None when there is none
    worker: str                  # who decided: "this machine", or a Ray worker's node and GPU
    notices: tuple[str, ...] = ()  # what the person should be told (fallbacks, compiling)

    def same_film(self, other: VideoChoice) -> bool:
        """Whether two workers would make the same film (a worker that differs is left out)."""
        return ((self.backend, self.quality, self.video_model, self.steps, self.image_model)
                == (other.backend, other.quality, other.video_model, other.steps,
                    other.image_model))


@dataclass
class Reference:
    """A picture that steers a generated keyframe through the image adapter."""

    name: str                    # the cast member's name, or "look" for the film's style picture
    picture: np.ndarray          # RGB uint8
    strength: float              # 0 (no effect) to 1


@dataclass
class SceneTask:
    """Everything a worker needs to render one scene (or draw one cast member's picture)."""

    number: int                  # 1-based; a cast member's picture: -1, -2, ... (cast order)
    scene: Scene                 # the job's seed override already applied
    title: str                   # the film's title, for a title card
    seconds: float               # the clip's length: the duration plus any crossfade tail
    keyframe: np.ndarray | None = None  # RGB uint8 at the film's size; None: generate one
    keyframe_source: str = ""    # where that keyframe came from ("upload: x.png", "continue: ...")
    prompt: str = ""             # the keyframe model's prompt ("" = the scene's visual prompt):
                                 # the looks of the scene's cast, then its visual prompt
    characters: list[Reference] = field(default_factory=list)  # the scene's cast's pictures
    look: Reference | None = None  # the film's style picture
    portrait_of: str = ""        # a cast member's name: draw their picture from `prompt`,
                                 # not a scene

    @property
    def keyframe_prompt(self) -> str:
        return self.prompt or self.scene.visual_prompt


@dataclass
class RenderedScene:
    """A finished scene, as bytes and values: the caller writes them into the job folder."""

    number: int
    clip: bytes                  # H.264 yuv420p mp4
    keyframe_png: bytes          # the first frame the clip was made from (lettering included)
    last_frame: np.ndarray       # RGB uint8, for a following "continue" scene
    last_frame_png: bytes        # the same, as the PNG file kept beside the clip
    info: dict[str, Any]         # what scene_NN.json records
    seconds: float               # wall time the scene took where it was made
    backend: str
    worker: str


@dataclass
class SceneFrames:
    """A scene whose frames are made, on its way to the encoder (`finish_scene`), which may run
    in another process than the one that made them."""

    task: SceneTask
    frames: list[Any]            # RGB uint8 arrays at the film's fps
    keyframe: np.ndarray         # the first frame the clip was made from, RGB uint8 (made into
                                 # a PNG by the encoder, off the GPU's thread)
    info: dict[str, Any]         # the scene's info (scene_NN.json); the encoder adds its part
    made_s: float                # seconds from the scene's start to its last frame
    backend: str                 # "svd" or "animatic"
    worker: str                  # who made the frames


def finish_scene(made: SceneFrames, fps: int, scratch: Path,
                 emit: Callable[[Event], None]) -> RenderedScene:
    """Encode a scene's frames into its clip and its pictures into PNG files (the CPU's part
    of a scene); `scratch` is where the clip is written before it travels (a partial file)."""
    task = made.task
    keyframe_png = png_bytes(made.keyframe)
    if task.portrait_of:  # a cast member's picture: nothing to encode
        return RenderedScene(task.number, b"", keyframe_png, np.zeros((1, 1, 3), np.uint8), b"",
                             made.info, made.made_s, made.backend, made.worker)
    started = time.perf_counter()
    emit(StepProgress(task.number, "encode", 0, 1))
    wanted = frame_count(task.seconds, fps)  # both backends make exactly this many
    frames = made.frames if len(made.frames) == wanted else retime(made.frames, wanted)
    data, count = encode_mp4(frames, fps, scratch, f"scene_{task.number:02d}.mp4")
    encode_s = time.perf_counter() - started
    info = {**made.info, "frames": count,
            "timings": {**made.info["timings"], "encode_s": round(encode_s, 3)}}
    last = np.ascontiguousarray(made.frames[-1])
    return RenderedScene(task.number, data, keyframe_png, last, png_bytes(last), info,
                         made.made_s + encode_s, made.backend, made.worker)


def _picture_key(reference: Reference) -> str:
    import hashlib

    return hashlib.sha1(reference.picture.tobytes()).hexdigest() + str(reference.picture.shape)


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """A picture as a PNG file's bytes at zlib level 1, a third faster than the default for a
    1024x576 frame: a scene's keyframe and last frame are made after its clip is encoded, on the
    way from the film's last scene to the film."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class SceneRenderer:
    """Renders scenes with warm models (kept by models.diffusion between films).

    `emit` receives progress and notices during a scene; `cancelled()` is checked after every
    denoising step (RenderCancelled stops the scene)."""

    def __init__(self, settings: RenderSettings, emit: Callable[[Event], None],
                 cancelled: Callable[[], bool], scratch: Path, worker: str = "this machine"):
        self.settings, self.emit, self.cancelled, self.worker = settings, emit, cancelled, worker
        self.scratch = scratch  # where clips are encoded before they travel (a partial file)
        self.choice: VideoChoice | None = None
        self.profile: Any = None
        self.video_pipe: Any = None
        self.image_pipe: Any = None
        # compile keys (models/speed.py) announced as new whose first run is under way
        self.first_compiles: set[str] = set()
        self.video_compile: str | None = None     # the video model's key as it is placed now
        self.keyframe_compile: str | None = None  # the keyframe model's, less its size
        self.notices: list[str] = []
        self.embeddings: dict[str, Any] = {}  # reference picture -> its adapter embedding
        self.adapter_missing = False          # the adapter was needed and is not here (told)

    # ---- before the first scene ----------------------------------------------------------

    def prepare(self, needs_images: bool) -> VideoChoice:
        """Choose the backend and the models and load them (RenderError when one cannot load)."""
        started = time.perf_counter()
        choice = self._prepare(needs_images)
        log.info("models ready in %.2f s", time.perf_counter() - started)
        return choice

    def _prepare(self, needs_images: bool) -> VideoChoice:
        from models.diffusion import is_available, placement
        from models.memory import pick_profile
        from models.registry import how_to_get

        self.profile = pick_profile(self.settings.profile)  # for the keyframe model too
        video_model, quality = self._choose_video_model()
        backend = self.settings.backend
        if backend == "auto":
            gpu = placement().device == "cuda"
            if gpu and is_available(video_model):
                backend = "svd"
            else:
                backend = "animatic"
                why = "no GPU" if not gpu else (f"{video_model} is not on this machine; to get "
                                                f"it: {how_to_get(video_model)}")
                self.notices.append(f"rendering an animatic (camera moves over still keyframes), "
                                    f"not generated video: {why}")
        steps = 0
        if backend == "svd":
            steps = self.settings.steps or DEFAULT_STEPS[quality]
            low, high = TURBO_STEPS
            if quality == "turbo" and not low <= steps <= high:
                raise RenderError(f"steps {steps}: the turbo model {video_model} runs "
                                  f"{low}-{high} steps")
        self.choice = VideoChoice(backend, quality if backend == "svd" else None,
                                  video_model if backend == "svd" else None, steps, None,
                                  self.worker)
        if backend == "svd":
            self._load_video_model()
        image_model = self._load_image_model() if needs_images else None
        self.choice = replace(self.choice, image_model=image_model, notices=tuple(self.notices))
        self.notices = []
        return self.choice

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
        if s.backend != "animatic" and is_available(full):
            self.notices.append(f"full quality (25 steps): the turbo model ({TURBO_VIDEO.name}, "
                                f"4 steps, about 6x faster) is not on this machine; to get it: "
                                f"{how_to_get(TURBO_VIDEO)}")
        return full, "full"

    def _load_video_model(self) -> None:
        from models.diffusion import load_video_pipeline
        from models.llm import ModelUnavailable, release_chat_models

        try:
            self.video_pipe = load_video_pipeline(self.choice.video_model)
        except ModelUnavailable as err:
            raise RenderError(str(err)) from None
        release_chat_models()  # the planner's LLM leaves the GPU before the video model needs it
        note = self._place_video_model(self.profile)
        if note:
            self.notices.append(note)

    def _place_video_model(self, profile: Profile) -> str | None:
        """Put the video model on the GPU as `profile` says; a note when its compile is new."""
        from models.diffusion import apply_profile

        levers = apply_profile(self.video_pipe, profile)
        if levers:
            log.info("video model placed: %s", ", ".join(levers))
        s, choice = self.settings, self.choice
        key = f"{choice.video_model}|{s.width}x{s.height}x{s.frames}|{profile.name}|{choice.quality}"
        self.video_compile = key if profile.compile and levers else None
        if self._compiles_first(self.video_compile):
            return (f"first {profile.name}-profile render of this video size on this machine: "
                    f"compiling the video model and tuning its decoder, so the first scene takes "
                    f"about 6 minutes longer "
                    f"(once; later starts reuse the compiled code)")
        return None

    def _compiles_first(self, key: str | None) -> bool:
        """Whether a compiled model (None: not compiled) compiles `key` (model, size, profile)
        for the first time on this machine and nobody was told yet; the first run that uses it
        then marks it (`_compiled`), so later starts say nothing."""
        from models.speed import compile_is_cached

        if key is None or key in self.first_compiles or compile_is_cached(key):
            return False
        self.first_compiles.add(key)
        return True

    def _compiled(self, key: str | None) -> None:
        """A run with `key` is done: later starts find its compile cached."""
        if key in self.first_compiles:
            from models.speed import mark_compiled

            self.first_compiles.discard(key)
            mark_compiled(key)

    def _keyframe_compile_key(self, width: int, height: int) -> str | None:
        """The keyframe model's compile key for a picture of this size, None when the model is
        not compiled. Each size compiles apart (a cast picture is square), and the model again
        with the picture adapter attached (its attention processors are other code)."""
        from models.adapter import is_attached

        if self.keyframe_compile is None:
            return None
        adapter = "+adapter" if is_attached(self.image_pipe) else ""
        return f"{self.keyframe_compile}|{width}x{height}|keyframe{adapter}"

    def _generate(self, task: SceneTask, width: int, height: int,
                  adapter: dict[str, Any] | None,
                  on_step: Callable[[int, int], None]) -> Image.Image:
        """The keyframe model's picture for `task` (a scene's keyframe or a cast picture); first
        a notice when this call compiles the model anew (about a minute, once per machine)."""
        s = self.settings
        key = self._keyframe_compile_key(width, height)
        if self._compiles_first(key):
            what, number = ("cast picture", None) if task.portrait_of else ("keyframe",
                                                                           task.number)
            steered = " with the picture adapter" if key.endswith("+adapter") else ""
            self.emit(Notice(f"first {self.profile.name}-profile {what} at {width}x{height} on "
                             f"this machine: compiling the keyframe model{steered} for it, so it "
                             f"takes about a minute longer (once; later films reuse it)", number))
        image = generate(self.image_pipe, task.keyframe_prompt, task.scene.seed, width, height,
                         s.keyframe_steps, s.keyframe_guidance, on_step, adapter)
        self._compiled(key)
        return image

    def _load_image_model(self) -> str | None:
        from models.diffusion import (COMPILED_KEYFRAME_MODEL, apply_profile, default_image_model,
                                      is_available, load_image_pipeline)
        from models.llm import ModelUnavailable

        model = self.settings.image_model or default_image_model()
        if self.settings.image_model is None and not is_available(model):
            self.notices.append(self._no_image_model_message(model))
            return None
        try:
            self.image_pipe = load_image_pipeline(model)
            levers = apply_profile(self.image_pipe, self.profile)  # on the GPU, as it allows
        except ModelUnavailable as err:
            self.notices.append(f"{err}; {self._no_image_model_message(model)}")
            return None
        compiled = COMPILED_KEYFRAME_MODEL in levers  # announced before each new shape's call
        self.keyframe_compile = f"{model}|{self.profile.name}" if compiled else None
        return model

    def _no_image_model_message(self, model: str) -> str:
        from models.registry import how_to_get

        fix = how_to_get(model)
        if self.choice.backend == "animatic":
            return (f"no keyframe model ({model}): scenes without an uploaded keyframe get a "
                    f"title card; to get the model: {fix}")
        return (f"no keyframe model ({model}): scenes without an uploaded or continued "
                f"keyframe cannot be rendered with SVD; to get it: {fix}")

    # ---- one scene -----------------------------------------------------------------------

    def render_scene(self, task: SceneTask) -> RenderedScene:
        """The whole scene, start to finished files."""
        return self.finish(self.make_frames(task))

    def make_frames(self, task: SceneTask) -> SceneFrames:
        """The scene's keyframe and frames (the GPU's part of a scene)."""
        started = time.perf_counter()
        s = self.settings
        if task.portrait_of:
            return self._portrait(task, started)
        keyframe, source, lettering = self._keyframe(task)
        keyframe_s = time.perf_counter() - started
        shown = keyframe
        if lettering is not None:
            shown = keyframe.convert("RGBA")
            shown.alpha_composite(lettering)
        video_started = time.perf_counter()
        if self.choice.backend == "svd":  # the runs' frames, spread over the film's fps on the GPU
            frames = self._svd_with_retries(task, keyframe, frame_count(task.seconds, s.fps))
        else:
            frames = list(animatic_frames(keyframe, task.scene, s.width, s.height, s.fps,
                                          task.seconds, lettering))
        self._check_cancel()
        video_s = time.perf_counter() - video_started
        log.info("scene %d: keyframe %.2f s, video %.2f s", task.number, keyframe_s, video_s)
        info = self._scene_info(task, source, keyframe_s, video_s)
        return SceneFrames(task, frames, np.asarray(shown.convert("RGB")), info,
                           time.perf_counter() - started,
                           self.choice.backend, self.worker)

    def finish(self, made: SceneFrames) -> RenderedScene:
        """Encode the frames here (see `finish_scene`)."""
        return finish_scene(made, self.settings.fps, self.scratch, self.emit)

    def _keyframe(self, task: SceneTask) -> tuple[Image.Image, str, Image.Image | None]:
        """(the picture the video starts from, where it came from, lettering drawn over every
        frame: a title card's text, or None)."""
        s = self.settings
        if task.keyframe is not None:
            return Image.fromarray(task.keyframe), task.keyframe_source, None  # fitted by the head
        if self.image_pipe is not None:
            adapter = self._adapter_arguments(task)
            image = self._generate(task, s.width, s.height, adapter,
                                   self._progress(task.number, "keyframe"))
            steered = [r.name for r in task.characters + [task.look] if r and r.strength > 0]
            source = f"generated: {self.choice.image_model}"
            if adapter is not None and steered:
                source += f", steered by the pictures of: {', '.join(steered)}"
            return image, source, None
        if self.choice.backend == "animatic":
            tag = animatic_tag(s.width, s.height)
            card = title_card(task.scene, task.number, task.title, s.width, s.height,
                              reserve_right=tag.width + tag.height)
            return card.background, "title card", card.lettering
        raise SceneError(f"scene {task.number}: "
                         f"{self._no_image_model_message(s.image_model or 'default')}"
                         f", or give the scene a keyframe image")

    def _portrait(self, task: SceneTask, started: float) -> SceneFrames:
        """A cast member's picture, drawn once from their look (square, at most 768 px)."""
        s = self.settings
        if self.image_pipe is None:
            raise SceneError(f"{task.portrait_of}: no keyframe model to draw their picture")
        side = min(768, s.width, s.height) // 8 * 8
        image = self._generate(task, side, side, self._adapter_arguments(task),
                               lambda _step, _steps: self._check_cancel())
        info = {"cast": task.portrait_of, "prompt": task.keyframe_prompt,
                "seed": task.scene.seed, "image_model": self.choice.image_model}
        return SceneFrames(task, [], np.asarray(image.convert("RGB")), info,
                           time.perf_counter() - started,
                           self.choice.backend, self.worker)

    def _adapter_arguments(self, task: SceneTask) -> dict[str, Any] | None:
        """The image adapter's arguments for this keyframe: its references' embeddings (each
        picture embedded once per film) and strengths; None without references or adapter."""
        from models import adapter
        from models.diffusion import place_again
        from models.llm import ModelUnavailable

        pictures = [r for r in (*task.characters, task.look) if r is not None]
        pipe = self.image_pipe
        if not pictures and not adapter.is_attached(pipe):
            return None
        if pictures and not adapter.is_attached(pipe) and not self.adapter_missing:
            try:
                adapter.attach(pipe)
                place_again(pipe, self.profile)  # the encoder joins the profile's placement
            except ModelUnavailable as err:
                self.adapter_missing = True
                self.emit(Notice(f"{err}; keyframes follow the cast's look text only"))
        if self.adapter_missing:
            return None
        new = [r for r in pictures if _picture_key(r) not in self.embeddings]
        if new:
            found = adapter.embed(pipe, [Image.fromarray(r.picture) for r in new])
            self.embeddings.update({_picture_key(r): e for r, e in zip(new, found)})
        characters = [(self.embeddings[_picture_key(r)], r.strength) for r in task.characters]
        look = (self.embeddings[_picture_key(task.look)], task.look.strength) if task.look else None
        return adapter.call_kwargs(pipe, characters, look, self.settings.keyframe_guidance > 1.0)

    def _svd_with_retries(self, task: SceneTask, keyframe: Image.Image, count: int) -> list:
        """SVD frames; on CUDA out-of-memory, step down a profile and try the scene again."""
        import torch

        from models.memory import step_down

        while True:
            params = self._video_params()
            try:
                frames = svd_frames(self.video_pipe, keyframe, task.scene, params,
                                    self._progress(task.number, "video"), count)
                self._compiled(self.video_compile)
                return frames
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                lower = step_down(self.profile)
                if lower is None:
                    raise SceneError(f"scene {task.number}: out of GPU memory even in the low "
                                     f"profile; try a smaller --width/--height or fewer "
                                     f"--frames") from None
                self.emit(Notice(f"out of GPU memory in the {self.profile.name} profile; "
                                 f"retrying in the {lower.name} profile", task.number))
                self.profile = lower
                note = self._place_video_model(lower)
                if note:
                    self.emit(Notice(note, task.number))

    def _video_params(self) -> VideoParams:
        s, choice = self.settings, self.choice
        chunk = self.profile.decode_chunk_size if self.profile else 8
        if choice.quality == "turbo":  # distilled without guidance: the UNet runs at batch 1
            guidance = (1.0, 1.0)
        else:
            guidance = (s.min_guidance_scale, s.max_guidance_scale)
        return VideoParams(s.width, s.height, s.fps, s.frames, choice.steps, s.noise_aug_strength,
                           *guidance, chunk)

    def _progress(self, number: int, stage: str) -> Callable[[int, int], None]:
        def on_step(step: int, steps: int) -> None:
            self._check_cancel()
            self.emit(StepProgress(number, stage, step, steps))
        return on_step

    def _check_cancel(self) -> None:
        if self.cancelled():
            raise RenderCancelled()

    def _scene_info(self, task: SceneTask, source: str, keyframe_s: float,
                    video_s: float) -> dict[str, Any]:
        s, choice, scene = self.settings, self.choice, task.scene
        info: dict[str, Any] = {
            "scene": task.number, "backend": choice.backend, "seed": scene.seed,
            "description": scene.description, "visual_prompt": scene.visual_prompt,
            "camera": scene.camera, "motion": scene.motion, "duration": scene.duration,
            "keyframe": source, "image_model": choice.image_model,
            "keyframe_prompt": task.keyframe_prompt, "cast": list(scene.cast),
            "frames": frame_count(task.seconds, s.fps), "fps": s.fps, "width": s.width,
            "height": s.height, "worker": self.worker,
            "timings": {"keyframe_s": round(keyframe_s, 3), "video_s": round(video_s, 3)},
            "clip_seconds": round(task.seconds, 3),  # the duration plus the crossfade tail
        }
        if choice.backend == "svd":
            runs, cond_fps = svd_plan(scene.duration, s.frames)
            params = self._video_params()
            info.update({"video_model": choice.video_model, "quality": choice.quality,
                         "profile": self.profile.name if self.profile else None,
                         "svd": {"num_frames": s.frames,
                                 "num_inference_steps": params.num_inference_steps,
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
