"""Speed levers for the video model (UNet and VAE decoder), each one measured on an H100 by bench/svd_levers.py.

A memory profile (models/memory.py) says which levers it uses and `models.diffusion.apply_profile`
puts them on a loaded pipeline. All levers keep the math: same steps, frames, resolution and
guidance; only rounding differs (bench/svd_levers.py reports the error against float32).

- fused QKV: one matrix product for query, key and value instead of three.
- compile: `torch.compile` of the UNet's repeated blocks and of the VAE's temporal decoder.
  Inductor's caches live in Storyreel's cache folder, so the compile cost is paid once per
  machine (and per torch version, GPU and video size), not per start.
- CFG split: the guided and unguided halves of the batch go through the UNet one after the
  other (the low profile): half the activations. Eager, it cut a step's peak from 16.4 to
  12.4 GiB; compiled with model offload, the clip's peak from 9.1 to 6.2 GiB.
Measured and left out (bench/results/svd_levers*.json): FP8 linear layers (slower once compiled,
and twice the error), xformers (its wheel has no kernels for this torch), SDPA backends other than
the default (which already runs cuDNN's attention on the long spatial sequences), channels-last,
CUDA graphs (the whole UNet compiled with reduce-overhead: 0.480 s a step against 0.4795 s for the
blocks compiled one by one; the GPU idles 2% of a step, so there is nothing for graphs to hide;
per block they cannot work at all, as the UNet's skip connections hold a block's output while the
same compiled block runs again), and max-autotune (its compile took over 5 minutes). For the compiled VAE decoder
(bench/vae_decode.py, bench/results/vae_decode.json: 0.78 s for 25 frames at 1024x576 on an H200,
80% of it in cuDNN's convolutions): cuDNN's autotuning, channels-last convolutions and the
temporal convolutions as matrix products, none faster.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from models.files import cache_dir

log = logging.getLogger(__name__)


def use_persistent_compile_cache() -> str:
    """Point Inductor's on-disk caches at Storyreel's cache folder (before anything compiles)."""
    folder = os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return folder


def allow_fast_math() -> None:
    """TF32 for any float32 matrix products and convolutions left (none on the bf16 path)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def fuse_qkv(unet: Any) -> int:
    """Fuse each attention's projections and switch to the fused processor."""
    from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0

    fused = 0
    for module in unet.modules():
        if isinstance(module, Attention) and not getattr(module, "fused_projections", False):
            module.fuse_projections()
            fused += 1
    unet.set_attn_processor(FusedAttnProcessor2_0())
    return fused


def split_cfg_batch(unet: Any, enabled: bool) -> None:
    """Run the UNet on each half of the classifier-free-guidance batch in turn, or undo it.

    The split is a subclass swapped in as the UNet's class, so it lives below any hook: diffusers
    removes and re-adds its model-offload hooks after every pipeline call, and a hook re-added
    around the class's `forward` keeps the split. Call it while no offload hook is attached."""
    if "_hf_hook" in unet.__dict__:
        raise RuntimeError("split_cfg_batch: remove the offload hooks first")
    unet.__dict__.pop("forward", None)  # a removed hook leaves the old bound forward behind
    base = type(unet)
    if issubclass(base, _SplitGuidanceBatch):
        base = base.__mro__[2]  # (the split class, the mixin, the UNet's own class, ...)
    unet.__class__ = _split_class(base) if enabled else base


class _SplitGuidanceBatch:
    """Mixin: a UNet forward that takes the batch one sample (one guidance half) at a time."""

    def forward(self, sample: Any, timestep: Any, encoder_hidden_states: Any,
                added_time_ids: Any, return_dict: bool = True) -> Any:
        import torch

        whole = super().forward  # type: ignore[misc]
        if sample.shape[0] < 2:
            return whole(sample, timestep, encoder_hidden_states, added_time_ids,
                         return_dict=return_dict)
        outs = [whole(sample[i:i + 1], _row(timestep, i), encoder_hidden_states[i:i + 1],
                      added_time_ids[i:i + 1], return_dict=False)[0]
                for i in range(sample.shape[0])]
        joined = torch.cat(outs)
        if not return_dict:
            return (joined,)
        from diffusers.models.unets.unet_spatio_temporal_condition import (
            UNetSpatioTemporalConditionOutput)

        return UNetSpatioTemporalConditionOutput(sample=joined)


_split_classes: dict[type, type] = {}


def _split_class(base: type) -> type:
    """The split subclass of `base`, made once and named like it (configs keep the name)."""
    if base not in _split_classes:
        _split_classes[base] = type(base.__name__, (_SplitGuidanceBatch, base), {})
    return _split_classes[base]


def is_split(unet: Any) -> bool:
    return isinstance(unet, _SplitGuidanceBatch)


def _row(timestep: Any, i: int) -> Any:
    import torch

    if isinstance(timestep, torch.Tensor) and timestep.dim() > 0 and timestep.shape[0] > 1:
        return timestep[i:i + 1]
    return timestep


# Regional compilation: the UNet's repeated blocks are compiled one by one, in place, so blocks
# with the same shapes share one compiled graph and the pipeline keeps its module objects.
UNET_REGIONS = ("SpatioTemporalResBlock", "TransformerSpatioTemporalModel")
VAE_REGIONS = ("TemporalDecoder",)  # the whole temporal decoder: 2.35 s -> 0.89 s for 25 frames


def compile_regions(model: Any, class_names: tuple[str, ...], mode: str | None = None) -> int:
    """torch.compile every submodule whose class is named in `class_names`; returns how many.
    `mode` is torch.compile's (None: the default, no CUDA graphs, no autotuning)."""
    use_persistent_compile_cache()
    import torch._dynamo.config as dynamo
    import torch._inductor.config as inductor

    inductor.conv_1x1_as_mm = True  # 1x1 convolutions as plain matrix products
    # every block shape (about 20 in SVD's UNet, per resolution) is its own graph, all kept
    dynamo.recompile_limit = max(dynamo.recompile_limit, 64)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, 1024)
    compiled = 0
    for module in model.modules():
        if type(module).__name__ in class_names and module._compiled_call_impl is None:
            module.compile(dynamic=False, mode=mode)
            compiled += 1
    return compiled


def compile_is_cached(key: str) -> bool:
    """Whether a compile for `key` (model architecture, size, profile) finished on this machine."""
    return (_markers() / _marker_name(key)).is_file()


def mark_compiled(key: str) -> None:
    folder = _markers()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _marker_name(key)).write_text(key + "\n", encoding="utf-8")


def _markers() -> Path:
    return Path(use_persistent_compile_cache()) / "storyreel-compiled"


def _marker_name(key: str) -> str:
    import hashlib

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return hashlib.sha256(f"{key}|{torch.__version__}|{gpu}".encode()).hexdigest()[:24]
