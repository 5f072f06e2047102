"""A clip's random draws made ahead of the GPU, on CPU threads: a speed lever (models/speed.py).

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
(tests/test_speed.py and tests/test_turbo.py check the frames are identical).

The draws are cut into chunks made on several threads (NoiseAhead). Made one after another, they
were late once the VAE's encoder was compiled: PyTorch draws bfloat16 noise one value at a time,
and on an H100 host the starting latents were ready 42 ms into a turbo clip, the GPU idle for the
last 21 ms of it (bench/clip_timeline.py's phases,
bench/results/clip_timeline_2026-11-27_encoder_compiled.json). diffusers' SVD
pipeline draws through its module's `randn_tensor`, which the lever wraps once: calls with a
generator whose draws are planned take them, any other call goes to diffusers' own.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import logging
import math
import os
import threading
from typing import Any, Callable

import torch
from diffusers.utils.torch_utils import randn_tensor

from models.speed import with_mixin

log = logging.getLogger(__name__)
Draw = tuple[tuple[int, ...], torch.dtype]  # a tensor's shape and dtype


class NoiseAhead:
    """The next draws of a CPU generator, made ahead on threads of their own.

    `draws` lists them (shape, dtype) in the order they will be taken. Should the first one
    asked for not be the first planned, the plan stands down and every `take` answers None, so
    the caller draws from its generator itself: the same values, only without the head start.
    A later mismatch would mean other noise than the seed's, so it is an error.

    A planning thread walks the generator through the draws in order. Each large draw is cut
    into chunks (cut_into_chunks), each drawn on a worker thread from the generator's state at
    its first value; the planner moves the generator past a chunk by drawing as many random
    bytes (each made from one 32-bit number, as each value of a normal draw takes one), faster
    than the uniform float32 values it drew before: the first draw's readiness waits on that walk,
    and in a turbo clip's timeline the GPU's wait for the keyframe's noise went 5.9 -> 4.6 ms
    (bench/results/clip_timeline_2026-11-27_decoder_tuned.json, *_final.json; two H100 hosts).
    PyTorch's CPU normal draw of 16 or more float32, float16 or bfloat16 values makes them from
    their uniforms in independent blocks of 16 (odd_tail_use says how it ends a count that is
    not a multiple of 16), so chunks cut at multiples of 16 give exactly the whole draw's values
    (tests/test_speed.py). A draw too small to cut, every draw of a plan holding any other kind,
    and every draw on a machine with one core to spare is made whole, in order, by the planner."""

    def __init__(self, generator: torch.Generator, draws: list[Draw], pin: bool,
                 min_chunk: int | None = None):
        copy = torch.Generator().set_state(generator.get_state())
        self._pending = collections.deque(
            (tuple(shape), dtype, concurrent.futures.Future()) for shape, dtype in draws)
        threading.Thread(target=_plan, name="noise-ahead-plan", daemon=True,
                         args=(copy, list(self._pending), pin,
                               MIN_CHUNK if min_chunk is None else min_chunk)).start()
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
        _, _, ready = self._pending.popleft()
        self.taken += 1
        out, chunks = ready.result()
        for chunk in chunks:
            chunk.result()
        return out.to(device or "cpu", non_blocking=True)

    @property
    def left(self) -> int:
        """Draws planned and not taken."""
        return len(self._pending)


MIN_CHUNK = 16384  # values: a draw is cut into chunks of at least this many (none if smaller)
SPLITTABLE = (torch.float32, torch.float16, torch.bfloat16)  # one 32-bit number a value


def cut_into_chunks(count: int, parts: int, least: int) -> list[tuple[int, int]]:
    """(start, size) of at most `parts` chunks of `count` values, each of at least `least`
    values and starting at a multiple of 16; one chunk where `count` is under twice `least`."""
    if parts < 2 or count < 2 * least:
        return [(0, count)]
    size = max(least, -(-count // parts))
    size = -(-size // 16) * 16
    chunks = [(start, min(size, count - start)) for start in range(0, count, size)]
    if len(chunks) > 1 and chunks[-1][1] < 16:  # too few for a block: the previous one's tail
        (start, size), (_, rest) = chunks[-2], chunks.pop()
        chunks[-1] = (start, size + rest)
    return chunks


def _plan(generator: torch.Generator, pending: list, pin: bool, least: int) -> None:
    """Make the planned draws (NoiseAhead): each `ready` future gets (tensor, chunk futures)."""
    whole = _workers() < 2 or not all(math.prod(shape) >= 16 and dtype in SPLITTABLE
                                      and odd_tail_use(dtype) is not None
                                      for shape, dtype, _ in pending)
    scratch = torch.empty(0, dtype=torch.uint8)  # walk() reuses it for every chunk
    for index, (shape, dtype, ready) in enumerate(pending):
        try:
            out = torch.empty(shape, dtype=dtype, pin_memory=pin)  # page-locked: copied async
            pieces = [] if whole else cut_into_chunks(out.numel(), _workers(), least)
            if len(pieces) < 2:  # drawn here, in order: nothing to skip
                torch.randn(shape, generator=generator, out=out)
                ready.set_result((out, []))
                continue
            flat, chunks = out.view(-1), []
            for start, size in pieces:
                chunks.append(_pool().submit(_draw_chunk, generator.get_state(),
                                             flat[start:start + size]))
                used = odd_tail_use(dtype)(size) if size % 16 else size
                scratch = walk(generator, used, scratch)
            ready.set_result((out, chunks))
        except BaseException as err:  # noqa: BLE001 - raised again by take() for this draw
            for _, _, later in pending[index:]:
                if not later.done():
                    later.set_exception(err)
            return


def walk(generator: torch.Generator, count: int, scratch: torch.Tensor | None = None
         ) -> torch.Tensor:
    """Move `generator` past `count` 32-bit numbers (what a normal draw of `count` values takes)
    by drawing as many random bytes, each made from one; returns the byte buffer, `scratch` when
    it was large enough, to be handed back next time."""
    if scratch is None or scratch.numel() < count:
        scratch = torch.empty(count, dtype=torch.uint8)
    scratch[:count].random_(generator=generator)
    return scratch


@functools.cache
def odd_tail_use(dtype: torch.dtype) -> Callable[[int], int] | None:
    """How many 32-bit numbers PyTorch's CPU normal draw of `dtype` takes for a count over 16
    that is not a multiple of 16, found once by trying the known ways on a small draw cut and
    walked as NoiseAhead cuts and walks them (so the walk is checked too): float32's vectorised draw makes its last 16 values again from 16 more
    (count + 16); the float16 and bfloat16 draws round the count up to a multiple of 16. None
    where neither gives the whole draw's values: such draws are then made whole."""
    count, head = 16 * 3 + 5, 32
    seeded = torch.Generator().manual_seed(0)
    whole = torch.randn(count, generator=seeded, dtype=dtype)
    after = torch.rand(16, generator=seeded)
    for rule in (lambda n: n + 16, lambda n: -(-n // 16) * 16):
        walker = torch.Generator().manual_seed(0)
        first = torch.randn(head, generator=torch.Generator().set_state(walker.get_state()),
                            dtype=dtype)
        walk(walker, head)
        rest = torch.randn(count - head, generator=torch.Generator().set_state(walker.get_state()),
                           dtype=dtype)
        walk(walker, rule(count - head))
        if (torch.equal(torch.cat([first, rest]), whole)
                and torch.equal(torch.rand(16, generator=walker), after)):
            return rule
    log.warning("noise drawn ahead: PyTorch's %s normal draw cannot be cut into chunks here; "
                "such draws are made whole (the same values, a later start)", dtype)
    return None


def _draw_chunk(state: torch.Tensor, into: torch.Tensor) -> None:
    torch.randn(into.shape, generator=torch.Generator().set_state(state), out=into)


_pools: list[concurrent.futures.ThreadPoolExecutor] = []
_pools_lock = threading.Lock()


def _workers() -> int:
    """Threads drawing chunks: the cores but one (the GPU's), at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The worker threads, made once and shared by every clip."""
    with _pools_lock:
        if not _pools:
            _pools.append(concurrent.futures.ThreadPoolExecutor(
                _workers(), thread_name_prefix="noise-ahead"))
        return _pools[0]


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
