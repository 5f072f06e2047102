"""A clip's random draws made ahead of the GPU, on a CPU thread: a speed lever (models/speed.py).

A seed gives the same clip on any machine because SVD's noise is drawn on the CPU from the job's
seeded generator, then copied to the GPU. diffusers draws each tensor when it needs it, so the
GPU waits while the CPU draws: the keyframe's noise augmentation and the starting latents, and
with the consistency sampler the fresh noise between steps. On an H100 host a turbo clip spent
about 0.1 s of its 1.58 s that way (22 ms at each step, 28 ms before the first); drawn ahead
(and its frames copied back into page-locked memory, pipeline/animate.py), 1.56 -> 1.50 s
(bench/results/svd_profiles_turbo_noise_ahead_before.json, svd_profiles_turbo_noise_ahead.json).

With the lever on, a pipeline call starts a thread that makes the same draws from a copy of the
generator, in diffusers' order, into page-locked memory; each is taken when the pipeline gets
there and copied without waiting for the GPU. The values are the ones diffusers would draw
(tests/test_speed.py and tests/test_turbo.py check the frames are identical). diffusers' SVD
pipeline draws through its module's `randn_tensor`, which the lever wraps once: calls with a
generator whose draws are planned take them, any other call goes to diffusers' own.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from models.speed import with_mixin

log = logging.getLogger(__name__)
Draw = tuple[tuple[int, ...], torch.dtype]  # a tensor's shape and dtype


class NoiseAhead:
    """The next draws of a CPU generator, made in order on a thread of their own.

    `draws` lists them (shape, dtype) in the order they will be taken. Should the first one
    asked for not be the first planned, the plan stands down and every `take` answers None, so
    the caller draws from its generator itself: the same values, only without the head start.
    A later mismatch would mean other noise than the seed's, so it is an error."""

    def __init__(self, generator: torch.Generator, draws: list[Draw], pin: bool):
        copy = torch.Generator().set_state(generator.get_state())
        worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="noise-ahead")
        self._pending = collections.deque(
            (shape, dtype, worker.submit(_draw, copy, shape, dtype, pin)) for shape, dtype in draws)
        worker.shutdown(wait=False)  # the thread ends after the last draw
        self.taken = 0
        self.stood_down = False

    def take(self, shape: tuple[int, ...], dtype: torch.dtype,
             device: Any = None) -> torch.Tensor | None:
        """The next draw, on `device`; None once the plan has stood down."""
        if self.stood_down:
            return None
        planned = self._pending[0][:2] if self._pending else None
        if planned != (tuple(shape), dtype):
            if self.taken:
                raise RuntimeError(f"noise drawn ahead: {tuple(shape)} {dtype} asked for after "
                                   f"{self.taken} draws where {planned} was planned")
            log.warning("noise drawn ahead: the pipeline's first draw is %s %s, not the planned "
                        "%s; this clip draws its own noise (the same values, no head start)",
                        tuple(shape), dtype, planned)
            self.stood_down = True
            return None
        _, _, future = self._pending.popleft()
        self.taken += 1
        return future.result().to(device or "cpu", non_blocking=True)

    @property
    def left(self) -> int:
        """Draws made and not taken."""
        return len(self._pending)


def _draw(generator: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype,
          pin: bool) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, pin_memory=pin)  # page-locked: copied asynchronously
    return torch.randn(shape, generator=generator, out=out)


_planned: dict[int, NoiseAhead] = {}  # id(generator) -> its draws, during a pipeline call


def _randn_tensor(shape: Any, generator: Any = None, device: Any = None, dtype: Any = None,
                  layout: Any = None) -> torch.Tensor:
    """diffusers' randn_tensor, answered from the generator's planned draws where it has some."""
    ahead = _planned.get(id(generator)) if isinstance(generator, torch.Generator) else None
    noise = ahead.take(tuple(shape), dtype, device) if ahead is not None else None
    if noise is not None:
        return noise
    return randn_tensor(shape, generator=generator, device=device, dtype=dtype, layout=layout)


def draw_noise_ahead(pipe: Any) -> bool:
    """Put the lever on a StableVideoDiffusionPipeline; returns whether it was put on (once)."""
    from diffusers.pipelines.stable_video_diffusion import pipeline_stable_video_diffusion as svd

    svd.randn_tensor = _randn_tensor  # a pass-through for every call without planned draws
    if isinstance(pipe, _NoiseDrawnAhead):
        return False
    pipe.__class__ = with_mixin(_NoiseDrawnAhead, type(pipe))
    return True


class _NoiseDrawnAhead:
    """Mixin: StableVideoDiffusionPipeline whose calls draw their noise ahead.

    diffusers' draws from `generator`, in order: the keyframe's noise augmentation (1, 3, H, W)
    in float32, the starting latents (1, frames, 4, H/8, W/8) in the image encoder's dtype, and
    then a sampler with `set_noise_source` (models/consistency.py) draws one latents-shaped
    tensor after every step but the last. A call that does not fit this plan (latents given,
    several videos, a generator on the GPU) runs as diffusers runs it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sampler = self.scheduler  # type: ignore[attr-defined]
        renoises = hasattr(sampler, "set_noise_source")
        ahead = self._plan_noise(args, kwargs, renoises)
        if ahead is None:
            return super().__call__(*args, **kwargs)  # type: ignore[misc]
        _planned[id(kwargs["generator"])] = ahead
        if renoises:
            sampler.set_noise_source(ahead.take)
        try:
            return super().__call__(*args, **kwargs)  # type: ignore[misc]
        finally:
            _planned.pop(id(kwargs["generator"]), None)
            if renoises:
                sampler.set_noise_source(None)

    def _plan_noise(self, args: tuple, kwargs: dict[str, Any],
                    renoises: bool) -> NoiseAhead | None:
        generator = kwargs.get("generator")
        needed = ("image", "height", "width", "num_frames", "num_inference_steps")
        if args or any(kwargs.get(name) is None for name in needed):
            return None
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            return None
        if (kwargs.get("latents") is not None or isinstance(kwargs["image"], list)
                or kwargs.get("num_videos_per_prompt", 1) != 1):
            return None
        height, width = kwargs["height"], kwargs["width"]
        scale = self.vae_scale_factor  # type: ignore[attr-defined]
        channels = self.unet.config.in_channels // 2  # type: ignore[attr-defined]
        latents = (1, kwargs["num_frames"], channels, height // scale, width // scale)
        dtype = self.image_encoder.dtype  # type: ignore[attr-defined]
        draws: list[Draw] = [((1, 3, height, width), torch.float32), (latents, dtype)]
        if renoises:  # one draw after every step but the last
            draws += [(latents, dtype)] * (kwargs["num_inference_steps"] - 1)
        device = torch.device(self._execution_device)  # type: ignore[attr-defined]
        return NoiseAhead(generator, draws, pin=device.type == "cuda")
