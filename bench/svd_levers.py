"""One SVD-XT UNet step (and the VAE decode) under each speed lever, on the GPU.

    python3 bench/svd_levers.py --out DIR                 # every eager lever, then each compiled one
    python3 bench/svd_levers.py --only eager              # just the eager levers
    python3 bench/svd_levers.py --size tiny --only eager  # CPU smoke test of the harness
    python3 bench/svd_levers.py --only bf16,compile:bf16+fused_qkv --profile --cold-only

The UNet has the real SVD-XT config and random weights; its input is one denoising step of a
25-frame 1024x576 clip with classifier-free guidance (batch 2). Each lever is timed with CUDA
events (median of 5 after 2 warm-up calls) and its output is compared with a float32 reference
of the same weights and inputs: rel_err = |out - ref| / |ref|. Compiled variants run in their own
process (a fresh compile each, with a throw-away cache) and also report the compile time;
"compile:" is torch.compile's default mode, "compile-graphs:" adds CUDA graphs (reduce-overhead)
and "compile-autotune:" autotunes the kernels (max-autotune-no-cudagraphs); "compile-whole:" and
"compile-whole-graphs:" compile the UNet as one graph instead of block by block. With --profile each
row also says where the step's GPU time goes and how much of the step the GPU sat idle.
Writes svd_levers.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (add_clip_arguments, kernel_kind, print_table,  # noqa: E402 (sets sys.path)
                    write_results)

EAGER = ("fp16", "bf16", "bf16+cudnn", "bf16+cudnn_first", "bf16+flash", "bf16+efficient",
         "bf16+xformers", "bf16+channels_last", "bf16+fused_qkv", "bf16+fp8", "bf16+cfg_split",
         "bf16+forward_chunking")
COMPILED = ("compile:bf16+fused_qkv", "compile:bf16+fused_qkv+fp8",
            "compile:bf16+fused_qkv+cudnn_first", "compile-graphs:bf16+fused_qkv",
            "compile-autotune:bf16+fused_qkv")
COMPILE_MODES = {"compile": None, "compile-graphs": "reduce-overhead",
                 "compile-autotune": "max-autotune-no-cudagraphs",
                 "compile-whole": None, "compile-whole-graphs": "reduce-overhead"}


def build_unet(size: str, device: str) -> Any:
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    from models.random_init import SVD_XT_UNET, TINY_UNET, shrink_weights

    config = SVD_XT_UNET if size == "svd-xt" else TINY_UNET
    saved = os.environ.get("SVD_LEVERS_WEIGHTS")
    if size not in _WEIGHTS and saved:  # a child process: the parent's weights, no re-init
        _WEIGHTS[size] = torch.load(saved, mmap=True)
    if size not in _WEIGHTS:  # random init of 1.5 B parameters is slow on the CPU: do it once
        torch.manual_seed(0)
        unet = UNetSpatioTemporalConditionModel(**config)
        shrink_weights(unet)
        _WEIGHTS[size] = unet.state_dict()
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel(**config)
    unet.load_state_dict(_WEIGHTS[size], assign=True)
    return unet.to(device).eval().requires_grad_(False)


_WEIGHTS: dict[str, Any] = {}


def step_inputs(size: str, device: str, frames: int, height: int, width: int) -> tuple:
    import torch

    g = torch.Generator(device).manual_seed(1)
    channels, context = (8, 1024) if size == "svd-xt" else (8, 32)
    sample = torch.randn(2, frames, channels, height // 8, width // 8, generator=g, device=device)
    timestep = torch.tensor([0.5, 0.5], device=device)
    encoder = torch.randn(2, 1, context, generator=g, device=device)
    added = torch.tensor([[6.0, 127.0, 0.02]] * 2, device=device)
    return sample, timestep, encoder, added


def apply_lever(unet: Any, lever: str) -> Any:
    """Set up `unet` for a lever name like "bf16+fused_qkv+fp8"; returns an SDPA context factory."""
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import fp8_linear as fp8
    from models import speed

    prefix, _, recipe = lever.rpartition(":")
    parts = recipe.split("+")
    unet.to(dtype=torch.float16 if parts[0] == "fp16" else torch.bfloat16)
    context: Any = contextlib.nullcontext
    for part in parts[1:]:
        if part in ("cudnn", "flash", "efficient"):
            backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                       "efficient": SDPBackend.EFFICIENT_ATTENTION}[part]
            context = lambda backend=backend: sdpa_kernel([backend])  # noqa: E731
        elif part == "cudnn_first":  # cuDNN where it can run (long sequences), else the default
            prefer_cudnn_attention()
        elif part == "xformers":
            unet.enable_xformers_memory_efficient_attention()
        elif part == "channels_last":
            channels_last_2d(unet)
        elif part == "fused_qkv":
            speed.fuse_qkv(unet)
        elif part == "fp8":
            fp8.convert_to_fp8(unet)
        elif part == "cfg_split":
            speed.split_cfg_batch(unet, True)
        elif part == "forward_chunking":
            unet.enable_forward_chunking()
        else:
            raise ValueError(f"unknown lever part {part!r}")
    if prefix:
        regions = (type(unet).__name__,) if "whole" in prefix else speed.UNET_REGIONS
        speed.compile_regions(unet, regions, mode=COMPILE_MODES[prefix])
    return context


def prefer_cudnn_attention() -> None:
    """Put cuDNN's attention first in SDPA's backend order, all backends still allowed."""
    import torch
    from torch.nn.attention import SDPBackend

    cudnn = int(SDPBackend.CUDNN_ATTENTION)
    order = [int(b) for b in torch._C._get_sdp_priority_order() if int(b) != cudnn]
    torch._C._set_sdp_priority_order([cudnn, *order])


def channels_last_2d(model: Any) -> None:
    """Channels-last weights for the 2-D convolutions (the temporal ones are 3-D: left as they are)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.to(memory_format=torch.channels_last)


def time_call(fn: Any, cuda: bool, reps: int = 5, warm: int = 2) -> float:
    import torch

    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def measure(lever: str, args: argparse.Namespace, reference: Any, device: str) -> dict[str, Any]:
    import torch

    cuda = device == "cuda"
    unet = build_unet(args.size, device)
    inputs = step_inputs(args.size, device, args.frames, args.height, args.width)
    try:
        return _measure(lever, unet, inputs, args, reference, device)
    except (RuntimeError, NotImplementedError, ImportError, ValueError, AttributeError) as err:
        # a lever that cannot run on this machine is a row saying why, not a crash of the sweep
        return {"lever": lever, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    finally:
        del unet
        if cuda:
            torch.cuda.empty_cache()


def _measure(lever: str, unet: Any, inputs: tuple, args: argparse.Namespace, reference: Any,
             device: str) -> dict[str, Any]:
    import torch

    cuda = device == "cuda"
    context = apply_lever(unet, lever)
    dtype = unet.dtype if not lever.endswith("fp8") else torch.bfloat16
    cast = [x.to(dtype) if x.is_floating_point() else x for x in inputs]

    def step() -> Any:
        with torch.no_grad(), context():
            out = unet(*cast, return_dict=False)[0]
            return out.clone() if "graphs:" in lever else out  # a graph's replay reuses it

    began = time.perf_counter()
    out = step()
    if cuda:
        torch.cuda.synchronize()
    first_s = time.perf_counter() - began
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    step_s = time_call(step, cuda)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    out = step().float()
    rel_err = ((out - reference).norm() / reference.norm()).item() if reference is not None else None
    row = {"lever": lever, "step_s": round(step_s, 4), "clip_unet_s": round(25 * step_s, 2),
           "first_call_s": round(first_s, 1), "peak_gib": round(peak, 2) if peak else None,
           "rel_err": round(rel_err, 5) if rel_err is not None else None,
           "finite": bool(torch.isfinite(out).all())}
    if cuda:
        row["tflops"] = round(args.unet_tflop / step_s, 1)
    if cuda and args.profile:
        row.update(profile_step(step))
    return row


def reference_output(args: argparse.Namespace, device: str) -> Any:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    unet = build_unet(args.size, device)
    inputs = step_inputs(args.size, device, args.frames, args.height, args.width)
    with torch.no_grad():
        out = unet(*inputs, return_dict=False)[0].float()
    del unet
    torch.backends.cudnn.allow_tf32 = True
    return out


def profile_step(step: Any) -> dict[str, Any]:
    """Where one step's GPU time goes, by kernel kind, and how much of the step the GPU was idle
    (wall time minus the summed kernel time: launch overhead the CPU could not hide)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        began = time.perf_counter()
        step()
        torch.cuda.synchronize()
        wall = time.perf_counter() - began
    totals: dict[str, float] = {}
    kernels: dict[str, float] = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA or event.name.startswith(
                ("Memcpy", "Memset")):
            continue
        t = event.device_time / 1e6
        kind = kernel_kind(event.name)
        totals[kind] = totals.get(kind, 0.0) + t
        kernels[event.name[:100]] = kernels.get(event.name[:100], 0.0) + t
    busy = sum(totals.values())
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:15]
    print("top kernels:")
    for key, t in top:
        print(f"  {t * 1000:8.1f} ms  {key}")
    return {"gpu_busy_s": round(busy, 4), "gpu_idle_share": round(max(0.0, 1 - busy / wall), 3),
            "by_kind_s": {k: round(v, 4) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_kernels_ms": {k: round(t * 1000, 1) for k, t in top}}


def vae_decode(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    """The temporal VAE decoding 25 frames in chunks: fp16 and bf16 eager, channels-last, and the
    decoder compiled (with and without channels-last). Each variant gets a fresh copy; rel_err is
    against the first variant with the same chunk size."""
    import torch
    from diffusers import AutoencoderKLTemporalDecoder

    from models import speed
    from models.random_init import SVD_XT_VAE, TINY_VAE

    rows = []
    torch.manual_seed(0)
    config = SVD_XT_VAE if args.size == "svd-xt" else TINY_VAE
    weights = AutoencoderKLTemporalDecoder(**config).state_dict()
    latents = torch.randn(args.frames, 4, args.height // 8, args.width // 8, device=device)
    variants = (("float16", (8,)), ("bfloat16", (2, 4, 8)), ("bfloat16+channels-last", (8,)),
                ("compiled", (8,)), ("compiled+channels-last", (8,)))
    references: dict[int, Any] = {}  # per chunk size: chunks change what the decoder sees together
    for name, chunks in variants:
        vae = AutoencoderKLTemporalDecoder(**config)
        vae.load_state_dict(weights)
        vae.to(device, torch.float16 if name == "float16" else torch.bfloat16)
        vae.eval().requires_grad_(False)
        if "channels-last" in name:
            channels_last_2d(vae)
        if name.startswith("compiled"):
            speed.compile_regions(vae, speed.VAE_REGIONS)
        z = latents.to(vae.dtype)
        for chunk in chunks:
            out: list[Any] = []

            def decode(out: list[Any] = out, vae: Any = vae, z: Any = z, chunk: int = chunk
                       ) -> None:
                out.clear()
                with torch.no_grad():
                    for i in range(0, z.shape[0], chunk):
                        out.append(vae.decode(z[i:i + chunk], num_frames=z[i:i + chunk].shape[0]
                                              ).sample)
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            began = time.perf_counter()
            decode()
            first_s = time.perf_counter() - began
            s = time_call(decode, device == "cuda", reps=3, warm=1)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
            frames = torch.cat(out).float()
            reference = references.setdefault(chunk, frames)
            err = ((frames - reference).abs().mean() / reference.abs().mean()).item()
            rows.append({"lever": f"vae_decode:{name}:chunk{chunk}", "decode_s": round(s, 3),
                         "first_call_s": round(first_s, 1), "rel_err": round(err, 4),
                         "peak_gib": round(peak, 2) if peak else None})
            print(rows[-1], flush=True)
        del vae, out
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_clip_arguments(parser)
    parser.add_argument("--only", default="all",
                        help="all, eager, compiled, vae, or lever names joined by commas")
    parser.add_argument("--profile", action="store_true",
                        help="also profile each lever's step: GPU time by kernel kind, idle share")
    parser.add_argument("--cold-only", action="store_true",
                        help="compiled levers: skip the second (warm cache) process")
    parser.add_argument("--unet-tflop", type=float, default=160.0,
                        help="TFLOP in one UNet step (counted: 129 in products/convs + ~31 attention)")
    parser.add_argument("--timeout", type=int, default=280, help="seconds per compiled variant")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--row-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.row_file:  # a child process measuring one compiled lever
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(args.row_file.parent / "inductor")
        reference = torch.load(args.row_file.with_suffix(".ref"), map_location=device)
        began = time.perf_counter()
        row = measure(args.only, args, reference, device)
        row["process_s"] = round(time.perf_counter() - began, 1)
        args.row_file.write_text(json.dumps(row))
        return

    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"unet_tflop_per_step": args.unet_tflop}
    reference = reference_output(args, device)
    names = {"all": EAGER + COMPILED, "eager": EAGER, "compiled": COMPILED,
             "vae": ()}.get(args.only, tuple(args.only.split(",")))
    for lever in names:
        if ":" not in lever:
            rows.append(measure(lever, args, reference, device))
        else:
            rows.extend(run_child(lever, args, reference))
        print(rows[-1], flush=True)
        write_results("svd_levers", rows, summary, args.out)
    if args.only in ("all", "eager", "vae"):
        rows += vae_decode(args, device)
    path = write_results("svd_levers", rows, summary, args.out)
    print_table(rows, ["lever", "step_s", "clip_unet_s", "tflops", "peak_gib", "rel_err",
                       "first_call_s", "gpu_idle_share", "decode_s", "error"])
    print(f"wrote {path}")


def run_child(lever: str, args: argparse.Namespace, reference: Any) -> list[dict[str, Any]]:
    import torch

    folder = Path(tempfile.mkdtemp(prefix="lever-"))
    row_file = folder / "row.json"
    torch.save(reference.cpu(), row_file.with_suffix(".ref"))
    weights = folder / "weights.pt"
    build_unet(args.size, "cpu")  # fills _WEIGHTS
    torch.save({k: v.to(torch.bfloat16) for k, v in _WEIGHTS[args.size].items()}, weights)
    os.environ["SVD_LEVERS_WEIGHTS"] = str(weights)
    command = [sys.executable, __file__, "--only", lever, "--row-file", str(row_file),
               "--size", args.size, "--width", str(args.width), "--height", str(args.height),
               "--frames", str(args.frames), "--unet-tflop", str(args.unet_tflop)]
    command += ["--profile"] if args.profile else []
    rows = []
    starts = ("cold cache",) if args.cold_only else ("cold cache", "warm cache")
    for start in starts:  # the second process finds the first's caches
        name = f"{lever} ({start})"
        try:
            done = subprocess.run(command, timeout=args.timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            rows.append({"lever": name, "error": f"over {args.timeout} s (compile did not finish)"})
            break
        if not row_file.is_file():
            err = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            rows.append({"lever": name, "error": err})
            break
        rows.append({**json.loads(row_file.read_text()), "lever": name})
        row_file.unlink()
    return rows


if __name__ == "__main__":
    main()
