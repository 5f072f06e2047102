"""Keyframe: the first image of each scene.

Stable Video Diffusion takes no text, so every scene needs a first frame: the scene's uploaded
image, the previous scene's last frame ("continue"), or a text-to-image model's picture of the
scene's visual prompt. The animatic backend may instead use a title card drawn here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from pipeline.lettering import draw_block, fit_text, safe_box
from pipeline.storyboard import Scene

NEGATIVE_PROMPT = "blurry, low quality, distorted, text, watermark"
MAX_UPLOAD_PIXELS = 50_000_000  # refuse decompression bombs


class SceneError(RuntimeError):
    """A scene that cannot be rendered as written; the message says why and what to do."""


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop to the film's aspect ratio, then resize to exactly width x height."""
    image = image.convert("RGB")
    src_w, src_h = image.size
    target = width / height
    if src_w / src_h > target:
        new_w = round(src_h * target)
        box = ((src_w - new_w) // 2, 0, (src_w - new_w) // 2 + new_w, src_h)
    else:
        new_h = round(src_w / target)
        box = (0, (src_h - new_h) // 2, src_w, (src_h - new_h) // 2 + new_h)
    return image.resize((width, height), Image.LANCZOS, box=box)


def load_upload(path: Path, number: int, width: int, height: int) -> Image.Image:
    """An uploaded keyframe, checked to be a real image of sane size."""
    if not path.is_file():
        raise SceneError(f"scene {number}, keyframe: {path} does not exist")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise SceneError(f"scene {number}, keyframe: {path.name} is "
                                 f"{image.width}x{image.height}; the limit is 50 megapixels")
            image.load()
            return fit(image, width, height)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise SceneError(f"scene {number}, keyframe: {path.name} is not an image Storyreel can "
                         f"read ({type(err).__name__})") from None


def generate(pipe: Any, prompt: str, seed: int, width: int, height: int, steps: int,
             guidance: float, on_step: Callable[[int, int], None],
             adapter: dict[str, Any] | None = None) -> Image.Image:
    """A keyframe from a text-to-image pipeline; on_step may raise to cancel. `adapter` holds
    the image adapter's arguments when reference pictures steer it (models/adapter.py)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)

    def callback(_pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        on_step(step + 1, steps)
        return kwargs

    call: dict[str, Any] = {"prompt": prompt, "width": width, "height": height,
                            "num_inference_steps": steps, "guidance_scale": guidance,
                            "generator": generator, "callback_on_step_end": callback,
                            **(adapter or {})}
    if guidance > 1.0:
        call["negative_prompt"] = NEGATIVE_PROMPT
    result = pipe(**call)
    return fit(result.images[0], width, height)


def portrait_prompt(look: str, style: str) -> str:
    """What a cast member's picture is drawn from: them alone, whole, on a plain background."""
    return ", ".join(p for p in (f"character sheet portrait of {look}", "full body, centred",
                                 "plain light background", style) if p)


@dataclass(frozen=True)
class TitleCard:
    """A keyframe for animatics without a model: a colour field the camera moves over, and its
    lettering (RGBA, the frame's size), drawn over every moved frame so it never leaves it."""

    background: Image.Image
    lettering: Image.Image


def title_card(scene: Scene, number: int, title: str, width: int, height: int,
               reserve_right: int = 0) -> TitleCard:
    """The scene's text on a colour field (seeded). The header stays clear of `reserve_right`
    pixels at the top right (the ANIMATIC tag's place); all text lies inside the safe box."""
    rng = np.random.default_rng(scene.seed + number)
    top, bottom = rng.integers(20, 110, 3), rng.integers(60, 170, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    background = Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).copy())
    lettering = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(lettering)
    left, upper, right, lower = safe_box(width, height)
    unit = min(width, height)
    header = fit_text(f"{title}  ·  {number}", right - left - reserve_right, 1,
                      max(12, unit // 24), max(10, unit // 40))
    draw_block(draw, header, left, upper + height * 0.02, fill=(235, 235, 235, 255), align="left")
    body = fit_text(scene.description, right - left, 4, max(16, unit // 12), max(12, unit // 28),
                    stroke_ratio=0.04)
    body_top = max(upper + header.height + height * 0.06, (height - body.height) / 2)
    draw_block(draw, body, width / 2, min(body_top, lower - body.height),
               stroke_fill=(0, 0, 0, 160))
    return TitleCard(background, lettering)
