"""Where a warm turbo clip's time goes on the GPU: idle gaps and kernel families.

    python3 bench/clip_timeline.py --model-dir DIR --out OUT    # GPU: full-size SVD-XT
    python3 bench/clip_timeline.py --size tiny --width 64 --height 64 --frames 4   # CPU smoke test

The pipeline is placed with the fast profile (the product's levers) and warmed up; three clips
are timed (seconds, median step, decode; setup = clip - 4 steps - decode), then one more runs
under torch.profiler. From its CUDA events: the GPU's span, busy and idle time, the longest
idle gaps (when, how long, and the kernel or copy that ended each: a gap ending in a host copy
is the GPU waiting for the CPU), and the kernels' time by family; first_step, the same for the
clip up to the end of its first step (its setup, then one step), with the CUDA runtime calls
that took longest there. On the CPU only the timings are taken. Writes clip_timeline.json (to
--out, or bench/results).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (add_clip_arguments, kernel_kind, turbo_stand_in,  # noqa: E402 (sets sys.path)
                    write_results)

from models.diffusion import apply_profile, load_video_pipeline  # noqa: E402
from models.memory import PROFILES  # noqa: E402
from models.random_init import build_svd  # noqa: E402
from svd_profiles import clip  # noqa: E402


def timeline(pipe: Any, args: argparse.Namespace, gaps: int) -> dict[str, Any]:
    """One clip under the profiler: GPU span, busy, idle, the longest gaps, kernel families."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        clip(pipe, args, PROFILES["fast"].decode_chunk_size)
        wall = time.perf_counter() - began
    kernels = sorted((e for e in prof.events() if e.device_type.name == "CUDA"
                      and e.time_range.elapsed_us() > 0), key=lambda e: e.time_range.start)
    start = kernels[0].time_range.start
    gpu = gpu_time(kernels, start)
    longest = sorted(sorted(gpu.pop("idle"), key=lambda gap: -gap[1])[:gaps])
    return {"wall_ms": round(wall * 1e3, 1), **gpu,
            "longest_gaps": [{"at_ms": round(at / 1e3, 1), "gap_ms": round(gap / 1e3, 2),
                              "before": name} for at, gap, name in longest],
            "first_step": first_step_window(prof, kernels, start)}


def gpu_time(kernels: list, start: float) -> dict[str, Any]:
    """For CUDA events in start order from `start` on: the GPU's span, busy and idle time, its
    idle gaps ((at, length, the event that ended it), microseconds) and the events' time by
    kernel family."""
    end, busy, idle = start, 0.0, []
    families: dict[str, float] = {}
    for event in kernels:
        if event.time_range.start > end:
            idle.append((end - start, event.time_range.start - end, event.name[:70]))
        busy += max(0, event.time_range.end - max(event.time_range.start, end))
        end = max(end, event.time_range.end)
        kind = kernel_kind(event.name)
        families[kind] = families.get(kind, 0.0) + event.time_range.elapsed_us() / 1e3
    return {"gpu_span_ms": round((end - start) / 1e3, 1), "gpu_busy_ms": round(busy / 1e3, 1),
            "gpu_idle_ms": round((end - start - busy) / 1e3, 1), "idle": idle,
            "kernel_ms_by_family": {k: round(v, 1) for k, v in
                                    sorted(families.items(), key=lambda kv: -kv[1])}}


def first_step_window(prof: Any, kernels: list, start: float) -> dict[str, Any]:
    """The clip up to the end of its first step (the benchmark synchronises after each step):
    the setup (image encoder, VAE encode, noise) and one step. Its GPU time (gpu_time), how many
    kernels ran, and the CUDA runtime calls that took longest on the CPU (a long copy or
    synchronisation there is the GPU waiting, or the CPU waiting on the GPU)."""
    runtime = sorted((e for e in prof.events() if e.device_type.name == "CPU"
                      and e.name.startswith("cuda")), key=lambda e: e.time_range.start)
    syncs = [e for e in runtime if "Synchronize" in e.name and e.time_range.start > start]
    if not syncs:
        return {}
    end_cpu = syncs[0].time_range.end
    inside = [k for k in kernels if k.time_range.start < end_cpu]
    gpu = gpu_time(inside, start)
    del gpu["idle"]
    calls = sorted((e for e in runtime if e.time_range.end <= end_cpu),
                   key=lambda e: -e.time_range.elapsed_us())[:12]
    return {**gpu, "kernels": len(inside),
            "longest_runtime_calls": [{"call": e.name, "at_ms": round((e.time_range.start - start)
                                                                      / 1e3, 1),
                                       "ms": round(e.time_range.elapsed_us() / 1e3, 2)}
                                      for e in calls]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_clip_arguments(parser)
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse a saved pipeline")
    parser.add_argument("--gaps", type=int, default=25, help="how many of the longest gaps")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    args.steps, args.quality = 4, "turbo"

    import torch

    cuda = torch.cuda.is_available()
    folder = args.model_dir or Path(tempfile.mkdtemp()) / f"random-{args.size}"
    if not (folder / "model_index.json").is_file():
        build_svd(folder, args.size, dtype="float16" if cuda else "float32")
    pipe = load_video_pipeline(str(turbo_stand_in(folder)))
    levers = apply_profile(pipe, PROFILES["fast"])
    chunk = PROFILES["fast"].decode_chunk_size
    began = time.perf_counter()
    clip(pipe, args, chunk, steps=2)  # compiles, or loads the compile from the cache
    warm_s = time.perf_counter() - began
    runs = []
    for _ in range(3):
        peaks: dict[str, float] = {}
        seconds, _, step = clip(pipe, args, chunk, peaks=peaks)
        runs.append({"clip_s": round(seconds, 3), "median_step_s": round(step, 3),
                     "decode_s": round(peaks["decode_s"], 3),
                     "setup_s": round(seconds - 4 * step - peaks["decode_s"], 3)})
        print(runs[-1], flush=True)
    row: dict[str, Any] = {"profile": "fast", "quality": "turbo", "levers": levers,
                           "warm_s": round(warm_s, 1), "clips": runs}
    if cuda:
        row.update(timeline(pipe, args, args.gaps))
        print({k: v for k, v in row.items() if k not in ("levers", "clips")}, flush=True)
    print(f"wrote {write_results('clip_timeline', [row], {'model_dir': str(folder)}, args.out)}")


if __name__ == "__main__":
    main()
