"""Memory profiles for the video model: how much of it lives on the GPU at once.

Measured on an H100 with the SVD-XT architecture (see bench/): decoding all 25 frames at once
peaks far above denoising, so every profile decodes in chunks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    name: str
    offload: str            # "none", "model" (whole models move) or "sequential" (layer by layer)
    decode_chunk_size: int  # frames the VAE decodes at once
    forward_chunking: bool  # UNet feed-forward in chunks (smaller activations, a little slower)
    min_free_gib: float     # pick it automatically when at least this much VRAM is free


FAST = Profile("fast", "none", 8, False, 20.0)
BALANCED = Profile("balanced", "model", 4, False, 12.0)
LOW = Profile("low", "sequential", 2, True, 0.0)
PROFILES = {p.name: p for p in (FAST, BALANCED, LOW)}
ORDER = (FAST, BALANCED, LOW)  # stepping down after an out-of-memory error


def free_vram_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return free / 2**30


def pick_profile(requested: str = "auto") -> Profile:
    """The requested profile, or for "auto" the fastest one that fits the free VRAM."""
    if requested != "auto":
        if requested not in PROFILES:
            raise ValueError(f"profile {requested!r} is not one of: auto, {', '.join(PROFILES)}")
        return PROFILES[requested]
    free = free_vram_gib()
    if free is None:
        return FAST  # CPU: nothing to offload to
    for profile in ORDER:
        if free >= profile.min_free_gib:
            log.info("%.1f GiB of VRAM free: using the %s profile", free, profile.name)
            return profile
    return LOW


def step_down(profile: Profile) -> Profile | None:
    index = ORDER.index(profile)
    return ORDER[index + 1] if index + 1 < len(ORDER) else None
