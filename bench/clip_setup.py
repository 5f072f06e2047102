"""The clip's setup before its first step: SVD's image encoder and the keyframe's VAE encode.

    python3 bench/clip_setup.py --out DIR                     # GPU: SVD-XT's parts, random weights
    python3 bench/clip_setup.py --size tiny --width 64 --height 64   # CPU smoke test (eager rows)

At 4 steps a clip is about 1.4 s on an H100, and its setup (about 60 ms) is paid once per clip
whatever the steps. The parts are built from SVD-XT's configs (models/random_init.py), in the
product's dtype, and each row times one of them (median of --repeats synchronised calls):
- image-encoder eager: the OpenCLIP ViT-H/14 on one 224x224 picture, as the product ran it before;
- image-encoder replayed: the same through the product's CUDA graph (speed.GraphReplay);
- vae-encode eager: the keyframe (1024x576) through the VAE's encoder, as the product runs it;
- vae-encode replayed: the same through speed.GraphReplay;
- vae-encode channels-last (and replayed): candidates, the encoder's convolutions and the
  keyframe in the channels-last layout cuDNN's kernels use, eager;
- vae-encode compiled: the encoder compiled whole with the decoder's group-norm, SiLU and
  attention levers, with its first call (the product's since 2026-11-27's fifth session, which
  replays it as a CUDA graph as well: speed.compile_vae_encoder, speed.replay_vae_encoder).
gpu_ms is the kernels' own time in one profiled call (torch.profiler): where it is far below
ms, the part waits on Python, which a graph removes. diff is the largest absolute difference
from the eager output.
Writes clip_setup.json (to --out, or bench/results).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

from common import (add_clip_arguments, print_table, timed,  # noqa: E402 (sets sys.path)
                    write_results)

from models import speed  # noqa: E402
from models.random_init import SVD_XT_IMAGE_ENCODER, TINY_IMAGE_ENCODER  # noqa: E402
from vae_decode import build_vae  # noqa: E402


def kernel_ms(fn: Callable[[], Any]) -> float | None:
    """The GPU kernels' total milliseconds in one call (None on a CPU)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if not torch.cuda.is_available():
        return None
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return round(sum(e.self_device_time_total for e in prof.key_averages()) / 1e3, 2)


def main() -> None:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    parser = argparse.ArgumentParser(description=__doc__)
    add_clip_arguments(parser)  # --frames unused: one keyframe
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    speed.allow_fast_math()
    torch.manual_seed(0)
    encoder_config = SVD_XT_IMAGE_ENCODER if args.size == "svd-xt" else TINY_IMAGE_ENCODER
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**encoder_config))
    encoder = encoder.to(device, dtype).eval()
    vae = build_vae(args.size, device)
    side = encoder_config["image_size"]
    picture = torch.randn(1, 3, side, side, device=device, dtype=dtype)
    keyframe = torch.randn(1, 3, args.height, args.width, device=device, dtype=dtype)

    rows: list[dict[str, Any]] = []

    def row(part: str, how: str, fn: Callable[[], Any], reference: Any = None,
            first_s: float | None = None) -> Any:
        seconds, out = timed(fn, args.repeats)
        entry = {"part": part, "how": how, "ms": round(seconds * 1e3, 2), "gpu_ms": kernel_ms(fn),
                 "first_call_s": first_s,
                 "diff": None if reference is None else float((out - reference).abs().max())}
        rows.append(entry)
        print(entry, flush=True)
        return out

    with torch.inference_mode():
        embeds = row("image-encoder", "eager", lambda: encoder(picture).image_embeds)
        if cuda:
            replay = speed.GraphReplay(lambda pixels: encoder(pixels).image_embeds, encoder,
                                   "the image encoder")
            row("image-encoder", "replayed", lambda: replay(picture), embeds)
        latents = row("vae-encode", "eager", lambda: vae.encode(keyframe).latent_dist.mode())
        if cuda:
            for layout, name in ((torch.contiguous_format, ""), (torch.channels_last,
                                                                  "channels-last")):
                vae.encoder.to(memory_format=layout)
                frame = keyframe.contiguous(memory_format=layout)
                if name:
                    row("vae-encode", name, lambda: vae.encode(frame).latent_dist.mode(), latents)
                encode = speed.GraphReplay(lambda pixels: vae.encode(pixels).latent_dist.mode(),
                                           vae.encoder, "the VAE's encoder")
                row("vae-encode", f"{name} replayed".strip(), lambda: encode(frame), latents)
            vae.encoder.to(memory_format=torch.contiguous_format)
            speed.attention_calls_direct(vae)  # as the compiled profiles do
            speed.compile_vae_encoder(vae)
            began = time.perf_counter()
            vae.encode(keyframe)
            torch.cuda.synchronize()
            row("vae-encode", "compiled", lambda: vae.encode(keyframe).latent_dist.mode(),
                latents, round(time.perf_counter() - began, 1))
    print_table(rows, ["part", "how", "ms", "gpu_ms", "first_call_s", "diff"])
    print("wrote", write_results("clip_setup", rows, {}, args.out))


if __name__ == "__main__":
    main()
