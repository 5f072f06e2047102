"""Memory profiles for the video model: how much of it lives on the GPU at once.

Measured on an H100 with the SVD-XT architecture (bench/svd_levers.py, bench/svd_profiles.py):
- decoding all 25 frames at once peaks far above denoising, so every profile decodes in chunks;
- compiling the UNet's blocks makes a step 27% faster and needs fewer activations, compiling the
  VAE's decoder makes decoding 2.6x faster, and with model offload both still work (only whole
  models move), so every profile compiles on CUDA;
- diffusers' forward chunking made a step 5x slower and saved 3% of memory: no profile uses it;
  sequential offload took 193 s per clip: model offload plus a split guidance batch replaces it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    name: str
    offload: str            # "none" (all on the GPU) or "model" (whole models move in turn)
    decode_chunk_size: int  # most frames the VAE decodes at once (speed.even_decode_chunks)
    cfg_split: bool         # guided and unguided halves through the UNet in turn (half the activations)
    compile: bool           # torch.compile the UNet's blocks and the VAE decoder (cached on disk)
    min_free_gib: float     # pick it automatically when at least this much VRAM is free


FAST = Profile("fast", "none", 8, False, True, 20.0)
BALANCED = Profile("balanced", "model", 4, False, True, 12.0)
LOW = Profile("low", "model", 2, True, True, 0.0)
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
