"""`python -m pipeline make` end to end on the CPU: embedded LLM, animatic backend, 5 scenes.

    .venv/bin/python bench/make_cpu.py
Runs the command a user would run (a fresh process each time, so imports and model loading
count), 1024x576 at 24 fps, and writes bench/results/make_cpu.json. Target (issue 4): <= 90 s.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, write_results  # noqa: E402 (sets sys.path)

from pipeline.video_io import probe

PROMPTS = ("制作一段关于森林探险的短视频，包含河流和小动物", "A lighthouse keeper rescues a lost whale",
           "春节的夜晚，灯笼和烟花照亮了小镇")


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, prompt in enumerate(PROMPTS):
            film = Path(tmp) / f"film{k}.mp4"
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pipeline", "make", prompt, "--scenes",
                                   "5", "--backend", "animatic", "--seed", str(k), "--out",
                                   str(film)], cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode:
                raise SystemExit(done.stderr)
            info = probe(film)
            rows.append({"prompt": prompt, "make_s": round(seconds, 2),
                         "film_s": round(info["duration"], 2),
                         "size": f"{info['width']}x{info['height']}", "fps": info["fps"]})
    summary = {"median_make_s": statistics.median(r["make_s"] for r in rows),
               "max_make_s": max(r["make_s"] for r in rows),
               "note": "the embedded model's one-time GGUF conversion (about 20 s) was already "
                       "cached, as it is after a user's first run"}
    path = write_results("make_cpu", rows, summary)
    print_table(rows, ["prompt", "make_s", "film_s", "size", "fps"])
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
