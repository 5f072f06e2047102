"""Seconds per clip and peak GPU memory of Stable Video Diffusion, for each memory profile.

    python3 bench/svd_profiles.py --out DIR               # GPU: full-size SVD-XT, random weights
    python3 bench/svd_profiles.py --size tiny --width 64 --height 64 --steps 2   # CPU smoke test

The pipeline is built from the real SVD-XT configs (models/random_init.py), saved with
save_pretrained and loaded through the product's loader (models/diffusion.py). First a plain
eager clip (no levers, everything on the GPU) is the reference; then each profile
(models/memory.py, with its levers from models/speed.py) renders the same clip from the same
seed through the product's `svd_frames`:
- warm_s: the first (2-step) call after placing the model: compiling, when the cache is cold;
- clip_s: the median of --repeats full clips, warm (clip_runs_s: each one), the GPU's part
  (the re-timing to 24 fps runs beside the next scene, in the encoder thread); peak_gib: the
  most GPU memory allocated during it; allocator_growth: the median clip's new GPU and
  page-locked blocks (a warm clip needs none). Each clip's frames are let go once compared,
  as a film's encoder lets them go (the JSONs before svd_profiles_turbo_2026-11-27_host_blocks.json
  kept every clip's frames, so each clip copied its frames into freshly page-locked memory);
- diff_vs_eager: mean absolute difference from the reference frames, in 0-255 pixel levels;
  diff_vs_eager_even_chunks: the same against a second eager clip decoded in the profiles' even
  chunks (models/speed.even_decode_chunks: 5 x 5 frames where diffusers decodes 8, 8, 8, 1),
  which separates what the levers change from what the chunking changes.
With --second-start, a fresh process then loads the pipeline again with the compile cache the
first one filled, and reports ready_s: from its start until a full-speed clip can begin (of it
before_load_s, mostly importing torch, then load_s, loading the pipeline, and warm_s, placing it
and a first clip that loads the compiled regions saved whole, models/precompiled.py; before
2026-11-27's fifth session it traced them again), compile_phases_s (torch.compile's own
timings of its phases) and, with --profile-load, load_calls_s (the calls its load spent the most
time in, under a profiler that slows it).
summary.bytecode_on_disk says whether torch's modules had compiled bytecode on disk, as a pip
install leaves them (without it, each start also compiles torch's Python from source).
--quality turbo loads the same random UNet as a UNet-only model (as AnimateLCM-SVD-xt ships) with
the consistency sampler and no guidance, 4 steps. --try puts candidate levers (not yet in the
product) on top of each profile's; the rows' levers name them. Writes svd_profiles_QUALITY.json (to --out, or
bench/results).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (add_clip_arguments, bytecode_on_disk,  # noqa: E402 (sets sys.path)
                    compile_phases, print_table, turbo_stand_in, write_results)

STARTED = time.perf_counter()

from models import speed  # noqa: E402
from models.diffusion import apply_profile, load_video_pipeline  # noqa: E402
from models.memory import PROFILES  # noqa: E402
from models.random_init import build_svd  # noqa: E402
from pipeline.animate import VideoParams, svd_frames  # noqa: E402
from pipeline.storyboard import Scene  # noqa: E402


def clip(pipe: Any, args: argparse.Namespace, chunk: int, steps: int | None = None,
         peaks: dict[str, float] | None = None) -> tuple:
    """(seconds, frames, median step seconds) of one clip, synchronised. `peaks` gets the most
    GPU memory allocated in each phase: "setup" (image encoding and the first step), "denoise"
    (the other steps) and "decode" (the VAE and after)."""
    import numpy as np
    import torch
    from PIL import Image

    cuda = torch.cuda.is_available()
    keyframe = Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (args.height, args.width, 3), dtype=np.uint8))
    # One SVD run of `frames` frames at SVD-XT's usual 6 fps conditioning: a 4-second scene.
    scene = Scene(description="bench", visual_prompt="bench", duration=(args.frames - 1) / 6,
                  motion="medium", seed=0)
    guidance = (1.0, 1.0) if args.quality == "turbo" else (1.0, 3.0)  # turbo: batch 1
    params = VideoParams(args.width, args.height, 24, args.frames, steps or args.steps, 0.02,
                         *guidance, chunk)
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_step(done: int, total: int) -> None:
        if cuda:
            torch.cuda.synchronize()
            if peaks is not None and done in (1, total):
                peaks["setup" if done == 1 else "denoise"] = torch.cuda.max_memory_allocated()
                torch.cuda.reset_peak_memory_stats()
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    if cuda:
        torch.cuda.synchronize()
    started = last[0] = time.perf_counter()
    frames = svd_frames(pipe, keyframe, scene, params, on_step)
    if cuda:
        torch.cuda.synchronize()
        if peaks is not None:
            peaks["decode"] = torch.cuda.max_memory_allocated()
    ended = time.perf_counter()
    if peaks is not None:
        peaks["decode_s"] = ended - last[0]  # after the last step: the VAE decode and the copy
    steady = sorted(step_times[1:])
    return ended - started, frames, steady[len(steady) // 2] if steady else None


CANDIDATES = ("unet-frame-convs-channels-last", "decoder-blocks")  # not (yet) in the product


def try_candidates(pipe: Any, names: str) -> list[str]:
    """Put the named candidate levers (--try) on a placed pipeline, before its first call:
    - unet-frame-convs-channels-last: the UNet's convolutions over frames (Conv3d) in the
      channels-last-3d layout, as the product's VAE decoder has them (a turbo clip's profile
      showed 40 ms of cuDNN layout copies in the UNet; measured, no faster);
    - decoder-blocks: the VAE decoder compiled block by block instead of whole (Dynamo traces
      it in about 2.0 s instead of 3.05 s at a start, bench/compile_trace_cpu.py; the decode
      alone measured 0.53 s against 0.49 s, bench/vae_decode.py's compiled-blocks).
    Earlier candidates now in the product: temporal-attention-mem-efficient
    (speed.frame_attention_on_efficient_kernel), attention-bf16-products
    (speed.wide_head_attention_as_products) and vae-encoder-compiled (speed.compile_vae_encoder,
    2026-11-27's fifth session); attention-mm is bench/vae_decode.py's."""
    applied = []
    for name in filter(None, names.split(",")):
        if name == "decoder-blocks":
            from compile_trace_cpu import DECODER_BLOCKS

            pipe.vae.decoder._compiled_call_impl = None  # not yet traced: compiled at first call
            speed.compile_regions(pipe.vae, DECODER_BLOCKS)
        elif name == "unet-frame-convs-channels-last":
            speed.frame_convs_channels_last(pipe.unet)
        else:
            raise SystemExit(f"--try: no candidate named {name!r} (there are: "
                             f"{', '.join(CANDIDATES)})")
        applied.append(f"try: {name}")
    return applied


def measure_profile(pipe: Any, name: str, args: argparse.Namespace,
                    reference: list | None, even: list | None = None) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    profile = PROFILES[name]
    levers = apply_profile(pipe, profile) + try_candidates(pipe, args.candidates)
    began = time.perf_counter()
    try:
        # compile (or load it from the cache), allocator, offload hooks
        clip(pipe, args, profile.decode_chunk_size, steps=args.warm_steps)
        warm_s = time.perf_counter() - began
        runs = []
        for _ in range(max(1, args.repeats)):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            peaks: dict[str, float] = {}
            grown = allocator_counts()
            clip_s, frames, step_s = clip(pipe, args, profile.decode_chunk_size, peaks=peaks)
            grown = {k: v - grown[k] for k, v in allocator_counts().items()}
            # each clip's frames let go once compared, as a film's encoder lets them go: the
            # page-locked block they were copied into then serves the next clip
            runs.append((clip_s, compare(frames, reference, even), step_s, peaks, grown))
            del frames
        clip_s, compared, step_s, peaks, grown = sorted(runs, key=lambda run: run[0])[
            len(runs) // 2]
    except torch.cuda.OutOfMemoryError as err:
        torch.cuda.empty_cache()
        return {"profile": name, "error": f"out of GPU memory (cap {args.cap_gib} GiB): "
                                          f"{str(err).splitlines()[0][:160]}"}
    decode_s = peaks.pop("decode_s", None)
    peak = max(peaks.values()) / 2**30 if peaks else None
    row: dict[str, Any] = {
        "profile": name, "quality": args.quality, "size": args.size, "clip_s": round(clip_s, 2),
        "clip_runs_s": [round(run[0], 3) for run in runs],
        "decode_s": round(decode_s, 3) if decode_s else None,
        "peak_gib": round(peak, 2) if peak else None, "median_step_s": round(step_s, 3)
        if step_s else None, "warm_s": round(warm_s, 1), "levers": levers,
        "decode_chunk_size": profile.decode_chunk_size,
        "width": args.width, "height": args.height, "num_frames": args.frames,
        "steps": args.steps, "dtype": str(pipe.unet.dtype).removeprefix("torch."),
        **{f"peak_{phase}_gib": round(v / 2**30, 2) for phase, v in peaks.items()},
        **compared, "allocator_growth": grown}
    return row


def compare(frames: list, reference: list | None, even: list | None) -> dict[str, Any]:
    """A clip's frame count, whether they are finite, and their mean difference in 0-255 levels
    from the eager reference's and from the eager clip decoded in even chunks."""
    import numpy as np

    row: dict[str, Any] = {
        "frames": len(frames),
        "finite": bool(np.isfinite(np.asarray(frames[0], dtype=np.float32)).all())}
    for key, frames_before in (("diff_vs_eager", reference), ("diff_vs_eager_even_chunks", even)):
        if frames_before is not None:
            row[key] = round(float(np.mean([np.abs(a.astype(np.int16) - b).mean()
                                            for a, b in zip(frames, frames_before)])), 3)
    return row


def allocator_counts() -> dict[str, float]:
    """How often the GPU and page-locked allocators have grown so far (each growth is a slow
    CUDA call a warm clip should not need), and the milliseconds the page-locked ones took."""
    import torch

    if not torch.cuda.is_available():
        return {}
    host = torch.cuda.host_memory_stats() if hasattr(torch.cuda, "host_memory_stats") else {}
    return {"device_allocs": torch.cuda.memory_stats().get("num_device_alloc", 0),
            "host_allocs": host.get("num_host_alloc", 0),
            "host_alloc_ms": host.get("host_alloc_time.total", 0) / 1e3}


def slowest_calls(profiler: Any, count: int = 14) -> dict[str, float]:
    """The calls a profiled load spent the most time in (cumulative seconds), by function."""
    import pstats

    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (calls, _, own, cumulative, _)
    slowest = sorted(stats.items(), key=lambda kv: -kv[1][3])[:count]
    return {f"{Path(file).name}:{line}({name})": round(row[3], 2)
            for (file, line, name), row in slowest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_clip_arguments(parser)
    parser.add_argument("--quality", choices=("full", "turbo"), default="full",
                        help="turbo: the same random UNet loaded as a UNet-only (AnimateLCM-style) "
                             "model with the consistency sampler, no guidance")
    parser.add_argument("--steps", type=int, default=None, help="default: full 25, turbo 4")
    parser.add_argument("--profiles", default="fast,balanced,low")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=BASE:FIELD=V,...",
                        help="an extra profile to try, e.g. low1=low:decode_chunk_size=1")
    parser.add_argument("--try", dest="candidates", default="", metavar="LEVER,...",
                        help=f"candidate levers on top of each profile's: {', '.join(CANDIDATES)}")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse a saved pipeline")
    parser.add_argument("--repeats", type=int, default=3,
                        help="warm clips per profile; the row is the median one's")
    parser.add_argument("--warm-steps", type=int, default=2, help="steps of the warm-up clip")
    parser.add_argument("--cap-gib", type=float, default=None,
                        help="let this process allocate at most this much GPU memory (a smaller card)")
    parser.add_argument("--no-reference", action="store_true", help="skip the eager reference clip")
    parser.add_argument("--second-start", action="store_true",
                        help="then time a fresh process's start with the compile cache filled")
    parser.add_argument("--ready-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-load", action="store_true",
                        help="with --second-start: profile the fresh process's load (its "
                             "load_calls_s); the profiler slows that start by several seconds")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    args.steps = args.steps or (4 if args.quality == "turbo" else 25)

    import torch

    for spec in args.variant:  # candidate profiles, measured beside the product's own
        name, _, rest = spec.partition("=")
        base, _, fields = rest.partition(":")
        changes = dict(item.split("=", 1) for item in fields.split(",") if item)
        types = {f.name: f.type for f in dataclasses.fields(PROFILES[base])}
        typed = {k: (v == "True") if types[k] in (bool, "bool") else
                 int(v) if types[k] in (int, "int") else v for k, v in changes.items()}
        PROFILES[name] = dataclasses.replace(PROFILES[base], name=name, **typed)
    cuda = torch.cuda.is_available()
    if cuda and args.cap_gib:  # allocations past the cap raise out-of-memory, as on a smaller card
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(args.cap_gib * 2**30 / total)
    folder = args.model_dir or Path(tempfile.mkdtemp()) / f"random-{args.size}"
    if not (folder / "model_index.json").is_file():
        started = time.perf_counter()
        build_svd(folder, args.size, dtype="float16" if cuda else "float32")
        print(f"built and saved {args.size} in {time.perf_counter() - started:.1f} s", flush=True)
    model = str(folder) if args.quality == "full" else str(turbo_stand_in(folder))
    started = time.perf_counter()
    profiler = None
    if args.ready_only and args.profile_load:  # where a fresh process's load goes (slower so)
        import cProfile

        profiler = cProfile.Profile()
        pipe = profiler.runcall(load_video_pipeline, model)
    else:
        pipe = load_video_pipeline(model)
    load_s = time.perf_counter() - started

    if args.ready_only:  # the child of --second-start: how soon is a fresh process at full speed?
        row = measure_profile(pipe, args.profiles.split(",")[0], args, None)
        ready_s = time.perf_counter() - STARTED - row["clip_s"]
        row.update(before_load_s=round(started - STARTED, 1), load_s=round(load_s, 1),
                   ready_s=round(ready_s, 1),
                   compile_phases_s={name: round(seconds, 2) for name, seconds
                                     in list(compile_phases().items())[:12]},
                   **({"load_calls_s": slowest_calls(profiler)} if profiler else {}))
        print("READY " + json.dumps(row), flush=True)
        return

    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"load_s": round(load_s, 2), "model_dir": str(folder),
                               "cap_gib": args.cap_gib, "bytecode_on_disk": bytecode_on_disk()}
    reference = even = None
    if not args.no_reference:  # plain eager: the pipeline as diffusers ships it, all on the GPU
        if cuda:
            pipe.to("cuda")
            torch.cuda.reset_peak_memory_stats()
        clip_s, reference, step_s = clip(pipe, args, 8)
        rows.append({"profile": "eager reference", "quality": args.quality,
                     "clip_s": round(clip_s, 2),
                     "median_step_s": round(step_s, 3) if step_s else None,
                     "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda
                     else None, "decode_chunk_size": 8, "levers": ["none"]})
        print(rows[-1], flush=True)
        speed.even_decode_chunks(pipe)  # the profiles' chunking, nothing else
        _, even, _ = clip(pipe, args, 8)
    for name in args.profiles.split(","):
        rows.append(measure_profile(pipe, name, args, reference, even))
        print(rows[-1], flush=True)
        write_results(f"svd_profiles_{args.quality}", rows, summary, args.out)
    if args.second_start:
        del pipe
        command = [sys.executable, __file__, "--ready-only", "--model-dir", str(folder),
                   "--quality", args.quality,
                   "--profiles", args.profiles.split(",")[0], "--size", args.size,
                   "--width", str(args.width), "--height", str(args.height),
                   "--frames", str(args.frames), "--steps", str(args.steps),
                   "--repeats", "1", "--try", args.candidates,
                   *(["--profile-load"] if args.profile_load else [])]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        ready = [line for line in done.stdout.splitlines() if line.startswith("READY ")]
        if ready:
            row = json.loads(ready[-1].removeprefix("READY "))
            row["profile"] += " (second start)"
            row["process_s"] = round(time.perf_counter() - began, 1)
            rows.append(row)
        else:
            rows.append({"profile": "second start", "error": done.stderr.strip()[-300:]})
        print(rows[-1], flush=True)
    path = write_results(f"svd_profiles_{args.quality}", rows, summary, args.out)
    print_table(rows, ["profile", "quality", "clip_s", "decode_s", "peak_gib", "peak_setup_gib",
                       "peak_denoise_gib", "peak_decode_gib", "median_step_s", "warm_s", "ready_s", "diff_vs_eager",
                       "diff_vs_eager_even_chunks"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
