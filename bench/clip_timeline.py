"""Where a warm turbo clip's time goes on the GPU: idle gaps and kernel families.

    python3 bench/clip_timeline.py --model-dir DIR --out OUT    # GPU: full-size SVD-XT
    python3 bench/clip_timeline.py --size tiny --width 64 --height 64 --frames 4   # CPU smoke test

The pipeline is placed with the fast profile (the product's levers) and warmed up; three clips
are timed (seconds, median step, decode; setup = clip - 4 steps - decode), then one more runs
under torch.profiler. From its CUDA events: the GPU's span, busy and idle time, the longest
idle gaps (when, how long, and the kernel or copy that ended each: a gap ending in a host copy
is the GPU waiting for the CPU), and the kernels' time by family; phases, the clip's setup and
first step part by part (image encoder, VAE encode, ..., UNet, sampler step) and its decode:
when the CPU was in each and when the GPU ran what it launched (a part whose GPU work starts
long after its CPU call waited for something), and the calls where the CPU waited on the GPU.
On the CPU only the timings are taken. Writes clip_timeline.json (to --out, or bench/results).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from common import (add_clip_arguments, kernel_kind, turbo_stand_in,  # noqa: E402 (sets sys.path)
                    write_results)

from models.diffusion import apply_profile, load_video_pipeline  # noqa: E402
from models.memory import PROFILES  # noqa: E402
from models.random_init import build_svd  # noqa: E402
from svd_profiles import clip  # noqa: E402


def timeline(pipe: Any, args: argparse.Namespace, gaps: int) -> dict[str, Any]:
    """One clip under the profiler: GPU span, busy, idle, the longest gaps, kernel families, and
    its parts (phase_times)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof, \
            labelled_phases(pipe):
        began = time.perf_counter()
        clip(pipe, args, PROFILES["fast"].decode_chunk_size)
        wall = time.perf_counter() - began
    kernels = sorted((e for e in prof.events() if e.device_type.name == "CUDA"
                      and e.time_range.elapsed_us() > 0), key=lambda e: e.time_range.start)
    start = kernels[0].time_range.start
    gpu = gpu_time(kernels, start)
    longest = sorted(sorted(gpu.pop("idle"), key=lambda gap: -gap[1])[:gaps])
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        phases = phase_times(json.loads(trace.read_text()))
    return {"wall_ms": round(wall * 1e3, 1), **gpu,
            "longest_gaps": [{"at_ms": round(at / 1e3, 1), "gap_ms": round(gap / 1e3, 2),
                              "before": name} for at, gap, name in longest],
            "phases": phases}


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


# The pipeline's parts labelled in the profile, in the order a clip calls them: (label, where
# the method lives: "pipe", its "unet", "scheduler" or "video_processor", the method's name).
PHASES = (("image encoder", "pipe", "_encode_image"),
          ("keyframe pixels", "video_processor", "preprocess"),
          ("VAE encode", "pipe", "_encode_vae_image"),
          ("time ids", "pipe", "_get_add_time_ids"),
          ("timesteps", "scheduler", "set_timesteps"),
          ("latents", "pipe", "prepare_latents"),
          ("UNet", "unet", "forward"),
          ("sampler step", "scheduler", "step"),
          ("decode", "pipe", "decode_latents"))


@contextlib.contextmanager
def labelled_phases(pipe: Any) -> Iterator[None]:
    """Each PHASES method of `pipe` runs inside a profiler label of its name while inside."""
    from torch.profiler import record_function

    def labelled(label: str, method: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            with record_function(f"phase: {label}"):
                return method(*args, **kwargs)
        return run

    owners = {"pipe": pipe, "unet": pipe.unet, "scheduler": pipe.scheduler,
              "video_processor": pipe.video_processor}
    wrapped = []
    for label, owner, name in PHASES:
        target = owners[owner]
        setattr(target, name, labelled(label, getattr(target, name)))
        wrapped.append((target, name))
    try:
        yield
    finally:
        for target, name in wrapped:
            delattr(target, name)  # the class's method again


def phase_times(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """From a chrome trace of one labelled clip: each phase up to the end of the first sampler
    step, and the decode, with when the CPU was in it and when the GPU ran the work it launched
    (from the launch calls' correlation ids, the runtime's and the driver's), in ms from the
    clip's first label; the end of the clip's GPU work; then the CPU's calls that waited on the
    GPU (synchronisations and copies over 0.1 ms) up to the end of the first step. Before
    2026-11-27's fourth session the driver's launches were left out, so the phases' gpu_busy_ms
    in earlier JSONs count only the library kernels, not Inductor's Triton ones."""
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    labels = sorted((e for e in events if e.get("cat") == "user_annotation"
                     and e["name"].startswith("phase: ")), key=lambda e: e["ts"])
    if not labels:
        return []
    first_step = next((e for e in labels if e["name"] == "phase: sampler step"), labels[-1])
    start, end = labels[0]["ts"], first_step["ts"] + first_step["dur"]
    # launches: the runtime's, and the driver's (cuLaunchKernel: Inductor's Triton kernels)
    runtime = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")]
    device = {e["args"]["correlation"]: e for e in events
              if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")
              and "correlation" in e.get("args", {})}
    rows = []
    for label in (e for e in labels if e["ts"] <= end or e["name"] == "phase: decode"):
        inside = [e for e in runtime if label["ts"] <= e["ts"] <= label["ts"] + label["dur"]]
        work = [device[c] for c in (e["args"].get("correlation") for e in inside) if c in device]
        row = {"phase": label["name"][len("phase: "):],
               "cpu_ms": [round((label["ts"] - start) / 1e3, 2),
                          round((label["ts"] + label["dur"] - start) / 1e3, 2)]}
        if work:
            row["gpu_ms"] = [round((min(e["ts"] for e in work) - start) / 1e3, 2),
                             round((max(e["ts"] + e["dur"] for e in work) - start) / 1e3, 2)]
            row["gpu_busy_ms"] = round(sum(e["dur"] for e in work) / 1e3, 2)
        rows.append(row)
    if device:
        clip_end = max(e["ts"] + e["dur"] for e in device.values())
        rows.append({"phase": "the clip's last GPU work",
                     "gpu_ms": round((clip_end - start) / 1e3, 2)})
    waits = [{"call": e["name"], "at_ms": round((e["ts"] - start) / 1e3, 2),
              "ms": round(e["dur"] / 1e3, 2)} for e in runtime
             if start <= e["ts"] <= end and e["dur"] > 100
             and ("Synchronize" in e["name"] or "Memcpy" in e["name"])]
    return rows + [{"phase": "CPU waits", "calls": waits}]


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
