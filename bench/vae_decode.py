"""Seconds and peak memory of SVD-XT's temporal VAE decode (25 frames, 1024x576), lever by lever.

    python3 bench/vae_decode.py --out DIR                  # GPU: the real SVD-XT VAE, random weights
    python3 bench/vae_decode.py --width 64 --height 64 --frames 4 --size tiny  # CPU smoke test

Each lever decodes the same latents in the product's chunks (the fast profile's at most 8
frames, in even chunks: 5 x 5; runs before 2026-11-27 decoded 8, 8, 8, 1 as diffusers does)
after a warm-up call (compiling, for the compiled levers):
- eager: the VAE as diffusers ships it, bf16;
- compiled: the whole TemporalDecoder compiled (models/speed.py);
- compiled-blocks: the decoder compiled block by block instead (its SpatioTemporalResBlocks,
  attention and upsamplers: bench/compile_trace_cpu.py's decoder-blocks, which traces in about
  2.0 s where the whole decoder takes 3.05 s), to price the fused kernels it splits;
- the levers below on top of either.
diff_levels is the mean absolute difference from the first lever's frames (eager: diffusers as
it ships), in 0-255 pixel levels (the target: at most 1). --profile prints where each compiled
lever's time goes, by kernel family and kernel (kept in its row); --kernel-code DIR copies the
source of those kernels out of Inductor's cache, to read what each fused kernel computes.
Writes vae_decode.json (to --out, or bench/results).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import (add_clip_arguments, kernel_kind, print_table, timed,  # noqa: E402
                    write_results)

from models import speed  # noqa: E402
from models.random_init import SVD_XT_VAE, TINY_VAE, shrink_weights  # noqa: E402

# Levers for the VAE's temporal decoder, on top of its compile or eager:
# - fold-upsample: the product's (models/speed.fold_upsampling): each upsampler's nearest x2
#   and 3x3 convolution as 2x2 convolutions at the low resolution, 2.25x fewer multiply-adds;
#   compiled, its four phases interleaved in the channels-last order (since 2026-11-27's second
#   session: the candidate upsample-cl then, 0.460 -> 0.449 s,
#   vae_decode_2026-11-27_upsample_channels_last.json);
# - transposed-upsample: the same fold as one stride-2 transposed convolution, for comparison;
# - temporal-cl3d: the product's (speed.frame_convs_channels_last), the frame convolutions
#   channels-last; temporal-2d: each as a (k, 1) Conv2d over a frames-by-pixels view instead;
# - gn-welford: the product's (speed.group_norms_by_channel_stats), each group norm from
#   per-channel means and variances (one Welford pass), which Inductor reduces along the
#   channels-last layout; gn-channel-sums: the same from a pass for the means, then one for the
#   squared deviations (0.52 s against 0.51 s on an H100);
# - attention-bf16-products: the product's (speed.wide_head_attention_as_products), the
#   mid-block's one 512-wide attention head as two matrix products on the tensor cores, the
#   scores kept in float32 and their softmax fused by the compiler, instead of the
#   memory-efficient attention kernel, the only fused one that takes such a head; attention-mm:
#   a candidate (float32_attention_as_products, below), the same as float32 products and a
#   softmax all in an operator of its own (measured slower);
# - coord-descent: the product's since 2026-11-27's sixth session (speed.DECODER_TUNING, given
#   to the decoder's compile): Inductor's coordinate descent, each fused Triton kernel's block
#   sizes tuned by timing at compile (a longer compile, kept in the cache);
# - no-unroll: candidate, Inductor's unroll_reductions_threshold at 1, so the group norms' means
#   over a group's 4 channels (at 128 channels) are reduced once, not recomputed in each element's
#   normalising kernel (0.464 s against 0.460 s: not kept);
# - pointwise-autotune: candidate, Inductor's max_autotune_pointwise: a few block sizes timed for
#   each fused kernel at compile (coordinate descent, below, walks many more);
# - gn-sums: candidate, gn-welford's statistics from two plain sums of each channel's values less
#   its first value, in one pass, where Welford's update divides at every value (the statistics
#   kernels are bound by their arithmetic): 0.473 s against 0.452 s, as Inductor writes the
#   shifted values out (vae_decode_2026-11-27_silu_sigmoid.json);
# - silu-sigmoid: the product's (speed.silu_as_sigmoid_product), each SiLU as x * sigmoid(x),
#   Triton's sigmoid where Inductor writes SiLU with the accurate library exp: 0.452 -> 0.444 s;
# - nd-tiling: candidate, Inductor's prefer_nd_tiling: fused kernels over the channels-last
#   tensors tiled by (pixels, channels), so a normalising kernel loads each channel's group
#   statistics once per tile column rather than once per element, as its 1-D kernels do (its
#   compile of the decoder had not finished after 80 s on an H100, 2026-11-27: not measured);
# - nchw-graph: Inductor's layout optimisation off, so the compiled decoder keeps NCHW tensors
#   (its group norms then reduce contiguous memory, its convolutions take NCHW).
# Candidates measured earlier and left out of the product (none was faster, models/speed.py):
# - channels-last: the decoder's 2-D convolutions read and write NHWC, as cuDNN's kernels do, so
#   the layout copies around each convolution go (on an H200 they took 10% of the decode);
# - temporal-mm: the (k, 1, 1) 3-D convolutions over frames as k matrix products on frame-shifted
#   channels-last views, which need no layout copy either.
EARLIER_LEVERS = ("cudnn-benchmark", "channels-last", "temporal-mm")  # "all" is these three
DECODER_LEVERS = ("fold-upsample", "transposed-upsample", "temporal-cl3d", "temporal-2d",
                  "gn-welford", "gn-channel-sums", "attention-mm", "attention-bf16-products",
                  "gn-sums", "silu-sigmoid", "no-unroll", "pointwise-autotune", "nd-tiling",
                  "nchw-graph", "coord-descent",
                  *EARLIER_LEVERS)


def speed_up_decoder(vae: Any, levers: tuple[str, ...] = DECODER_LEVERS) -> list[str]:
    """Apply the named decoder levers to a VAE (before its first compiled call); returns them."""
    import torch

    applied = []
    if "fold-upsample" in levers and speed.fold_upsampling(vae.decoder):
        applied.append("fold-upsample")
    if "transposed-upsample" in levers and transposed_upsampling(vae.decoder):
        applied.append("transposed-upsample")
    if "temporal-cl3d" in levers and speed.frame_convs_channels_last(vae.decoder):
        applied.append("temporal-cl3d")
    if "temporal-2d" in levers and swap_temporal_convs(vae.decoder, "2d"):
        applied.append("temporal-2d")
    if "gn-welford" in levers and speed.group_norms_by_channel_stats(vae.decoder):
        applied.append("gn-welford")
    if "gn-sums" in levers:
        for module in vae.decoder.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.forward = _shifted_sums_group_norm(module)
        applied.append("gn-sums")
    if "silu-sigmoid" in levers and speed.silu_as_sigmoid_product(vae.decoder):
        applied.append("silu-sigmoid")
    if "attention-mm" in levers and float32_attention_as_products(vae.decoder):
        applied.append("attention-mm")
    if "attention-bf16-products" in levers and speed.wide_head_attention_as_products(
            vae.decoder):
        applied.append("attention-bf16-products")
    if "gn-channel-sums" in levers:
        for module in vae.decoder.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.forward = _two_pass_group_norm(module)
        applied.append("gn-channel-sums")
    if "pointwise-autotune" in levers:  # several block sizes timed for each fused kernel
        import torch._inductor.config as inductor

        inductor.max_autotune_pointwise = True
        applied.append("pointwise-autotune")
    if "no-unroll" in levers:
        import torch._inductor.config as inductor

        inductor.unroll_reductions_threshold = 1
        applied.append("no-unroll")
    if "nd-tiling" in levers:
        import torch._inductor.config as inductor

        inductor.triton.prefer_nd_tiling = True
        applied.append("nd-tiling")
    if "coord-descent" in levers:  # given to the decoder's compile in main (DECODER_TUNING)
        applied.append("coord-descent")
    if "nchw-graph" in levers:
        import torch._inductor.config as inductor

        inductor.layout_optimization = False
        applied.append("nchw-graph")
    if "cudnn-benchmark" in levers:  # cuDNN times its algorithms once per shape
        torch.backends.cudnn.benchmark = True
        applied.append("cudnn-benchmark")
    if "channels-last" in levers:
        for module in vae.decoder.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.to(memory_format=torch.channels_last)
        applied.append("channels-last")
    if "temporal-mm" in levers and swap_temporal_convs(vae.decoder, "mm"):
        applied.append("temporal-mm")
    return applied


def _two_pass_group_norm(norm: Any) -> Any:
    """A group norm's forward from per-channel means, then per-channel mean squared deviations
    from the group's mean: two reads of the input before the normalising one."""
    import torch

    def forward(x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        groups, per_group = norm.num_groups, c // norm.num_groups
        over, shape = tuple(range(2, x.dim())), (n, c) + (1,) * (x.dim() - 2)
        wide = x.float()

        def group_means(values: torch.Tensor) -> torch.Tensor:  # (n, c) -> (n, c)
            grouped = values.view(n, groups, per_group).mean(-1, keepdim=True)
            return grouped.expand(n, groups, per_group).reshape(n, c)

        mean = group_means(wide.mean(over))
        var = group_means((wide - mean.view(shape)).square().mean(over))
        scale = torch.rsqrt(var + norm.eps) * norm.weight.float()
        shift = norm.bias.float() - mean * scale
        return (wide * scale.view(shape) + shift.view(shape)).to(x.dtype)
    return forward


def _shifted_sums_group_norm(norm: Any) -> Any:
    """A group norm's forward from each channel's sum and sum of squares of its values less its
    first value (one pass, no division per value), combined per group as gn-welford does
    (speed.group_norm_from_channel_stats)."""
    import torch

    def forward(x: torch.Tensor) -> torch.Tensor:
        over = tuple(range(2, x.dim()))
        wide = x.float()
        first = wide[(slice(None), slice(None)) + (slice(0, 1),) * len(over)]
        shifted = wide - first
        count = wide[0, 0].numel()
        mean = shifted.sum(over) / count
        var = (shifted.square().sum(over) / count - mean.square()).clamp_min(0)
        return speed.group_norm_from_channel_stats(norm, wide, var, mean + first.flatten(1)
                                                   ).to(x.dtype)
    return forward


def float32_attention_as_products(model: Any) -> int:
    """The candidate attention-mm: the product's processor for the decoder's 512-wide head
    (speed.wide_head_attention_as_products) with the whole attention in `wide_attention_op`,
    the scores from float32 products (measured: 48 ms of products, slower than the kernel)."""
    wide_attention_op()  # registered before any compile traces it
    return speed.wide_head_attention_as_products(model, attend=_float32_attention)


def _float32_attention(query: Any, key: Any, value: Any, scale: float) -> Any:
    return _wide_attention(query, key, value, scale)


_wide_attention: Any = None  # the operator, registered once (before any compile traces it)


def wide_attention_op() -> Any:
    """softmax(scale * query @ key^T) @ value for (batch, tokens, width) tensors, one batch item
    at a time, as the operator `storyreel_bench::wide_attention`: the scores as a float32
    product (TF32 on the GPU, from exact bf16 inputs), a float32 softmax, the weights back in the
    values' dtype for the second product. One frame's scores at 1024x576 are 9216 x 9216: 340 MB
    in float32, freed before the next frame's."""
    global _wide_attention
    if _wide_attention is None:
        import torch

        @torch.library.custom_op("storyreel_bench::wide_attention", mutates_args=(), schema=(
            "(Tensor query, Tensor key, Tensor value, float scale) -> Tensor"))
        def op(query: Any, key: Any, value: Any, scale: float) -> Any:
            out = torch.empty(query.shape[:-1] + value.shape[-1:], dtype=value.dtype,
                              device=value.device)
            for i in range(query.shape[0]):
                scores = torch.mm(query[i].float(), key[i].float().t()).mul_(scale)
                out[i] = torch.mm(scores.softmax(-1).to(value.dtype), value[i])
            return out

        @op.register_fake
        def _(query: Any, key: Any, value: Any, scale: float) -> Any:
            return query.new_empty(query.shape[:-1] + value.shape[-1:], dtype=value.dtype)

        _wide_attention = op
    return _wide_attention


def transposed_upsampling(model: Any) -> int:
    """Each foldable Upsample2D as one stride-2 transposed convolution of a folded 4x4 kernel
    (the same sums as speed.fold_upsampling, in one convolution); returns how many."""
    from diffusers.models.upsampling import Upsample2D

    swapped = 0
    for module in model.modules():
        if isinstance(module, Upsample2D) and speed.foldable(module):
            module.forward = _transposed_forward(module)
            swapped += 1
    return swapped


# Which 3x3 taps land on each 4x4 tap of the stride-2, padding-1 transposed convolution, per
# axis: its taps 3 and 1 reach output phase 0's input rows i-1 and i, taps 2 and 0 phase 1's
# rows i and i+1 (see speed._PHASES for which 3x3 taps those rows take).
_TRANSPOSED = ((0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0))


def _transposed_forward(up: Any) -> Any:
    import torch
    import torch.nn.functional as F

    def forward(hidden_states: torch.Tensor, output_size: Any = None, *args: Any,
                **kwargs: Any) -> torch.Tensor:
        weight = up.conv.weight
        fold = torch.tensor(_TRANSPOSED, dtype=torch.float32, device=weight.device)
        kernel = torch.einsum("ky,lx,oiyx->iokl", fold, fold, weight.float()).to(weight.dtype)
        return F.conv_transpose2d(hidden_states, kernel, up.conv.bias, stride=2, padding=1)
    return forward


def swap_temporal_convs(model: Any, how: str) -> int:
    """Replace every Conv3d with a (k, 1, 1) kernel under `model` by the same convolution over
    frames done another way ("mm": k matrix products on frame-shifted channels-last views; "2d":
    one (k, 1) Conv2d over a (batch, channels, frames, h*w) view); returns how many. The weights
    are the same parameters (state dict unchanged)."""
    import torch

    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, torch.nn.Conv3d) and child.kernel_size[1:] == (1, 1)
                    and child.stride == (1, 1, 1) and child.dilation == (1, 1, 1)
                    and child.groups == 1 and child.padding == (child.kernel_size[0] // 2, 0, 0)):
                setattr(parent, name, _frame_conv_class()(child, how))
                swapped += 1
    return swapped


_frame_conv: list[type] = []


def _frame_conv_class() -> type:
    """FrameConv, defined on first use (this module imports torch only when a lever is used)."""
    if _frame_conv:
        return _frame_conv[0]
    import torch
    import torch.nn.functional as F

    class FrameConv(torch.nn.Module):
        """A Conv3d over frames only, y[t] = sum_k W_k x[t + k - k//2] + b, zero-padded at both
        ends like the convolution: as matrix products over (frames, pixels, channels) ("mm"),
        or as a Conv2d over (batch, channels, frames, pixels) ("2d")."""

        def __init__(self, conv3d: torch.nn.Conv3d, how: str):
            super().__init__()
            self.weight = conv3d.weight  # (out, in, k, 1, 1): the same parameter
            self.bias = conv3d.bias
            self.how = how

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            frames, k = x.shape[2], self.weight.shape[2]
            if self.how == "2d":
                weight = self.weight[..., 0].contiguous(memory_format=torch.channels_last)
                y = F.conv2d(x.flatten(3), weight, self.bias, padding=(k // 2, 0))
                return y.view(*y.shape[:3], *x.shape[3:])
            xt = x.permute(0, 2, 3, 4, 1)  # (batch, frames, h, w, channels): contiguous in NHWC
            padded = F.pad(xt, (0, 0, 0, 0, 0, 0, k // 2, k // 2))
            y = sum(padded[:, i:i + frames] @ self.weight[:, :, i, 0, 0].t() for i in range(k))
            if self.bias is not None:
                y = y + self.bias
            return y.permute(0, 4, 1, 2, 3)

    _frame_conv.append(FrameConv)
    return FrameConv


def build_vae(size: str, device: str) -> Any:
    import torch
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(**(SVD_XT_VAE if size == "svd-xt" else TINY_VAE))
    shrink_weights(vae)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return vae.to(device=device, dtype=dtype).eval()


def decode(vae: Any, latents: Any, chunk: int) -> Any:
    """The product's decode_latents (models/speed.even_decode_chunks: 25 frames at 8 in 5 x 5,
    where diffusers decodes 8, 8, 8, 1), frames to 0-255 floats."""
    import torch

    with torch.inference_mode():
        parts = [vae.decode(part / vae.config.scaling_factor, num_frames=part.shape[0]).sample
                 for part in latents.split(speed.even_chunks(latents.shape[0], chunk))]
        frames = torch.cat(parts).float()
        return ((frames / 2 + 0.5).clamp(0, 1) * 255).round()


def timed_decode(vae: Any, latents: Any, chunk: int, repeats: int) -> tuple[float, float, Any]:
    """(median seconds, peak GiB, frames) over `repeats` synchronised decodes (common.timed)."""
    import torch

    cuda = latents.is_cuda
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds, frames = timed(lambda: decode(vae, latents, chunk), repeats)
    return seconds, torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0, frames


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    add_clip_arguments(parser)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--levers", default="eager,eager+fold-upsample,compiled,"
                        "compiled+fold-upsample,compiled+transposed-upsample",
                        help="comma-separated: eager, compiled or compiled-blocks, each with "
                             "+LEVER+... "
                             f"(levers: {', '.join(DECODER_LEVERS)}; all: the last three)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--kernel-code", type=Path, default=None,
                        help="with --profile: copy the source of each lever's longest Triton "
                             "kernels from Inductor's cache into this folder")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn(args.frames, 4, args.height // 8, args.width // 8, generator=generator)
    latents = (latents * SVD_XT_VAE["scaling_factor"]).to(device)
    rows, reference = [], None
    for lever in args.levers.split(","):
        torch._dynamo.reset()
        torch._inductor.config.layout_optimization = True  # the default; nchw-graph turns it off
        torch._inductor.config.unroll_reductions_threshold = 8  # the default; no-unroll: 1
        torch._inductor.config.max_autotune_pointwise = False  # the default
        torch._inductor.config.triton.prefer_nd_tiling = False  # the default; nd-tiling on
        vae = build_vae(args.size, device)
        latents = latents.to(vae.dtype)
        mode, _, extra = lever.partition("+")
        wanted = EARLIER_LEVERS if extra == "all" else tuple(filter(None, extra.split("+")))
        tuning = speed.DECODER_TUNING if "coord-descent" in wanted else None
        if mode == "compiled":
            speed.compile_regions(vae, speed.VAE_REGIONS, tuning=tuning)
        elif mode == "compiled-blocks":
            from compile_trace_cpu import DECODER_BLOCKS

            speed.compile_regions(vae, DECODER_BLOCKS, tuning=tuning)
        applied = speed_up_decoder(vae, wanted)
        began = time.perf_counter()
        decode(vae, latents, args.chunk)  # compile, autotune, allocator
        first_s = time.perf_counter() - began
        seconds, peak, frames = timed_decode(vae, latents, args.chunk, args.repeats)
        if reference is None:
            reference = frames
        kernels = (profile_kernels(vae, latents, args.chunk)
                   if args.profile and device == "cuda" and mode.startswith("compiled") else {})
        if kernels and args.kernel_code:
            copy_kernel_code(kernels["top_kernels_ms"], args.kernel_code / lever.replace("+", "_"))
        row = {"lever": lever, "applied": "+".join(applied), "decode_s": round(seconds, 3),
               "first_call_s": round(first_s, 1), "peak_gib": round(peak, 2),
               "frames": args.frames, "width": args.width, "height": args.height,
               "chunk": args.chunk,
               "chunks": speed.even_chunks(args.frames, args.chunk)}
        if reference is not None:
            row["diff_levels"] = round(float((frames - reference).abs().mean()), 4)
        rows.append({**row, **kernels})
        print_table([row], list(row))
        write_results("vae_decode", rows, {}, None if args.out is None else Path(args.out))
        del vae
        if device == "cuda":
            torch.cuda.empty_cache()
    print()
    print_table(rows, ["lever", "decode_s", "first_call_s", "peak_gib", "diff_levels"])
    base = next((r for r in rows if r["lever"] == "compiled"), None)
    best = min(rows, key=lambda r: r["decode_s"])
    summary = {"baseline_s": base["decode_s"] if base else None, "best": best["lever"],
               "best_s": best["decode_s"]}
    print("wrote", write_results("vae_decode", rows, summary,
                                 None if args.out is None else Path(args.out)))


def profile_kernels(vae: Any, latents: Any, chunk: int, top: int = 40) -> dict[str, Any]:
    """One decode's GPU time by kernel family and its `top` longest kernels (name: calls and
    total ms), printed and returned for the row."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        decode(vae, latents, chunk)
    families: dict[str, float] = {}
    kernels = []
    for event in prof.key_averages():
        family = kernel_kind(event.key)
        families[family] = families.get(family, 0.0) + event.device_time_total / 1e6
        if event.device_time_total > 0:
            kernels.append((event.device_time_total / 1e3, event.count, event.key))
    for family, seconds in sorted(families.items(), key=lambda kv: -kv[1]):
        print(f"  {family:14} {seconds:.3f} s")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25,
                                    max_name_column_width=90))
    return {"kernel_families_s": {f: round(s, 4) for f, s in
                                  sorted(families.items(), key=lambda kv: -kv[1])},
            "top_kernels_ms": {name[:120]: [count, round(ms, 2)] for ms, count, name
                               in sorted(kernels, reverse=True)[:top]}}


def copy_kernel_code(top: dict[str, Any], folder: Path) -> None:
    """Copy the source files of the Triton kernels named in `top` (names as the profiler gives
    them) from Inductor's cache into `folder`, to read what each fused kernel does."""
    import shutil

    from torch._inductor.runtime.cache_dir_utils import cache_dir

    wanted = {name for name in top if name.startswith("triton_")}
    asked = len(wanted)
    folder.mkdir(parents=True, exist_ok=True)
    for source in Path(cache_dir()).rglob("*.py"):
        text = source.read_text(errors="replace")
        for name in [n for n in wanted if f"def {n}" in text]:
            shutil.copy(source, folder / f"{name[:100]}.py")
            wanted.discard(name)
    print(f"kernel code: {asked - len(wanted)} files in {folder}, not found: {len(wanted)}")


if __name__ == "__main__":
    main()
