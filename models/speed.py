"""Speed levers for the video model (UNet and VAE decoder), each one measured on an H100 by bench/svd_levers.py.

A memory profile (models/memory.py) says which levers it uses and `models.diffusion.apply_profile`
puts them on a loaded pipeline. All levers keep the math: same steps, frames, resolution and
guidance; only rounding differs (bench/svd_levers.py reports the error against float32).

- fused QKV: one matrix product for query, key and value instead of three.
- compile: `torch.compile` of the UNet's repeated blocks and of the VAE's temporal decoder and
  encoder. Inductor's caches live in Storyreel's cache folder, so the compile cost is paid once
  per machine (and per torch version, GPU and video size), not per start; each region is saved
  whole there (models/precompiled.py), so a start loads it without Dynamo tracing it again (a
  second start 36.4 -> 19.1 s on H100 hosts).
- CFG split: the guided and unguided halves of the batch go through the UNet one after the
  other (the low profile): half the activations. Eager, it cut a step's peak from 16.4 to
  12.4 GiB; compiled with model offload, the clip's peak from 9.1 to 6.2 GiB.
- folded upsampling: each of the VAE decoder's "nearest x2, then 3x3 convolution" steps as 2x2
  convolutions at the low resolution, one per output pixel phase, interleaved: the same sums
  (each output pixel sees the same input pixels through the same summed weights), 2.25x fewer
  multiply-adds there and no upsampled copy. The three upsamplers are 23% of SVD's decoder
  work; the 25-frame decode went from 0.90 to 0.78 s on an H100 (bench/vae_decode.py).
- channels-last frame convolutions: the decoder's Conv3d layers in the layout its 2-D
  convolutions already use, so no layout copies around them: 0.78 to 0.76 s.
- even decode chunks: the frames decoded in near-equal chunks (7, 6, 6, 6 for 25 at 8) rather
  than diffusers' 8, 8, 8, 1: the decode's peak is its largest chunk's (the fast profile's clip
  peak went from 11.3 to 10.4 GiB on an H100), and the last frame is no longer decoded alone.
  Where one more chunk makes them all the same size (5 x 5 for 25 at 8), that: the compiled
  decoder then has one shape to trace at every start and compile once, not two.
- VAE group norms from channel statistics (group_norms_by_channel_stats): 0.75 to 0.51 s.
- one-key cross-attention (single_key_cross_attention): SVD's cross-attentions attend to one
  image token, whose value is their output; 0.261 to 0.247 s a turbo step on an H100.
- the keyframe prepared for SVD's image encoder on the GPU (encode_keyframe_on_device), where
  diffusers blurs and resizes it on the CPU, the GPU waiting.
- the noise drawn ahead (models/noise.py): the clip's random draws made from a copy of the
  job's generator on CPU threads (each large draw in chunks on several) while the GPU works, not
  by diffusers when it needs them with the GPU waiting (about 0.1 s of a turbo clip on an H100
  host); the same values.
- the keyframe model (text-to-image) compiled too, its UNet's blocks: an SDXL-Turbo-sized
  keyframe at 1024x576 in 2 steps, 0.30 -> 0.24 s on H100s (bench/keyframe_gpu.py); its VAE
  compiled as well was slower (0.38 s), so it stays eager. A fresh process traces the blocks
  again (about 6 s before its first keyframe).
- attention calls without diffusers' per-call signature check (attention_calls_direct), on
  every compiled model: less Python for Dynamo to trace again at each start (tracing SVD-XT's
  compiled regions: 8.81 -> 8.14 s on a 2-core CPU, bench/compile_trace_cpu.py).
- the attentions over frames on the memory-efficient kernel (frame_attention_on_efficient_kernel):
  a third faster than the cuDNN kernel SDPA picks for them (bench/attention_kernels.py).
- the VAE decoder's 512-wide attention head as matrix products with float32 scores
  (wide_head_attention_as_products): the decode 0.49 -> 0.46 s on an H100.
- SVD's image encoder replayed as a CUDA graph in the fast profile (replay_image_encoder): 9.2 ms
  of Python-bound eager calls a clip -> 2.7 ms (bench/clip_setup.py).
- the VAE decoder's SiLUs as x * sigmoid(x) in compiled code (silu_as_sigmoid_product): the
  decode 0.452 -> 0.444 s.
- the VAE's encoder compiled with the decoder's levers and replayed as a CUDA graph in the fast
  profile (compile_vae_encoder, replay_vae_encoder): 27.9 -> 7.5 ms of GPU work a clip, in one
  launch; its tracing, which kept it eager until 2026-11-27's fifth session, is saved whole
  with the other regions. A turbo clip 1.394 -> 1.356-1.361 s (on different H100 hosts).
- the VAE decoder's fused kernels tuned by timing as it compiles (DECODER_TUNING, Inductor's
  coordinate descent), once per machine and saved whole with it: the decode in a clip 0.451 ->
  0.43 s, a turbo clip 1.33-1.36 s, for a first compile 3 to 4 minutes longer
  (bench/results/svd_profiles_turbo_2026-11-27_final*.json).
Measured and left out (bench/results/svd_levers*.json): FP8 linear layers (slower once compiled,
and twice the error), xformers (its wheel has no kernels for this torch), SDPA backends other than
the default (which already runs cuDNN's attention on the long spatial sequences), channels-last,
CUDA graphs (the whole UNet compiled with reduce-overhead: 0.480 s a step against 0.4795 s for the
blocks compiled one by one; the GPU idles 2% of a step, so there is nothing for graphs to hide;
per block they cannot work at all, as the UNet's skip connections hold a block's output while the
same compiled block runs again), and max-autotune (its compile took over 5 minutes). For the
compiled VAE decoder (bench/vae_decode.py; 25 frames at 1024x576 on an H100, 0.51 s with the
levers above: 0.23 s cuDNN convolutions, 0.22 s Triton kernels, 0.04 s attention): the folded
upsampling as one stride-2 transposed convolution (0.83 s against 0.76 s before the group norms,
vae_decode_h100_upsample.json), the frame convolutions as (k, 1) 2-D convolutions over a
frames-by-pixels view (0.82 s, vae_decode.json), the group norms' statistics in two passes
(0.52 s) or Inductor's layout optimisation off (1.15 s, vae_decode_group_norm*.json), and, on an
H200 (vae_decode_profiled.json), cuDNN's autotuning, channels-last 2-D convolutions and the frame
convolutions as matrix products: none faster. Measured on 2026-11-27 (vae_decode_2026-11-27*.json):
the decoder's one 512-wide attention head as float32 matrix products and softmax in an operator
of its own (33-69 ms against the memory-efficient kernel's 37 ms), and Inductor's coordinate
descent tuning of its Triton kernels (0.49 -> 0.46 s, but a 4-minute cold compile where it was
under one; left out then, in since 2026-11-27's sixth session, above, once a saved compile kept
its tuning from start to start), and the decoder compiled block by block, which
Dynamo traces about 1 s faster at a start but which decodes in 0.53 s against 0.49 s. Measured in
2026-11-27's second session: the VAE's encoder compiled (27.9 -> 7.7 ms alone, no faster in a
clip, and 1.3 s more tracing at each start), Inductor's small reductions not unrolled (slower) and
its max_autotune_pointwise (within the spread); coordinate descent again (-20 ms, a 317 s first
compile of the decoder where it takes 63 s). Measured in 2026-11-27's third session: the VAE's
encoder compiled again, now that a clip's noise is drawn in time (models/noise.py): the keyframe's
encode 27.9 -> 7.5 ms, a turbo clip's setup 16 ms shorter, but the second start took 31.5 s
against 29.2 s (one run each; the encoder's tracing and cached kernels about 1.1 s of it), over
the 30 s a start may take (bench/results/svd_profiles_turbo_2026-11-27_encoder_compiled.json);
the group norms' statistics from shifted sums instead of Welford's (0.473 s against 0.452 s).
In the fourth, with the chunked noise, on a host slower in Python: a turbo clip 1.390 s against
1.394 s eager (the compiled encoder's call kept the CPU 24 ms, its GPU work waiting on the
launches) and the second start 40.2 s against 36.4 s
(bench/results/*_2026-11-27_encoder_compiled_second_try.json). In the fifth, with the regions
saved whole (no tracing at a start) and the compiled encoder replayed as a CUDA graph (no
launches to wait on), it is in: above.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

from models.files import cache_dir

log = logging.getLogger(__name__)


def use_persistent_compile_cache() -> str:
    """Point Inductor's on-disk caches at Storyreel's cache folder (before anything compiles),
    unless the person set TORCHINDUCTOR_CACHE_DIR to a folder of their own. torch writes its
    default into that variable (a folder under the system's temporary one, which many systems
    empty at every boot) the first time anything asks for its cache folder, and importing
    diffusers already does: that value counts as unset."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == _torch_default_cache():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor")
    folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return folder


def _torch_default_cache() -> str:
    """The folder torch's Inductor caches in when TORCHINDUCTOR_CACHE_DIR is unset, by torch's
    own rule (cache_dir_utils.default_cache_dir), written here so that asking does not import
    torch's Inductor: a Ray worker asks as it starts, and calling torch's function there made a
    worker restarted by Ray stop at its next film (tests/test_ray.py, every run)."""
    import getpass
    import re
    import tempfile

    try:
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):
        user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
    return os.path.abspath(os.path.join(tempfile.gettempdir(),
                                        "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user)))


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


def single_key_cross_attention(unet: Any) -> int:
    """Give every cross-attention under `unet` the processor below (after `fuse_qkv`, which
    sets every processor); returns how many. SVD's UNet attends to one key, the image
    embedding: a softmax over one score is exactly 1, so each query's output is that key's
    value. 32 attention kernels a step (0.37 ms each at 1024x576, batch 1, on an H100), their
    query projections and the layer norms feeding them do nothing else."""
    from diffusers.models.attention_processor import Attention

    return _wrap_processors((m for m in unet.modules()
                             if isinstance(m, Attention) and m.is_cross_attention),
                            SingleKeyCrossAttention)


def _wrap_processors(attentions: Any, wrapper: type, *args: Any) -> int:
    """Give each attention `wrapper(its processor, *args)` as its processor, once (one already
    wrapped keeps it); returns how many attentions there were."""
    placed = 0
    for attention in attentions:
        if not isinstance(attention.processor, wrapper):
            attention.set_processor(wrapper(attention.processor, *args))
        placed += 1
    return placed


class SingleKeyCrossAttention:
    """Attention processor: with one key, the attention's output is its value projected out
    (for every query); any other call goes to the processor it wraps."""

    def __init__(self, general: Any):
        self.general = general

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any) -> Any:
        one_key = (encoder_hidden_states is not None and encoder_hidden_states.shape[1] == 1
                   and encoder_hidden_states.shape[0] == hidden_states.shape[0]
                   and hidden_states.ndim == 3 and attention_mask is None
                   and attn.spatial_norm is None and attn.group_norm is None
                   and not attn.residual_connection)
        if not one_key:
            return self.general(attn, hidden_states, encoder_hidden_states, attention_mask,
                                temb, *args, **kwargs)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        if getattr(attn, "fused_projections", False):
            value = attn.to_kv(encoder_hidden_states).chunk(2, dim=-1)[1]
        else:
            value = attn.to_v(encoder_hidden_states)
        out = attn.to_out[1](attn.to_out[0](value)) / attn.rescale_output_factor
        return out.expand(hidden_states.shape[0], hidden_states.shape[1], out.shape[-1])


def frame_attention_on_efficient_kernel(unet: Any) -> int:
    """Give the self-attention of every temporal transformer block under `unet` SDPA's
    memory-efficient kernel; returns how many. These attend over a scene's 25 frames, one batch
    row per latent pixel (9216 x 5 heads x 25 x 64 at 1024x576), where the memory-efficient kernel
    takes 0.53 ms on an H100 and the cuDNN one SDPA picks 0.78 ms (0.28 against 0.41 ms and 0.17
    against 0.25 ms at the lower resolutions; bench/results/attention_kernels.json). The spatial
    attentions keep SDPA's pick: cuDNN's, the fastest there (5.7 ms against flash's 8.6 ms)."""
    return _wrap_processors((m.attn1 for m in unet.modules()
                             if type(m).__name__ == "TemporalBasicTransformerBlock"),
                            EfficientKernelAttention)


class EfficientKernelAttention:
    """Attention processor for a plain self-attention over (batch, tokens, channels): diffusers'
    steps (AttnProcessor2_0's, fused projections or not) with the attention itself by the
    memory-efficient kernel's own operator (the CPU's fused one on a CPU). Called directly, not
    through SDPA in an `sdpa_kernel` context: a graph holding that context is never saved in
    AOTAutograd's cache, so every start compiled its blocks' graphs again (4-6 s more on an H100
    host). Any other call goes to the processor it wraps."""

    def __init__(self, general: Any):
        self.general = general

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any) -> Any:
        import torch

        plain = (encoder_hidden_states is None and attention_mask is None and not args
                 and not kwargs and hidden_states.ndim == 3 and attn.spatial_norm is None
                 and attn.group_norm is None and attn.norm_q is None and attn.norm_k is None
                 and not attn.residual_connection)
        if not plain:
            return self.general(attn, hidden_states, encoder_hidden_states, attention_mask,
                                temb, *args, **kwargs)
        if getattr(attn, "fused_projections", False):
            qkv = attn.to_qkv(hidden_states)
            query, key, value = torch.split(qkv, qkv.shape[-1] // 3, dim=-1)
        else:
            query, key, value = (attn.to_q(hidden_states), attn.to_k(hidden_states),
                                 attn.to_v(hidden_states))
        batch, heads = hidden_states.shape[0], attn.heads
        width = key.shape[-1] // heads
        query, key, value = (x.view(batch, -1, heads, width).transpose(1, 2)
                             for x in (query, key, value))
        if query.is_cuda:
            out = torch.ops.aten._scaled_dot_product_efficient_attention(
                query, key, value, None, False)[0]
        else:
            out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value)[0]
        out = out.transpose(1, 2).reshape(batch, -1, heads * width)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


def wide_head_attention_as_products(model: Any, attend: Any = None) -> int:
    """Give every self-attention under `model` whose heads are wider than 256 (SVD's VAE decoder
    has one, a single 512-wide head over the 9216 latent pixels of a 1024x576 frame) the
    processor below; returns how many. No fused kernel takes such a head but the memory-efficient
    one: 37 ms of a 0.49 s decode of 25 frames on an H100. As two matrix products on the tensor
    cores and a softmax the compiler fuses, the decode took 0.46 s, its frames within 0.03 pixel
    levels (bench/vae_decode.py, vae_decode_2026-11-27_attention_products.json). `attend`
    replaces the attention itself, (query, key, value, scale) -> output (a benchmark's
    candidate); by default `attention_by_products`."""
    from diffusers.models.attention_processor import Attention

    attention_scores_op()  # registered before any compile traces it
    return _wrap_processors((m for m in model.modules() if isinstance(m, Attention)
                             and not m.is_cross_attention and m.inner_dim // m.heads > 256),
                            WideHeadAttention, attend)


def attention_by_products(query: Any, key: Any, value: Any, scale: float) -> Any:
    """softmax(scale * query @ key^T) @ value for (batch, tokens, width) tensors: the scores in
    float32 from `attention_scores_op`, the weights back in the values' dtype, as the fused
    kernels do. One 5-frame chunk's scores at 1024x576 are 5 x 9216 x 9216 floats, 1.7 GB."""
    weights = (_attention_scores(query, key) * scale).softmax(-1)
    return weights.to(value.dtype) @ value


_attention_scores: Any = None  # the operator, registered once


def attention_scores_op() -> Any:
    """query @ key^T for (batch, tokens, width) tensors, in float32, as the operator
    `storyreel::attention_scores`: on the GPU the bf16 or fp16 inputs multiplied on the tensor
    cores into float32 (bmm's out_dtype), elsewhere in float32. An operator of its own, opaque to
    the compiler: written as plain products and a softmax, Inductor's pattern matcher turns them
    back into the memory-efficient attention kernel (measured)."""
    global _attention_scores
    if _attention_scores is None:
        import torch

        @torch.library.custom_op("storyreel::attention_scores", mutates_args=(), schema=(
            "(Tensor query, Tensor key) -> Tensor"))
        def op(query: Any, key: Any) -> Any:
            if query.is_cuda and query.dtype != torch.float32:
                return torch.bmm(query, key.transpose(1, 2), out_dtype=torch.float32)
            return torch.bmm(query.float(), key.float().transpose(1, 2))

        @op.register_fake
        def _(query: Any, key: Any) -> Any:
            return query.new_empty((query.shape[0], query.shape[1], key.shape[1]),
                                   dtype=torch.float32)

        _attention_scores = op
    return _attention_scores


class WideHeadAttention:
    """Attention processor for an image's self-attention, (frames, channels, h, w) in: the
    attention itself by `attend`, around it diffusers' own group norm, projections, residual and
    rescale (AttnProcessor2_0's steps). Any other call goes to the processor it wraps."""

    def __init__(self, general: Any, attend: Any = None):
        self.general = general
        self.attend = attend or attention_by_products

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any) -> Any:
        plain = (encoder_hidden_states is None and attention_mask is None and not args
                 and not kwargs and hidden_states.ndim == 4 and attn.spatial_norm is None
                 and attn.norm_q is None and attn.norm_k is None
                 and not getattr(attn, "fused_projections", False))
        if not plain:
            return self.general(attn, hidden_states, encoder_hidden_states, attention_mask,
                                temb, *args, **kwargs)
        residual = hidden_states
        n, c, h, w = hidden_states.shape
        tokens = hidden_states.view(n, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            tokens = attn.group_norm(tokens.transpose(1, 2)).transpose(1, 2)
        heads, width = attn.heads, attn.inner_dim // attn.heads

        def split(x: Any) -> Any:  # (n, hw, heads * width) -> (n * heads, hw, width)
            return x.view(n, -1, heads, width).transpose(1, 2).reshape(n * heads, -1, width)

        out = self.attend(split(attn.to_q(tokens)), split(attn.to_k(tokens)),
                          split(attn.to_v(tokens)), attn.scale)
        out = out.view(n, heads, -1, width).transpose(1, 2)
        out = attn.to_out[1](attn.to_out[0](out.reshape(n, -1, heads * width)))
        out = out.transpose(1, 2).reshape(n, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def attention_calls_direct(model: Any) -> int:
    """Give every diffusers Attention under `model` the forward below; returns how many it
    changed. diffusers' forward inspects the processor's signature on every call to drop
    arguments it does not take, and Dynamo traces that Python again at every start: tracing
    SVD-XT's compiled regions took 8.81 -> 8.14 s on a 2-core CPU (bench/compile_trace_cpu.py)."""
    from diffusers.models.attention_processor import Attention

    changed = 0
    for module in model.modules():
        if isinstance(module, Attention) and not isinstance(module, _DirectAttentionCall):
            module.__class__ = with_mixin(_DirectAttentionCall, type(module))
            changed += 1
    return changed


class _DirectAttentionCall:
    """Mixin: an Attention that calls its processor directly when no keyword arguments come but
    `temb` (which every attention processor takes; the VAE encoder's middle block passes it); a
    call with any other (an image adapter's masks) goes through diffusers' forward."""

    def forward(self, hidden_states: Any, encoder_hidden_states: Any = None,
                attention_mask: Any = None, **kwargs: Any) -> Any:
        if kwargs.keys() - {"temb"}:
            return super().forward(hidden_states, encoder_hidden_states,  # type: ignore[misc]
                                   attention_mask, **kwargs)
        return self.processor(self, hidden_states,  # type: ignore[attr-defined]
                              encoder_hidden_states=encoder_hidden_states,
                              attention_mask=attention_mask, **kwargs)


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
    unet.__class__ = with_mixin(_SplitGuidanceBatch, base) if enabled else base


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


_mixed_classes: dict[tuple[type, type], type] = {}


def with_mixin(mixin: type, base: type) -> type:
    """`base` with `mixin`'s methods in front, made once: how a lever swaps a module's forward
    below any hook. A class that writes its name into saved files (a model or pipeline with a
    config) keeps `base`'s name. Any other (a layer inside a compiled region) gets a name of its
    own, bound in this module: a compile saved whole (models/precompiled.py) refers to the
    classes in it by module and name, and torch saves none whose name it cannot look up."""
    if (mixin, base) not in _mixed_classes:
        if hasattr(base, "save_pretrained") or hasattr(base, "to_dict"):
            name = base.__name__
        else:
            name = f"{mixin.__name__.strip('_')}_{base.__module__.replace('.', '_')}_{base.__name__}"
        mixed = type(name, (mixin, base), {"__module__": __name__})
        if name != base.__name__:
            globals()[name] = mixed
        _mixed_classes[mixin, base] = mixed
    return _mixed_classes[mixin, base]


def is_split(unet: Any) -> bool:
    return isinstance(unet, _SplitGuidanceBatch)


def _row(timestep: Any, i: int) -> Any:
    import torch

    if isinstance(timestep, torch.Tensor) and timestep.dim() > 0 and timestep.shape[0] > 1:
        return timestep[i:i + 1]
    return timestep


def fold_upsampling(model: Any) -> int:
    """Fold every nearest-x2-upsample-then-3x3-convolution under `model` (diffusers' Upsample2D
    with a padded 3x3 conv and no norm) into 2x2 convolutions at the low resolution; returns
    how many are folded (a second call folds none again). The module keeps its parameters
    (state dict unchanged); only its forward changes."""
    from diffusers.models.upsampling import Upsample2D

    folded = 0
    for module in model.modules():
        if isinstance(module, Upsample2D) and foldable(module):
            if not isinstance(module, _FoldedUpsample):
                module.__class__ = with_mixin(_FoldedUpsample, type(module))
            folded += 1
    return folded


def foldable(up: Any) -> bool:
    conv = getattr(up, "conv", None) if up.name == "conv" else None
    return (up.use_conv and up.interpolate and not up.use_conv_transpose and up.norm is None
            and conv is not None and tuple(conv.kernel_size) == (3, 3)
            and tuple(conv.padding) == (1, 1) and tuple(conv.stride) == (1, 1)
            and tuple(conv.dilation) == (1, 1) and conv.groups == 1)


# Output row 2i+a of "nearest x2, then 3x3 convolution" reads input rows i+a-1 and i+a only:
# for a = 0, row i-1 through the kernel's row 0 and row i through rows 1 and 2; for a = 1, row
# i through rows 0 and 1 and row i+1 through row 2. _PHASES[a][t] marks the 3x3 rows that fall
# on input row i+a-1+t; columns likewise.
_PHASES = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))


def phase_kernels(weight: Any) -> Any:
    """A 3x3 convolution's weight (out, in, 3, 3) as the four 2x2 kernels, one per output phase
    (a, b) of "upsample x2, then convolve", stacked as one (4 * out, in, 2, 2) weight."""
    import torch

    # the taps summed before rounding, by slices and adds: no tensor made from constants, which
    # a compiled decoder would carry as a GPU constant that a saved compile cannot hold
    exact = weight.to(torch.promote_types(weight.dtype, torch.float32))
    phases = []
    for a in (0, 1):
        for b in (0, 1):
            taps = [[sum(exact[:, :, y, x] for y in range(3) if _PHASES[a][t][y]
                         for x in range(3) if _PHASES[b][s][x]) for s in (0, 1)] for t in (0, 1)]
            phases.append(torch.stack([torch.stack(row, dim=-1) for row in taps], dim=-2))
    return torch.cat(phases).to(weight.dtype)  # (a, b, out) along the first dimension


class _FoldedUpsample:
    """Mixin: Upsample2D's forward as one 2x2 convolution giving the four output phases at the
    input's resolution, then interleaved (fold_upsampling). Measured on an H100 against one
    stride-2 transposed convolution of the folded 4x4 kernel, which is the same sums: 0.78 s
    against 0.83 s for the 25-frame decode (bench/results/vae_decode_h100_upsample.json).

    Compiled, the phases are interleaved in the channels-last order Inductor gives the decoder's
    tensors, (n, h, a, w, b, channels); interleaved as NCHW, the kernel that did it after the
    last upsampler read across the channel stride, 4.1 ms a 5-frame chunk, and the decode took
    0.460 s against 0.449 s (bench/vae_decode.py's upsample-cl,
    bench/results/vae_decode_2026-11-27_upsample_channels_last.json). Eager tensors are NCHW, so
    eager keeps the NCHW interleave. Both give the same values."""

    def forward(self, hidden_states: Any, output_size: Any = None, *args: Any, **kwargs: Any) -> Any:
        if output_size is not None:  # an exact size asked for: not a plain x2
            return super().forward(hidden_states, output_size, *args, **kwargs)  # type: ignore[misc]
        import torch
        import torch.nn.functional as F

        conv = self.conv  # type: ignore[attr-defined]
        n, _, h, w = hidden_states.shape
        bias = None if conv.bias is None else conv.bias.repeat(4)
        phases = F.conv2d(F.pad(hidden_states, (1, 1, 1, 1)), phase_kernels(conv.weight), bias)
        out = phases.shape[1] // 4
        if torch.compiler.is_compiling():
            pixels = phases.permute(0, 2, 3, 1).reshape(n, h + 1, w + 1, 2, 2, out)
            rows = [torch.stack([pixels[:, a:a + h, b:b + w, a, b] for b in (0, 1)], dim=3)
                    for a in (0, 1)]  # each (n, h, w, b, out)
            return torch.stack(rows, dim=2).reshape(n, 2 * h, 2 * w, out).permute(0, 3, 1, 2)
        phases = phases.view(n, 2, 2, out, h + 1, w + 1)  # (n, a, b, out, h + 1, w + 1)
        rows = [torch.stack([phases[:, a, b, :, a:a + h, b:b + w] for b in (0, 1)], dim=-1)
                for a in (0, 1)]  # each (n, out, h, w, b)
        return torch.stack(rows, dim=3).reshape(n, -1, 2 * h, 2 * w)  # (n, out, h, a, w, b)


def even_decode_chunks(pipe: Any) -> bool:
    """Decode a video pipeline's frames in near-equal chunks of at most `decode_chunk_size`
    (`even_chunks`; 25 frames at 8: 5 x 5) instead of diffusers' 8, 8, 8, 1; returns whether it
    was put on (once). The largest chunk sets the decode's peak memory (5/8 of it here), and no
    frame is decoded alone, without neighbours for the decoder's convolutions over frames."""
    if isinstance(pipe, _EvenDecodeChunks):
        return False
    pipe.__class__ = with_mixin(_EvenDecodeChunks, type(pipe))
    return True


def even_chunks(total: int, most: int) -> list[int]:
    """`total` split into the fewest chunks of at most `most`, sizes differing by at most 1;
    or into one chunk more where that makes every chunk the same size (25 at 8: 5 x 5, not 7, 6,
    6, 6), as each size is a shape the compiled decoder traces at every start (3 to 5 s of
    Python for SVD-XT's) and compiles once."""
    count = -(-total // max(1, most))
    if total % count and total % (count + 1) == 0:
        count += 1
    size, extra = divmod(total, count)
    return [size + 1] * extra + [size] * (count - extra)


class _EvenDecodeChunks:
    """Mixin: StableVideoDiffusionPipeline.decode_latents over `even_chunks` (its own math)."""

    def decode_latents(self, latents: Any, num_frames: int, decode_chunk_size: int = 14) -> Any:
        import torch

        vae = self.vae  # type: ignore[attr-defined]
        latents = 1 / vae.config.scaling_factor * latents.flatten(0, 1)
        parts = latents.split(even_chunks(latents.shape[0], decode_chunk_size))
        frames = torch.cat([vae.decode(part, num_frames=part.shape[0]).sample for part in parts])
        # (batch * frames, channels, h, w) -> (batch, channels, frames, h, w), as diffusers does
        frames = frames.reshape(-1, num_frames, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
        return frames.float()


def encode_keyframe_on_device(pipe: Any) -> bool:
    """Prepare the keyframe for SVD's image encoder and its VAE where they run, not on the CPU;
    returns whether it was put on (once). diffusers blurs and resizes the picture to 224x224 on
    the CPU with the GPU waiting (about 25 ms a clip on the H100 hosts), then turns it into
    float32 pixels for the VAE there too (the GPU idle 32 ms of a turbo clip on an H100 before
    that copy, bench/results/clip_timeline.json)."""
    if isinstance(pipe, _KeyframeOnDevice):
        return False
    pipe.__class__ = with_mixin(_KeyframeOnDevice, type(pipe))
    processor = pipe.video_processor
    processor.__class__ = with_mixin(_PixelsHandedOver, type(processor))
    return True


class _KeyframeOnDevice:
    """Mixin: StableVideoDiffusionPipeline._encode_image for a PIL keyframe with its pixels sent
    to the execution device first, then diffusers' own steps in diffusers' order: scale to
    [-1, 1], antialiased resize to 224x224, back to [0, 1], CLIP's normalisation (the feature
    extractor's mean and deviation), the image encoder. Anything else goes to diffusers."""

    def _encode_image(self, image: Any, device: Any, num_videos_per_prompt: int,
                      do_classifier_free_guidance: bool) -> Any:
        import numpy as np
        import torch
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing)
        from PIL import Image

        if not isinstance(image, Image.Image) or num_videos_per_prompt != 1:
            return super()._encode_image(image, device, num_videos_per_prompt,  # type: ignore[misc]
                                         do_classifier_free_guidance)
        extractor = self.feature_extractor  # type: ignore[attr-defined]
        encoder = self.image_encoder  # type: ignore[attr-defined]
        pixels = torch.from_numpy(np.array(image.convert("RGB"))).to(device)
        picture = pixels.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        if image.mode == "RGB":  # the same pixels diffusers' preprocess reads for the VAE
            self.video_processor.handed_over = (image, picture)  # type: ignore[attr-defined]
        picture = (_resize_with_antialiasing(picture * 2.0 - 1.0, (224, 224)) + 1.0) / 2.0
        mean = torch.tensor(extractor.image_mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(extractor.image_std, device=device).view(1, -1, 1, 1)
        picture = ((picture - mean) / std).to(dtype=next(encoder.parameters()).dtype)
        replay = getattr(self, "image_encoder_replay", None)
        embeddings = (replay(picture) if replay is not None
                      else encoder(picture).image_embeds).unsqueeze(1)
        if do_classifier_free_guidance:
            embeddings = torch.cat([torch.zeros_like(embeddings), embeddings])
        return embeddings

    def _encode_vae_image(self, image: Any, device: Any, num_videos_per_prompt: int,
                          do_classifier_free_guidance: bool) -> Any:
        """diffusers' steps, the VAE's encoder replayed as a CUDA graph where there is one
        (replay_vae_encoder)."""
        import torch

        replay = getattr(self, "vae_encoder_replay", None)
        if replay is None:
            return super()._encode_vae_image(image, device,  # type: ignore[misc]
                                             num_videos_per_prompt, do_classifier_free_guidance)
        vae = self.vae  # type: ignore[attr-defined]
        latents = replay(image.to(device=device, dtype=vae.dtype))
        latents = latents.repeat(num_videos_per_prompt, 1, 1, 1)
        if do_classifier_free_guidance:
            latents = torch.cat([torch.zeros_like(latents), latents])
        return latents


class _PixelsHandedOver:
    """Mixin for the pipeline's VideoProcessor: `preprocess` of the keyframe whose pixels
    `_KeyframeOnDevice._encode_image` just sent to the device and scaled to [0, 1] there as
    diffusers does (pixels / 255 in float32): the picture already at the video's size (PIL's
    resize would copy it), then 2x - 1. Once per hand-over; any other picture, size or option
    goes to diffusers."""

    handed_over: Any = None  # (the PIL keyframe, its (1, 3, h, w) [0, 1] picture on the device)

    def preprocess(self, image: Any, height: int | None = None, width: int | None = None,
                   *args: Any, **kwargs: Any) -> Any:
        handed, self.handed_over = self.handed_over, None
        config = self.config  # type: ignore[attr-defined]
        if (handed is None or handed[0] is not image or args or kwargs
                or image.size != (width, height) or not config.do_normalize
                or config.do_binarize or config.do_convert_grayscale):
            return super().preprocess(image, height, width, *args, **kwargs)  # type: ignore[misc]
        return 2.0 * handed[1] - 1.0


def replay_image_encoder(pipe: Any, enabled: bool) -> bool:
    """Run SVD's image encoder (a ViT-H/14 on one 224x224 picture) as a CUDA graph replayed
    each clip, when `enabled` and the keyframe is prepared on the GPU (encode_keyframe_on_device);
    otherwise drop any graph made. Returns whether it is on. Eager, the encoder is Python-bound:
    9.2 ms a clip on an H100 host for 2.3 ms of GPU work, 2.7 ms replayed, the same embeddings
    (bench/clip_setup.py, bench/results/clip_setup.json). Only where the encoder stays on the
    GPU (no offload): a graph holds the addresses of the weights it read."""
    import torch

    on = enabled and torch.cuda.is_available() and isinstance(pipe, _KeyframeOnDevice)
    pipe.__dict__.pop("image_encoder_replay", None)  # placed again: captured again
    if on:
        encoder = pipe.image_encoder
        pipe.image_encoder_replay = GraphReplay(lambda pixels: encoder(pixels).image_embeds,
                                                encoder, "the image encoder")
    return on


def replay_vae_encoder(pipe: Any, enabled: bool) -> bool:
    """Run the VAE's encoder (the keyframe into latents, once a clip) as a CUDA graph replayed
    each clip, when `enabled` (the fast profile, compiled: compile_vae_encoder) and the keyframe
    is prepared on the GPU; otherwise drop any graph made. Returns whether it is on. Compiled,
    its GPU work is 7.5 ms at 1024x576 against 27.9 ms eager, but its calls launch enough
    kernels to keep the CPU 8-24 ms
    (bench/results/clip_timeline_2026-11-27_encoder_compiled_second_try.json): replayed, that
    is one launch. Eager, a graph gained nothing (27.5 ms,
    bench/results/clip_setup_2026-11-27_encoder_variants.json): its kernels are the time."""
    import torch

    on = enabled and torch.cuda.is_available() and isinstance(pipe, _KeyframeOnDevice)
    pipe.__dict__.pop("vae_encoder_replay", None)  # placed again: captured again
    if on:
        vae = pipe.vae
        pipe.vae_encoder_replay = GraphReplay(lambda pixels: vae.encode(pixels).latent_dist.mode(),
                                              vae.encoder, "the VAE's encoder")
    return on


def compile_vae_encoder(vae: Any) -> None:
    """The VAE's encoder compiled whole, with the compiled decoder's group norms, SiLUs and
    512-wide attention head. Its tracing, which made every second start 1.1-3.8 s longer when
    tried before, is now loaded with the rest (models/precompiled.py)."""
    group_norms_by_channel_stats(vae.encoder)
    silu_as_sigmoid_product(vae.encoder)
    wide_head_attention_as_products(vae.encoder)
    compile_regions(vae, VAE_ENCODER_REGIONS)


class GraphReplay:
    """`fn(x)` for a CUDA tensor x, captured as a CUDA graph at the first call of each input
    shape and dtype, then replayed: x is copied into the graph's own input, and a copy of its
    output returned (`name` says what it runs, in the log). Captured again whenever `weights`'
    parameters have moved (a graph reads the memory they were at) or grad mode changed; a model
    placed again gets a new GraphReplay (replay_image_encoder), so parameters replaced rather
    than moved are caught too."""

    def __init__(self, fn: Any, weights: Any, name: str):
        self.fn, self.weights, self.name = fn, list(weights.parameters()), name
        self.key: tuple | None = None
        self.graph = self.inputs = self.outputs = None
        self.failed = False  # a capture failed: `fn` runs as it is from then on

    def __call__(self, x: Any) -> Any:
        import torch

        if self.failed:
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, x.device, torch.is_grad_enabled(),
               tuple(p.data_ptr() for p in self.weights))
        if key != self.key:
            try:
                self._capture(x)
            except torch.cuda.OutOfMemoryError:
                raise  # the scene steps down a memory profile, which drops the replay
            except RuntimeError as err:  # a CUDA call the capture cannot hold
                self.failed = True
                log.warning("%s could not be captured as a CUDA graph (%s); it runs without "
                            "one from now on", self.name, err)
                return self.fn(x)
            self.key = key
        self.inputs.copy_(x)
        self.graph.replay()
        return self.outputs.clone()

    def _capture(self, x: Any) -> None:
        import torch

        self.graph = None  # the previous graph's memory goes back first
        self.inputs = x.clone()
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # warm-up off the capture: lazy inits, library handles
            for _ in range(2):
                self.fn(self.inputs)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # "thread_local": other threads (the noise drawn ahead, the encoders) may allocate
        # page-locked memory meanwhile; only this thread's calls must be capturable
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.outputs = self.fn(self.inputs)
        self.graph = graph
        log.info("%s captured as a CUDA graph for %s inputs", self.name, tuple(x.shape))


def frame_convs_channels_last(model: Any) -> int:
    """Give every Conv3d under `model` the channels-last-3d layout; returns how many. The VAE
    decoder's convolutions over frames then read and write the channels-last tensors Inductor
    gives its 2-D convolutions, and cuDNN no longer copies each one's input, weight and output
    between layouts (86 ms of a 0.78 s decode on an H100; with it, 0.76 s)."""
    import torch

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    for conv in convs:
        conv.to(memory_format=torch.channels_last_3d)
    return len(convs)


def group_norms_by_channel_stats(model: Any) -> int:
    """Give every affine GroupNorm under `model` a forward written from per-channel statistics
    (over frames and pixels), combined per group; returns how many (a second call counts them
    again but changes none). The same float32 statistics as PyTorch's group norm, laid out so
    Inductor reduces along the channels-last tensors the convolutions leave. Its own group-norm
    reduction read those tensors across the channel stride: 3 to 6 ms for one 7-frame
    full-resolution norm in the VAE decoder on an H100, and the 25-frame decode went from 0.75
    to 0.51 s with this (bench/vae_decode.py). Only for compiled code: eager, PyTorch's one
    group-norm kernel is faster than these several."""
    import torch

    norms = 0
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm) and module.affine:
            if not isinstance(module, _GroupNormByChannelStats):
                module.__class__ = with_mixin(_GroupNormByChannelStats, type(module))
            norms += 1
    return norms


class _GroupNormByChannelStats:
    """Mixin: GroupNorm over (batch, channels, ...) from each channel's mean and variance (one
    Welford pass, float32). A group's channels hold equally many values, so the group's mean is
    the mean of theirs and its variance the mean of theirs plus the variance of their means."""

    def forward(self, x: Any) -> Any:
        import torch

        wide = x.float()
        var, mean = torch.var_mean(wide, dim=tuple(range(2, x.dim())), correction=0)
        return group_norm_from_channel_stats(self, wide, var, mean).to(x.dtype)


def group_norm_from_channel_stats(norm: Any, wide: Any, var: Any, mean: Any) -> Any:
    """GroupNorm `norm` of float32 `wide` (batch, channels, ...) from its channels' variances
    and means (batch, channels): each group's mean is the mean of its channels' means, its
    variance the mean of their variances plus the variance of their means."""
    import torch

    n, c = wide.shape[:2]
    groups = norm.num_groups
    per_group = c // groups
    mean, var = mean.view(n, groups, per_group), var.view(n, groups, per_group)
    group_mean = mean.mean(-1, keepdim=True)
    group_var = var.mean(-1, keepdim=True) + (mean - group_mean).square().mean(-1, keepdim=True)

    def per_channel(values: torch.Tensor) -> torch.Tensor:  # (n, groups, 1) -> (n, c)
        return values.expand(n, groups, per_group).reshape(n, c)

    scale = per_channel(torch.rsqrt(group_var + norm.eps)) * norm.weight.float()
    shift = norm.bias.float() - per_channel(group_mean) * scale
    shape = (n, c) + (1,) * (wide.dim() - 2)
    return wide * scale.view(shape) + shift.view(shape)


def silu_as_sigmoid_product(model: Any) -> int:
    """Every SiLU under `model` as x * sigmoid(x), which Inductor writes with Triton's sigmoid,
    instead of its x / (1 + exp(-x)) with the accurate library exp; returns how many (a second
    call counts them again but changes none). The VAE decoder's normalising kernels are bound by
    their arithmetic, not by memory: the 25-frame decode 0.452 -> 0.444 s on an H100, 0.03
    pixel levels from before (bench/results/vae_decode_2026-11-27_silu_sigmoid.json). Only for
    compiled code: eager, it is two kernels where SiLU is one."""
    import torch

    swapped = 0
    for module in model.modules():
        if isinstance(module, torch.nn.SiLU):
            if not isinstance(module, _SigmoidProductSiLU):
                module.__class__ = with_mixin(_SigmoidProductSiLU, type(module))
            swapped += 1
    return swapped


class _SigmoidProductSiLU:
    """Mixin: SiLU's forward as x * sigmoid(x) (silu_as_sigmoid_product)."""

    def forward(self, x: Any) -> Any:
        import torch

        return x * torch.sigmoid(x)


# Regional compilation: the UNet's repeated blocks are compiled one by one, in place, so blocks
# with the same shapes share one compiled graph and the pipeline keeps its module objects.
UNET_REGIONS = ("SpatioTemporalResBlock", "TransformerSpatioTemporalModel")
KEYFRAME_UNET_REGIONS = ("Transformer2DModel", "ResnetBlock2D")  # SDXL's: 0.30 -> 0.24 s
VAE_REGIONS = ("TemporalDecoder",)  # the whole temporal decoder: 2.35 s -> 0.89 s for 25 frames
VAE_ENCODER_REGIONS = ("Encoder",)  # the keyframe's encode: 27.9 -> 7.5 ms of GPU work
# The temporal decoder's fused kernels tuned by timing (Inductor's coordinate descent over each
# kernel's block sizes and warps), once per machine with the rest of its compile: the 25-frame
# decode 0.472 -> 0.447 s on an H100, its normalising kernels a quarter to a third faster
# (bench/results/vae_decode_2026-11-27_kernels_coord_descent.json), for a first compile 3 to 4
# minutes longer (a turbo clip's first call on a cold cache 145 -> 295-355 s on H100s,
# svd_profiles_turbo_2026-11-27_final*.json). Saved whole like the rest, so no later start tunes
# again (models.precompiled.keep_tuned_kernels).
DECODER_TUNING = {"coordinate_descent_tuning": True}


def compile_regions(model: Any, class_names: tuple[str, ...], mode: str | None = None,
                    tuning: dict[str, Any] | None = None) -> int:
    """torch.compile every submodule whose class is named in `class_names`; returns how many.
    `mode` is torch.compile's (None: the default, no CUDA graphs, no autotuning). With the
    default mode each region is compiled ahead of time and saved whole (models/precompiled.py),
    so the next start loads it without tracing, with `tuning`'s Inductor settings (say
    DECODER_TUNING); other modes (benches only) compile as usual, untuned."""
    from models import precompiled

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
            if mode is None:
                precompiled.precompile(module, tuning)
            else:
                module.compile(dynamic=False, mode=mode)
            compiled += 1
    return compiled


def compile_is_cached(key: str) -> bool:
    """Whether a compile for `key` (model architecture, size, profile) finished on this machine,
    with this torch, GPU and lever code (a lever changed in an update compiles anew)."""
    return (_markers() / _marker_name(key)).is_file()


def mark_compiled(key: str) -> None:
    folder = _markers()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _marker_name(key)).write_text(key + "\n", encoding="utf-8")


def _markers() -> Path:
    return Path(use_persistent_compile_cache()) / "storyreel-compiled"


def _marker_name(key: str) -> str:
    import hashlib

    return hashlib.sha256(f"{key}|{compile_identity()}".encode()).hexdigest()[:24]


def compile_identity() -> str:
    """What any compile made on this machine is valid for: Python (a saved compile holds its
    bytecode), torch, diffusers (whose blocks' code is what is compiled), the GPU and the lever
    code. The compile markers and the saved compiles' names (models/precompiled.py) hash it."""
    import sys

    import diffusers
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    python = ".".join(map(str, sys.version_info[:2]))
    return f"{python}|{torch.__version__}|{diffusers.__version__}|{gpu}|{lever_code()}"


def lever_code() -> str:
    """A fingerprint of the code that decides what is compiled and how it is kept: this file,
    where its levers are put on (models/diffusion.py) and the saved compiles
    (models/precompiled.py), without their comments and docstrings, which compile nothing (an
    update that only explains better does not make the studio announce a compile)."""
    here = Path(__file__).resolve()
    return code_fingerprint(here, here.with_name("diffusion.py"),
                            here.with_name("precompiled.py"))


@functools.cache
def code_fingerprint(*sources: Path) -> str:
    """A hash of Python files' code: their syntax trees without docstrings (comments are not in
    a syntax tree), so only a change to what runs changes it."""
    import ast
    import hashlib

    digest = hashlib.sha256()
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:16]
