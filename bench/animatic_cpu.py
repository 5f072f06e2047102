"""Animatic backend on the CPU: seconds to render one 5-second 1024x576 scene at 24 fps.

    .venv/bin/python bench/animatic_cpu.py
Times the product's renderer end to end (keyframe card, camera move, H.264 encode) for each
camera, three runs each, and writes bench/results/animatic_cpu.json. Target (issue 3): <= 5 s.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import print_table, write_results  # noqa: E402 (sets sys.path)

from pipeline.events import SceneDone
from pipeline.render import RenderSettings, render_storyboard
from pipeline.storyboard import CAMERAS, Storyboard
from pipeline.video_io import probe


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for camera in CAMERAS:
            board = Storyboard.from_dict({"title": "Bench", "style": "", "scenes": [{
                "description": "森林探险的故事从这里开始 — a forest adventure begins.",
                "visual_prompt": "forest", "camera": camera, "motion": "medium", "duration": 5}]})
            times = []
            for run in range(3):
                out = Path(tmp) / f"{camera}-{run}"
                started = time.perf_counter()
                events = list(render_storyboard(board, out, RenderSettings(
                    backend="animatic", width=1024, height=576, fps=24)))
                times.append(time.perf_counter() - started)
                assert any(isinstance(e, SceneDone) for e in events), events
            info = probe(out / "scene_01.mp4")
            rows.append({"camera": camera, "median_s": round(statistics.median(times), 2),
                         "max_s": round(max(times), 2), "frames": info["frames"],
                         "size": f"{info['width']}x{info['height']}", "pix_fmt": info["pix_fmt"]})
    summary = {"scene": "5 s, 1024x576, 24 fps", "median_s": statistics.median(
        r["median_s"] for r in rows), "worst_s": max(r["max_s"] for r in rows)}
    path = write_results("animatic_cpu", rows, summary)
    print_table(rows, ["camera", "median_s", "max_s", "frames", "size", "pix_fmt"])
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
