"""Milliseconds per call of each SDPA kernel on SVD-XT's attention shapes at 1024x576, 25 frames.

    python3 bench/attention_kernels.py --out DIR       # GPU
    python3 bench/attention_kernels.py --scale 16     # CPU smoke test (shapes 16x smaller)

For the UNet's self-attentions (spatial: one batch row per frame over its latent pixels;
temporal: one batch row per latent pixel over the 25 frames; 64-wide heads) at batch 1 (turbo,
no guidance) and 2 (full, guidance): SDPA's own pick ("default", and which kernel that was, from
the profiler's kernel names) against each backend held alone. For the VAE decoder's one 512-wide
head over a 5-frame chunk: the memory-efficient kernel (the only fused one that takes it) against
the product's matrix products (models.speed.attention_by_products, compiled). Random bf16
inputs; the median of --repeats calls after a warm-up. Writes attention_kernels.json (to --out,
or bench/results).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common import print_table, timed, write_results  # noqa: E402 (sets sys.path)

from models import speed  # noqa: E402

FRAMES = 25
# (kind, latent pixels at 1024x576, channels): the UNet's three attention resolutions
UNET_SHAPES = (("spatial", 9216, 320), ("spatial", 2304, 640), ("spatial", 576, 1280),
               ("temporal", 9216, 320), ("temporal", 2304, 640), ("temporal", 576, 1280))
HEAD = 64
BACKENDS = ("cudnn", "flash", "efficient", "math")


def milliseconds(call: Any, repeats: int) -> float:
    """The median of `repeats` synchronised calls after a warm-up (common.timed), in ms."""
    return round(timed(call, repeats)[0] * 1e3, 3)


def picked_kernel(call: Any) -> str:
    """Which backend SDPA ran for `call`, by the GPU kernels' names."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
    names = " ".join(event.key.lower() for event in prof.key_averages())
    for backend, mark in (("cudnn", "cudnn"), ("flash", "flash"), ("efficient", "fmha_cutlass")):
        if mark in names:
            return backend
    return "other"


def unet_row(kind: str, pixels: int, channels: int, batch: int, args: argparse.Namespace,
             cuda: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads = channels // HEAD
    rows, keys = (FRAMES * batch, pixels) if kind == "spatial" else (pixels * batch, FRAMES)
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    qkv = torch.randn(rows, keys, 3, heads, HEAD, device=device, dtype=dtype)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # as diffusers' fused QKV views

    def attend() -> Any:
        return F.scaled_dot_product_attention(q, k, v)

    row: dict[str, Any] = {"attention": f"unet {kind}", "batch": batch,
                           "shape": f"{rows}x{heads}x{keys}x{HEAD}",
                           "default_ms": milliseconds(attend, args.repeats)}
    if cuda:
        row["default_kernel"] = picked_kernel(attend)
    for name in BACKENDS:
        if name == "math" and rows * heads * keys * keys > 2**31:  # its scores would not fit
            continue
        backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                   "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]
        try:
            with sdpa_kernel(backend):
                row[f"{name}_ms"] = milliseconds(attend, args.repeats)
        except RuntimeError:  # the backend does not take this shape here
            row[f"{name}_ms"] = "n/a"
    return row


def vae_row(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chunk, pixels, width = 5, 9216 // args.scale, 512
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    q, k, v = (torch.randn(chunk, pixels, width, device=device, dtype=dtype) for _ in range(3))
    scale = width ** -0.5

    def efficient() -> Any:
        with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
            return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]

    speed.attention_scores_op()
    products = torch.compile(speed.attention_by_products)
    reference = efficient().float()
    error = (products(q, k, v, scale).float() - reference).abs().max().item()
    return {"attention": "vae decoder", "batch": 1, "shape": f"{chunk}x1x{pixels}x{width}",
            "efficient_ms": milliseconds(efficient, args.repeats),
            "products_ms": milliseconds(lambda: products(q, k, v, scale), args.repeats),
            "products_max_error": round(error, 5)}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--scale", type=int, default=1,
                        help="divide the pixel counts by this (a CPU smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    rows = []
    for batch in (1, 2):
        for kind, pixels, channels in UNET_SHAPES:
            rows.append(unet_row(kind, pixels // args.scale, channels, batch, args, cuda))
            print(rows[-1], flush=True)
    rows.append(vae_row(args, cuda))
    print(rows[-1], flush=True)
    path = write_results("attention_kernels", rows, {"scale": args.scale}, args.out)
    print_table(rows, ["attention", "batch", "shape", "default_ms", "default_kernel", "cudnn_ms",
                       "flash_ms", "efficient_ms", "math_ms", "products_ms"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
