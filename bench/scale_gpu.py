"""Films on one GPU in-process against the same films on N GPUs through Ray workers.

    python3 bench/scale_gpu.py --mode local --video-model DIR --image-model DIR
    python3 bench/scale_gpu.py --mode ray --gpus 2 --video-model DIR --image-model DIR

A film here is a fixed English storyboard (no planner: it is the same on either path) of
`--scenes` scenes at 1024x576, 24 fps, full quality (25 steps), each scene about 4.2 s: from
the first scene sent to the film assembled (the film's segments are encoded while the scenes
render, as in the product). Models are loaded and warm before any timed film: the in-process
path renders one scene first (compiling the video model, or loading the compiled code from the
cache); the Ray path starts Ray (ray_start_s), its workers (workers_s), and warms them with one
scene (warmup_s), each worker with a compile cache folder of its own seeded from this machine's.
`nvidia-smi` samples every card's utilisation every 100 ms during each film; idle_pct is the
share of samples in which no kernel ran on that card.

`--mode local` writes scale_gpu_local.json; `--mode ray` reads it (same --out) and writes
scale_gpu.json with both paths and the speed-up of each film on N GPUs over one.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import print_table, write_results  # noqa: E402 (sets sys.path)

from pipeline.assemble import AssemblySettings, FilmAssembler  # noqa: E402
from pipeline.events import RenderFinished, SceneDone, SceneStarted  # noqa: E402
from pipeline.render import RenderSettings, render_storyboard  # noqa: E402
from pipeline.storyboard import Storyboard  # noqa: E402

SCENE_SECONDS = 25 / 6


def storyboard(count: int) -> Storyboard:
    places = ["a misty forest", "a river bend", "a mossy log", "a meadow at noon",
              "a fox den", "a waterfall", "a hollow tree", "a pebble beach", "a reed bank",
              "a hilltop", "a rainy glade", "a night sky"]
    scenes = [{"description": f"Scene {k + 1}: the small animals reach {places[k % 12]}.",
               "visual_prompt": f"{places[k % 12]}, small animals, storybook illustration",
               "camera": ["wide shot", "pan", "zoom in", "tracking"][k % 4],
               "motion": "medium", "duration": round(SCENE_SECONDS, 2),
               "transition": "crossfade" if k % 3 == 2 else "cut", "keyframe": None,
               "seed": 100 + k} for k in range(count)]
    return Storyboard.from_dict({"title": "The forest walk", "style": "storybook",
                                 "scenes": scenes})


class Sampler:
    """nvidia-smi's utilisation of every card, every 100 ms, while a film is made."""

    def __enter__(self) -> Sampler:
        self.samples: dict[int, list[int]] = {}
        self.process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits",
             "-lms", "100"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.process.terminate()
        for line in self.process.communicate()[0].splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                self.samples.setdefault(int(parts[0]), []).append(int(parts[1]))

    def idle_pct(self) -> dict[str, float]:
        return {f"gpu{k}": round(100 * sum(v == 0 for v in vals) / max(1, len(vals)), 1)
                for k, vals in sorted(self.samples.items())}


def make_film(board: Storyboard, settings: RenderSettings, workers: Any) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="scale-"))
    assembler = FilmAssembler(board, folder / "scenes", folder / "film.mp4",
                              AssemblySettings(voice="none"))
    where: dict[int, str] = {}
    with Sampler() as sampler:
        began = time.perf_counter()
        for event in render_storyboard(board, folder / "scenes", settings, workers=workers):
            if isinstance(event, SceneStarted):
                where[event.scene] = event.worker
            elif isinstance(event, SceneDone):
                assembler.scene_ready(event.scene)
            elif isinstance(event, RenderFinished) and (event.failed or event.cancelled):
                raise SystemExit(f"the film failed: {event}")
        rendered_s = time.perf_counter() - began
        film = assembler.finish()
        film_s = time.perf_counter() - began
    per_worker: dict[str, int] = {}
    for worker in where.values():
        per_worker[worker] = per_worker.get(worker, 0) + 1
    return {"scenes": len(board.scenes), "film_s": round(film_s, 1),
            "scenes_rendered_s": round(rendered_s, 1),
            "assembly_after_last_scene_s": round(film.seconds, 2),
            "film_length_s": round(film.duration, 2), "idle_pct": sampler.idle_pct(),
            "scenes_per_worker": per_worker}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("local", "ray"), required=True)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--video-model", required=True)
    parser.add_argument("--image-model", required=True)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--scenes", default="6,12", help="scene counts, one film each")
    parser.add_argument("--size", default=None, help="WxH instead of 1024x576 (a CPU smoke run)")
    parser.add_argument("--steps", type=int, default=None, help="instead of 25 (a CPU smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()

    settings = RenderSettings(backend="svd", quality="full", video_model=args.video_model,
                              image_model=args.image_model, profile=args.profile,
                              steps=args.steps)
    if args.size:
        width, height = (int(v) for v in args.size.lower().split("x"))
        settings = dataclasses.replace(settings, width=width, height=height)
    counts = [int(c) for c in args.scenes.split(",")]
    summary: dict[str, Any] = {"profile": args.profile, "quality": "full",
                               "scene_seconds": round(SCENE_SECONDS, 2)}
    workers = None
    began = time.perf_counter()
    if args.mode == "ray":
        from pipeline.ray_workers import RayWorkers

        workers = RayWorkers.start(gpus=args.gpus)
        summary.update(ray_start_s=round(workers.times.ray_s, 2),
                       workers_s=round(workers.times.workers_s, 2),
                       workers=[w.name for w in workers.workers])
    warm = time.perf_counter()
    list(render_storyboard(storyboard(args.gpus if workers else 1), Path(tempfile.mkdtemp()),
                           settings, workers=workers))
    summary["warmup_s"] = round(time.perf_counter() - warm, 1)
    summary["start_to_warm_s"] = round(time.perf_counter() - began, 1)
    gpus = args.gpus if workers else 1
    rows = []
    for count in counts:
        row = {"gpus": gpus, "path": "ray" if workers else "in-process",
               **make_film(storyboard(count), settings, workers)}
        rows.append(row)
        print(row, flush=True)
    if workers is not None:
        workers.shutdown()
    out = args.out
    if args.mode == "local":  # films of other scene counts from an earlier run are kept
        earlier = (out or Path(__file__).parent / "results") / "scale_gpu_local.json"
        if earlier.is_file():
            kept = json.loads(earlier.read_text())
            rows = [r for r in kept["rows"] if r["scenes"] not in counts] + rows
            summary = {**kept.get("summary", {}), **summary}
        path = write_results("scale_gpu_local", rows, summary, out)
    else:
        local_file = (out or Path(__file__).parent / "results") / "scale_gpu_local.json"
        local = json.loads(local_file.read_text()) if local_file.is_file() else {"rows": []}
        one = {r["scenes"]: r["film_s"] for r in local["rows"]}
        for row in rows:
            if row["scenes"] in one:
                row["one_gpu_film_s"] = one[row["scenes"]]
                row["ratio_to_one_gpu"] = round(row["film_s"] / one[row["scenes"]], 3)
                row["speedup"] = round(one[row["scenes"]] / row["film_s"], 2)
        rows = local["rows"] + rows
        summary["in_process"] = local.get("summary", {})
        path = write_results("scale_gpu", rows, summary, out)
    print_table(rows, ["gpus", "path", "scenes", "film_s", "scenes_rendered_s",
                       "assembly_after_last_scene_s", "ratio_to_one_gpu", "speedup", "idle_pct",
                       "scenes_per_worker"])
    print(json.dumps(summary))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
