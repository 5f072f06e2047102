"""`python -m pipeline make` end to end on the GPU, with how much of the time the GPU sat idle.

    python3 bench/make_gpu.py --video-model DIR --image-model DIR --profile fast --out DIR

Makes a 6-scene, 25-second film at 1024x576, 24 fps (plan, keyframes, clips, assembly) through
the CLI's own entry point, `--films` times in one process, while `nvidia-smi` samples the GPU's
utilisation every 100 ms:
- the first film is what a fresh start costs: its make_s counts from the process start, so it
  includes imports, loading the models and warming up the compiled code (from the on-disk
  cache when it is warm);
- later films are what the studio costs once its models are loaded, as for a person making
  their second film.
--quality turbo makes the film with the turbo model (the same random UNet, loaded as a UNet-only
model with the consistency sampler, 4 steps, no guidance). assembly_after_last_scene_s is how long
the film took after its last scene's clip: the segments are encoded while the scenes render.
idle_pct is the share of samples, over one film, in which no kernel ran; svd_runs is how many SVD
runs the film's scenes took, and video_s_each each scene's video time; timeline says when
(seconds from the film's start) the storyboard, each keyframe, each clip and the film were
written, plan_s being the storyboard's (for the first film: imports and the planner's load too);
assembly_timings is the film's own record of its assembly; planner is the storyboard's (the
rule-based one unless a language model is on the machine: plan_s 0.0 for later films). --log
FILE keeps the product's log, each line stamped with ms since the start (when each scene was
sent, made, kept and assembled). Writes make_gpu_QUALITY.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path

from common import print_table, turbo_stand_in, write_results  # noqa: E402 (sets sys.path)

STARTED, STARTED_WALL = time.perf_counter(), time.time()

from pipeline import cli  # noqa: E402
from pipeline.video_io import probe  # noqa: E402

PROMPT = "A forest adventure with a river and small animals"


def written(path: Path, since: float) -> float:
    """When `path` was last written, in seconds after the wall-clock time `since`."""
    return round(path.stat().st_mtime - since, 2)


def architecture(folder: Path) -> dict:
    """What a saved pipeline's denoiser is, from its config: keyframe times say little without
    it (an SDXL-Turbo-sized UNet takes about 0.2 s a keyframe on an H100, a tiny one far less)."""
    config = folder / "unet" / "config.json"
    if not config.is_file():
        return {"folder": str(folder)}
    unet = json.loads(config.read_text())
    return {"folder": str(folder), "unet": unet.get("_class_name"),
            "block_out_channels": unet.get("block_out_channels"),
            "cross_attention_dim": unet.get("cross_attention_dim")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video-model", required=True)
    parser.add_argument("--image-model", required=True)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--quality", choices=("full", "turbo"), default="full",
                        help="turbo: --video-model's UNet saved as a UNet-only model (as "
                             "AnimateLCM-SVD-xt ships) over the pipeline registered as SVD-XT")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument("--films", type=int, default=2, help="films made one after another")
    parser.add_argument("--log", type=Path, default=None,
                        help="write the product's log here, each line stamped with the ms since start")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()

    video_model = args.video_model
    if args.quality == "turbo":
        video_model = str(turbo_stand_in(Path(args.video_model)))
    rows = []
    began, began_wall = STARTED, STARTED_WALL
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO, force=True,
                            format="%(relativeCreated)8.0f ms %(threadName)s %(name)s: %(message)s")
    for n in range(1, args.films + 1):
        film = Path(tempfile.mkdtemp()) / "film.mp4"
        sampler = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu",
                                    "--format=csv,noheader,nounits", "-lms", "100"],
                                   stdout=subprocess.PIPE, text=True)
        code = cli.main(["make", PROMPT, "--scenes", str(args.scenes), "--seconds",
                         str(args.seconds), "--backend", "svd", "--video-model", video_model,
                         "--image-model", args.image_model, "--profile", args.profile,
                         "--out", str(film)])
        make_s = time.perf_counter() - began
        sampler.terminate()
        samples = [int(v) for v in sampler.communicate()[0].split() if v.strip().isdigit()]
        if code:
            raise SystemExit(f"film {n}: the make command failed with exit code {code}")
        info = probe(film)
        assembly = json.loads(film.with_suffix(".json").read_text())["assembly_timings"]
        scenes_dir = film.with_name("film_scenes")
        storyboard = scenes_dir / "storyboard.json"
        timeline = {"storyboard": written(storyboard, began_wall),
                    "keyframes": [written(p, began_wall)
                                  for p in sorted(scenes_dir.glob("scene_??_keyframe.png"))],
                    "clips": [written(p, began_wall) for p in sorted(scenes_dir.glob("scene_??.mp4"))],
                    "film": written(film, began_wall)}
        scenes = [json.loads(p.read_text()) for p in sorted(scenes_dir.glob("scene_??.json"))]
        stage_s = {stage: round(sum(s["timings"][f"{stage}_s"] for s in scenes), 1)
                   for stage in ("keyframe", "video", "encode")}
        rows.append({"film": n, "start": "fresh process" if n == 1 else "models loaded",
                     "profile": args.profile, "quality": args.quality,
                     "planner": json.loads(storyboard.read_text()).get("planner"),
                     "assembly_after_last_scene_s": assembly["finish_s"],
                     "assembly_timings": assembly, "plan_s": round(timeline["storyboard"], 1),
                     "timeline": timeline,
                     "scenes": args.scenes,
                     "make_s": round(make_s, 1),
                     "film_s": round(info["duration"], 2),
                     "size": f"{info['width']}x{info['height']}",
                     "idle_pct": round(100 * sum(1 for v in samples if v == 0)
                                       / max(1, len(samples)), 1),
                     "samples": len(samples), **{f"{k}_s": v for k, v in stage_s.items()},
                     "svd_runs": sum(s["svd"]["runs"] for s in scenes),
                     "durations": [s["duration"] for s in scenes],
                     "video_s_each": [round(s["timings"]["video_s"], 1) for s in scenes]})
        print(rows[-1], flush=True)
        began, began_wall = time.perf_counter(), time.time()
    summary = {"prompt": PROMPT, "image_model": architecture(Path(args.image_model))}
    path = write_results(f"make_gpu_{args.quality}", rows, summary, args.out)
    print_table(rows, ["film", "start", "profile", "quality", "scenes", "make_s", "plan_s", "film_s",
                       "assembly_after_last_scene_s", "size",
                       "idle_pct", "svd_runs", "keyframe_s", "video_s", "encode_s"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
