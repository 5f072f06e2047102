"""`python -m pipeline make` end to end on the GPU, with how much of the time the GPU sat idle.

    python3 bench/make_gpu.py --video-model DIR --image-model DIR --profile fast --out DIR

Runs the command a user would run in a fresh process (plan, keyframes, clips, assembly) for a
6-scene, 25-second film at 1024x576, 24 fps, while `nvidia-smi` samples the GPU's utilisation
every 100 ms; idle_pct is the share of samples, over the whole command, in which no kernel ran.
Writes make_gpu.json.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, write_results  # noqa: E402 (sets sys.path)

from pipeline.video_io import probe

PROMPT = "A forest adventure with a river and small animals"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video-model", required=True)
    parser.add_argument("--image-model", required=True)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()

    film = Path(tempfile.mkdtemp()) / "film.mp4"
    sampler = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                "-lms", "100"], stdout=subprocess.PIPE, text=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipeline", "make", PROMPT, "--scenes",
                           str(args.scenes), "--seconds", str(args.seconds), "--backend", "svd",
                           "--video-model", args.video_model, "--image-model", args.image_model,
                           "--profile", args.profile, "--out", str(film)],
                          cwd=ROOT, capture_output=True, text=True)
    make_s = time.perf_counter() - started
    sampler.terminate()
    samples = [int(v) for v in sampler.communicate()[0].split() if v.strip().isdigit()]
    print(done.stdout[-3000:])
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    info = probe(film)
    idle = sum(1 for v in samples if v == 0) / max(1, len(samples))
    rows = [{"profile": args.profile, "scenes": args.scenes, "make_s": round(make_s, 1),
             "film_s": round(info["duration"], 2), "size": f"{info['width']}x{info['height']}",
             "idle_pct": round(100 * idle, 1), "samples": len(samples)}]
    path = write_results("make_gpu", rows, {"prompt": PROMPT, "log_tail": done.stdout[-1500:]},
                         args.out)
    print_table(rows, ["profile", "scenes", "make_s", "film_s", "size", "idle_pct"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
