"""Seconds per clip and peak GPU memory of Stable Video Diffusion, for each memory profile.

    python bench/svd_profiles.py                       # GPU: full-size SVD-XT, random weights
    python bench/svd_profiles.py --size tiny --width 64 --height 64 --steps 2   # CPU smoke test

The pipeline is built from the real SVD-XT configs (models/random_init.py), saved with
save_pretrained and loaded through the product's loader (models/diffusion.py), then each profile
(models/memory.py) renders one clip through the product's `svd_frames` after a short warm-up.
Writes bench/results/svd_profiles.json (or --out DIR).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import print_table, write_results  # noqa: E402 (sets sys.path)

from models.diffusion import apply_profile, load_video_pipeline
from models.memory import PROFILES
from models.random_init import build_svd
from pipeline.animate import VideoParams, svd_frames
from pipeline.storyboard import Scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=("svd-xt", "tiny"), default="svd-xt")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--profiles", default="fast,balanced,low")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse a saved pipeline")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    folder = args.model_dir or Path(tempfile.mkdtemp()) / f"random-{args.size}"
    if not (folder / "model_index.json").is_file():
        started = time.perf_counter()
        build_svd(folder, args.size, dtype="float16" if cuda else "float32")
        print(f"built and saved {args.size} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    pipe = load_video_pipeline(str(folder))
    load_s = time.perf_counter() - started
    from PIL import Image
    import numpy as np

    keyframe = Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (args.height, args.width, 3), dtype=np.uint8))
    # One SVD run of `frames` frames at SVD-XT's usual 6 fps conditioning: a 4-second scene.
    scene = Scene(description="bench", visual_prompt="bench", duration=(args.frames - 1) / 6,
                  motion="medium", seed=0)
    rows = []
    for name in args.profiles.split(","):
        profile = PROFILES[name]
        apply_profile(pipe, profile)
        params = VideoParams(args.width, args.height, 24, args.frames, args.steps, 0.02, 1.0,
                             3.0, profile.decode_chunk_size)
        warm = VideoParams(**{**params.__dict__, "num_inference_steps": 2})
        svd_frames(pipe, keyframe, scene, warm, lambda *_: None)  # kernels, allocator, offload hooks
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        step_times: list[float] = []
        last = [time.perf_counter()]

        def on_step(done: int, total: int) -> None:
            if cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            step_times.append(now - last[0])
            last[0] = now

        started = time.perf_counter()
        last[0] = started
        frames = svd_frames(pipe, keyframe, scene, params, on_step)
        if cuda:
            torch.cuda.synchronize()
        clip_s = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
        unet_s = sorted(step_times[1:])[len(step_times[1:]) // 2] if len(step_times) > 2 else None
        rows.append({"profile": name, "size": args.size, "clip_s": round(clip_s, 2),
                     "peak_gib": round(peak, 2) if peak else None,
                     "reserved_gib": round(reserved, 2) if reserved else None,
                     "median_step_s": round(unet_s, 3) if unet_s else None,
                     "decode_chunk_size": profile.decode_chunk_size, "offload": profile.offload,
                     "frames": len(frames), "width": args.width, "height": args.height,
                     "num_frames": args.frames, "steps": args.steps, "dtype": "float16" if cuda
                     else "float32", "finite": bool(np.isfinite(np.asarray(frames[0])).all())})
        print(rows[-1], flush=True)
        path = write_results("svd_profiles", rows, {"load_s": round(load_s, 2)}, args.out)
    print_table(rows, ["profile", "clip_s", "peak_gib", "reserved_gib", "median_step_s",
                       "decode_chunk_size"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
