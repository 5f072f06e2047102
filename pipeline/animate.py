"""Animate: a keyframe becomes the scene's frames, at the film's frame rate and exact length.

Two backends:
- `svd_frames`: Stable Video Diffusion (image-to-video, no text). A scene longer than one run
  is continued from the run's last frame, and the runs' frames are spread over the film's fps
  (`retime`) on the GPU, before the one copy to the CPU.
- `animatic_frames`: the keyframe with the scene's camera move (zoom, pan, tilt), on the CPU,
  with an "ANIMATIC" tag in the corner so nobody mistakes it for generated video.
"""
from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pipeline.lettering import draw_block, fit_text, safe_box
from pipeline.storyboard import Scene

# motion -> SVD's motion_bucket_id (0-255; 127 is the model's default)
MOTION_BUCKET = {"low": 60, "medium": 127, "high": 200}
# The slowest frame rate SVD is conditioned on; longer scenes take more runs. At 5, one SVD-XT run
# (25 frames) covers up to 4.8 s: a 25-second film of 6 scenes needs 6 runs, not 12.
MIN_COND_FPS = 5
MAX_COND_FPS = 30


@dataclass(frozen=True)
class VideoParams:
    width: int
    height: int
    fps: int                  # the film's frame rate
    num_frames: int           # frames per SVD run (SVD-XT: 25)
    num_inference_steps: int
    noise_aug_strength: float
    min_guidance_scale: float
    max_guidance_scale: float
    decode_chunk_size: int


def frame_count(duration: float, fps: int) -> int:
    return max(1, round(duration * fps))


def svd_plan(duration: float, num_frames: int) -> tuple[int, int]:
    """(runs, conditioning fps) so the runs' frames span `duration` at a plausible frame rate."""
    runs = max(1, math.ceil(duration * MIN_COND_FPS / (num_frames - 1)))
    native = num_frames + (runs - 1) * (num_frames - 1)
    cond_fps = int(min(max(round((native - 1) / duration), MIN_COND_FPS), MAX_COND_FPS))
    return runs, cond_fps


def retime_plan(native: int, count: int) -> list[tuple[int, int, float]]:
    """For each of `count` output frames spread evenly over `native` frames: (earlier frame,
    later frame, weight of the later one). The last output frame is the last native frame."""
    last = native - 1
    plan = []
    for i in range(count):
        position = i * last / (count - 1) if count > 1 else float(last)
        low = int(math.floor(position))
        high = min(low + 1, last)
        weight = position - low
        plan.append((low, low, 0.0) if weight < 1e-3 or low == high else (low, high, weight))
    return plan


def retime(frames: list[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """`count` frames evenly spread over `frames`, blending neighbours (linear in time). The last
    one is always `frames[-1]`, so a following "continue" scene starts where this one ends."""
    for low, high, weight in retime_plan(len(frames), count):
        if weight == 0.0:
            yield frames[low]
        else:
            mixed = frames[low].astype(np.float32) * (1 - weight) + frames[high] * weight
            yield mixed.round().astype(np.uint8)


def _retime_tensor(video: Any, count: int, chunk: int = 16) -> Any:
    """`retime` on a (frames, H, W, 3) uint8 tensor where it lies (the GPU), in chunks."""
    import torch

    plan = retime_plan(video.shape[0], count)
    parts = []
    for start in range(0, count, chunk):
        rows = plan[start:start + chunk]
        low = torch.tensor([r[0] for r in rows], device=video.device)
        high = torch.tensor([r[1] for r in rows], device=video.device)
        weight = torch.tensor([r[2] for r in rows], device=video.device).view(-1, 1, 1, 1)
        mixed = video[low].float() * (1 - weight) + video[high].float() * weight
        parts.append(mixed.round().to(torch.uint8))
    return torch.cat(parts)


def svd_frames(pipe: Any, keyframe: Image.Image, scene: Scene, params: VideoParams,
               on_step: Callable[[int, int], None], count: int | None = None) -> list[np.ndarray]:
    """Run SVD as many times as the scene's length needs; returns the runs' frames (RGB uint8),
    or with `count` those frames already spread over `count` frames (the film's fps) where they
    were made, so the CPU, which encodes the previous scene meanwhile, has no blending to do.

    `on_step(done, total)` is called after every denoising step and may raise to cancel.
    """
    import torch

    runs, cond_fps = svd_plan(scene.duration, params.num_frames)
    total_steps = runs * params.num_inference_steps
    native: list[Any] = []  # each run's frames, (frames, H, W, 3) uint8 where they were made
    image = keyframe
    for run in range(runs):
        generator = torch.Generator("cpu").manual_seed(scene.seed + run)
        if hasattr(pipe.scheduler, "set_noise_generator"):  # a consistency sampler re-noises
            pipe.scheduler.set_noise_generator(generator)   # between steps: from this seed too

        def callback(_pipe: Any, step: int, _t: Any, kwargs: dict[str, Any], run: int = run):
            on_step(run * params.num_inference_steps + step + 1, total_steps)
            return kwargs

        output = pipe(
            image=image, height=params.height, width=params.width,
            num_frames=params.num_frames, num_inference_steps=params.num_inference_steps,
            fps=cond_fps, motion_bucket_id=MOTION_BUCKET[scene.motion],
            noise_aug_strength=params.noise_aug_strength,
            decode_chunk_size=params.decode_chunk_size,
            min_guidance_scale=params.min_guidance_scale,
            max_guidance_scale=params.max_guidance_scale,
            generator=generator, output_type="pt", callback_on_step_end=callback)
        # (frames, 3, H, W) in [0, 1], still on the GPU: to bytes there, then one small copy
        video = output.frames[0].float().mul(255).round().clamp(0, 255).to(torch.uint8)
        video = video.permute(0, 2, 3, 1)
        native.append(video if run == 0 else video[1:])  # a run's first frame repeats the last
        if run + 1 < runs:  # the next run starts from this one's last frame
            image = Image.fromarray(video[-1].cpu().numpy())
    frames = torch.cat(native)
    if count is not None:
        frames = _retime_tensor(frames, count)
    return list(_to_host(frames))


def _to_host(frames: Any) -> np.ndarray:
    """The frames as one array in the host's memory. From a GPU, into page-locked memory, which
    the GPU copies into at full speed: a 25-frame 1024x576 clip took 26 ms into ordinary memory
    on an H100 host, the GPU idle meanwhile (the decode with the copy: 0.529 -> 0.504 s,
    bench/results/svd_profiles_turbo_noise_ahead*.json). torch keeps freed page-locked blocks
    for the next clip; `release_frame_buffers` gives them back when a film is done."""
    import torch

    if not frames.is_cuda:
        return frames.numpy()
    host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    host.copy_(frames)
    return host.numpy()


def release_frame_buffers() -> None:
    """Unlock the page-locked memory kept for clips' frames (up to three scenes' frames, about
    0.8 GB for 4-second scenes at 1024x576): between films nothing needs it."""
    torch = sys.modules.get("torch")  # not imported: no clip was made in this process
    if torch is None or not torch.cuda.is_available():
        return
    empty_host_cache = getattr(torch.accelerator, "empty_host_cache", None)  # torch >= 2.13
    if empty_host_cache is not None:
        empty_host_cache()


# ---- animatic ------------------------------------------------------------------------------

MOTION_SPEED = {"low": 0.6, "medium": 1.0, "high": 1.6}


def camera_path(camera: str, motion: str, t: float) -> tuple[float, float, float]:
    """(zoom, x, y) at time t in [0, 1]: zoom >= 1 magnifies; x, y in [-1, 1] pan the view."""
    k = MOTION_SPEED[motion]
    ease = t * t * (3 - 2 * t)  # smoothstep: starts and ends gently
    match camera:
        case "zoom in":
            return 1 + 0.25 * k * ease, 0.0, 0.0
        case "zoom out":
            return 1 + 0.25 * k * (1 - ease), 0.0, 0.0
        case "pan":
            return 1.2, (ease * 2 - 1) * min(1.0, 0.6 * k), 0.0
        case "tracking":
            return 1.15 + 0.08 * k * ease, (ease * 2 - 1) * min(1.0, 0.5 * k), 0.0
        case "aerial view":  # a slow tilt down over the landscape
            return 1.2 + 0.05 * k * ease, 0.0, (ease * 2 - 1) * min(1.0, 0.6 * k)
        case "wide shot":
            return 1.08 - 0.08 * ease, 0.0, 0.0
        case "medium shot":
            return 1 + 0.06 * k * ease, 0.0, 0.0
        case "close up":
            return 1.05 + 0.12 * k * ease, 0.0, 0.0
    return 1.0, 0.0, 0.0  # static


def animatic_frames(keyframe: Image.Image, scene: Scene, width: int, height: int,
                    fps: int, seconds: float | None = None,
                    lettering: Image.Image | None = None) -> Iterator[np.ndarray]:
    """The scene's camera move over its keyframe, `seconds * fps` frames (default: the scene's
    duration), labelled.

    `lettering` (RGBA, the frame's size: a title card's text) is drawn over every frame after
    the move, so the camera never pushes text out of the frame."""
    source = keyframe.convert("RGB")
    if source.size != (width, height):
        source = source.resize((width, height), Image.LANCZOS)
    tag = animatic_tag(width, height)
    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    if lettering is not None:
        overlay.alpha_composite(lettering.convert("RGBA").resize((width, height)))
    _, top, right, _ = safe_box(width, height)
    overlay.alpha_composite(tag, (right - tag.width, top))
    count = frame_count(scene.duration if seconds is None else seconds, fps)
    for i in range(count):
        zoom, x, y = camera_path(scene.camera, scene.motion, i / (count - 1) if count > 1 else 0.0)
        w, h = width / zoom, height / zoom
        left = (width - w) / 2 * (1 + x)
        upper = (height - h) / 2 * (1 + y)
        frame = source.resize((width, height), Image.BILINEAR, box=(left, upper, left + w, upper + h))
        frame.paste(overlay, (0, 0), overlay)
        yield np.asarray(frame)


@functools.lru_cache(maxsize=4)
def animatic_tag(width: int, height: int) -> Image.Image:
    """The "ANIMATIC" label drawn in every animatic frame's top-right corner (made once per
    frame size; treat it as read-only)."""
    size = max(10, min(width, height) // 30)
    label = "ANIMATIC"
    block = fit_text(label, width // 3, 1, size)
    tag = Image.new("RGBA", (block.width + size, block.height + size // 2), (0, 0, 0, 120))
    draw_block(ImageDraw.Draw(tag), block, tag.width / 2, size // 4, fill=(255, 255, 255, 230))
    return tag
