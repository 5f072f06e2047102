"""How long Dynamo takes over the fast profile's compiled SVD-XT regions at a start, on a CPU.

    python3 bench/compile_trace_cpu.py [--model-dir DIR] [--try CANDIDATE,...] [--repeats N]

Without --model-dir the random model is built in a temporary folder and removed at the end.

Until 2026-11-27's fifth session a second start with a warm compile cache traced every compiled
region again before the cached kernels loaded: Python on the host CPU, 9-12 s of a 28-36 s second
start on H100 hosts (`compile_phases_s` in bench/results/svd_profiles_turbo_*.json). Now each
region is saved whole at the first start and loaded at the next (models/precompiled.py). That
part needs no GPU, so it is measured here: the full-size SVD-XT architecture (random weights,
saved and loaded like the real one), the fast profile's levers (models.diffusion.video_levers)
and its regions (models/speed.py), with Dynamo's "eager" backend in place of Inductor, so only
Dynamo's part is timed. Each variant runs in two fresh processes sharing one new cache folder:
the first start traces and saves, the next one finds what the first saved. Each traces one turbo
UNet step (25 frames, batch 1) and one decode in the profile's chunks at a small latent size (the
shapes change the sizes, not the traced code).
- dynamo_s: Dynamo's whole compile time for the model (tracing, guards, the eager backend);
  tracing_s: its bytecode tracing part; graphs: the graphs it made; ops: the calls it captured;
  first_call_s and second_call_s: the model's first call (tracing or loading, then running) and
  its second (running); start_s: their difference, what the start costs.
With --repeats, the variants take turns that many times; the summary gives each variant's
median dynamo_s per start and model, and for both models.
Candidates (--try), each alone on top of the product's:
- decoder-blocks: the VAE decoder compiled block by block (its SpatioTemporalResBlocks, its
  attention and its upsamplers) instead of as one graph, so blocks of one shape share a trace;
  it splits the decoder's fused kernels at each block: on an H100 the decode took 0.53 s
  against 0.49 s (bench/vae_decode.py's compiled-blocks), so it is not the product's.
Measured and now the product's (compile_trace_cpu_candidates.json): attention-no-signature,
diffusers' Attention called without its per-call signature check (speed.attention_calls_direct).
Writes compile_trace_cpu.json (to --out, or bench/results).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import compile_phases, print_table, write_results  # noqa: E402 (sets sys.path)

CANDIDATES = ("decoder-blocks",)
DECODER_BLOCKS = ("SpatioTemporalResBlock", "Attention", "Upsample2D")
LATENT = (8, 16)  # latent height and width traced (64 x 128 pixels)
STARTS = ("first", "next")  # a fresh cache folder, then a process finding what the first saved
FRAMES = 25


def trace_one(model_dir: Path, variant: str, start: str) -> list[dict[str, Any]]:
    """In this process: load, place the fast profile's levers, trace; a row per model."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    from models import precompiled, speed
    from models.diffusion import video_levers
    from models.memory import PROFILES

    pipe = StableVideoDiffusionPipeline.from_pretrained(str(model_dir), dtype=torch.float32)
    precompiled.BACKEND = "eager"  # Dynamo only: its eager backend for Inductor
    if variant == "decoder-blocks":
        speed.VAE_REGIONS = DECODER_BLOCKS
    video_levers(pipe, PROFILES["fast"])

    height, width = LATENT
    latents = torch.randn(1, FRAMES, 4, height, width)

    def unet_step() -> None:
        pipe.unet(torch.randn(1, FRAMES, 8, height, width), torch.tensor([1.0]),
                  torch.randn(1, 1, 1024), torch.tensor([[6.0, 127.0, 0.02]]), return_dict=False)

    def decode() -> None:
        pipe.decode_latents(latents, num_frames=FRAMES,
                            decode_chunk_size=PROFILES["fast"].decode_chunk_size)

    rows = []
    with torch.inference_mode():
        for model, call in (("unet", unet_step), ("vae decoder", decode)):
            before = _dynamo_totals()
            started = time.perf_counter()
            call()
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            call()  # traced: the guards pass, the eager graphs run
            again_s = time.perf_counter() - started
            after = _dynamo_totals()
            rows.append({"variant": variant, "start": start, "model": model,
                         **{k: round(after[k] - before[k], 2) for k in ("dynamo_s", "tracing_s")},
                         **{k: after[k] - before[k] for k in ("graphs", "ops")},
                         "first_call_s": round(first_s, 2), "second_call_s": round(again_s, 2),
                         "start_s": round(first_s - again_s, 2)})
    return rows


def _child(folder: Path, variant: str, start: str, cache: str) -> list[dict[str, Any]]:
    """One fresh process tracing `variant` with Storyreel's caches in `cache`."""
    import os

    done = subprocess.run([sys.executable, __file__, "--model-dir", str(folder),
                           "--one", f"{variant}:{start}"], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "STORYREEL_CACHE": cache})
    found = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
    if not found:
        raise SystemExit(f"{variant}, {start} start: {done.stderr.strip()[-2000:]}")
    return json.loads(found[-1].removeprefix("ROWS "))


def _medians(rows: list[dict[str, Any]], variants: list[str]) -> dict[str, dict[str, float]]:
    """Each variant's and start's median dynamo_s for each model, and for both models in one
    process."""
    from statistics import median

    medians = {}
    for variant in variants:
        for start in STARTS:
            mine = [r for r in rows if r["variant"] == variant and r["start"] == start]
            per_model = {m: median(r["dynamo_s"] for r in mine if r["model"] == m)
                         for m in dict.fromkeys(r["model"] for r in mine)}
            both = [a["dynamo_s"] + b["dynamo_s"] for a, b in zip(mine[::2], mine[1::2])]
            medians[f"{variant}, {start} start"] = {**per_model, "both": round(median(both), 2)}
    return medians


def _dynamo_totals() -> dict[str, float]:
    from torch._dynamo.utils import counters

    phases = compile_phases()
    return {"dynamo_s": phases.get("_compile.compile_inner", 0.0)  # compiled the usual way
            + phases.get("fullgraph_capture", 0.0),  # compiled ahead of time to be saved whole
            "tracing_s": phases.get("bytecode_tracing", 0.0),
            "graphs": counters["stats"]["unique_graphs"],
            "ops": counters["stats"]["calls_captured"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a saved SVD-XT-sized pipeline (default: build a random one)")
    parser.add_argument("--try", dest="candidates", default="", metavar="CANDIDATE,...",
                        help=f"candidates beside the product's: {', '.join(CANDIDATES)}")
    parser.add_argument("--repeats", type=int, default=1, help="processes per variant")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child's variant
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    if args.one:
        variant, start = args.one.split(":")
        print("ROWS " + json.dumps(trace_one(args.model_dir, variant, start)), flush=True)
        return
    variants = ["product", *filter(None, args.candidates.split(","))]
    for name in variants[1:]:
        if name not in CANDIDATES:
            raise SystemExit(f"--try: no candidate named {name!r} (there are: "
                             f"{', '.join(CANDIDATES)})")
    folder, scratch = args.model_dir, None
    if folder is None or not (folder / "model_index.json").is_file():
        from models.random_init import build_svd

        if folder is None:  # a 4.3 GB random model, removed when done
            scratch = tempfile.TemporaryDirectory(prefix="svd-xt-")
            folder = Path(scratch.name) / "svd-xt"
        build_svd(folder, "svd-xt", dtype="float16")
    rows: list[dict[str, Any]] = []
    try:
        for _ in range(args.repeats):
            for variant in variants:
                with tempfile.TemporaryDirectory(prefix="storyreel-cache-") as cache:
                    for start in STARTS:  # one cache: the first start saves, the next loads
                        rows += _child(folder, variant, start, cache)
                        print(rows[-2:], flush=True)
    finally:
        if scratch is not None:
            scratch.cleanup()
    summary = {"latent": list(LATENT), "frames": FRAMES, "model_dir": str(folder),
               "median_dynamo_s": _medians(rows, variants)}
    path = write_results("compile_trace_cpu", rows, summary, args.out)
    print_table(rows, ["variant", "start", "model", "dynamo_s", "tracing_s", "graphs", "ops",
                       "first_call_s", "second_call_s", "start_s"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
