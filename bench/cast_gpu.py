"""Keyframe time and GPU memory with and without the cast's image adapter, on one GPU.

    python3 bench/cast_gpu.py                      # full-size SDXL-Turbo + IP-Adapter (random)
    python3 bench/cast_gpu.py --size tiny          # the tiny test models: a CPU smoke run

Builds SDXL-Turbo's architecture and IP-Adapter for SDXL (its ViT-bigG image encoder) with
random weights, saves them as their repositories lay them out, and renders keyframes through
the product's own SceneRenderer (animatic backend: the keyframe alone is timed) for each memory
profile: a scene without pictures, then the same scene steered by a cast member's picture and
the film's look. Per row: keyframe seconds (median of the warm runs), peak GPU memory during the
keyframe, GPU memory held after it (the encoder must have left), and the first use's cost
(adapter loaded, two pictures embedded). Writes bench/results/cast_gpu.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("sdxl", "tiny"), default="sdxl")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--steps", type=int, default=2, help="keyframe steps (sdxl-turbo: 1-4)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profiles", default="fast,balanced")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cast-bench")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()

    import numpy as np
    import torch

    os.environ["STORYREEL_CACHE"] = str(args.work / "store")
    from models.random_init import build_image_adapter, build_sdxl, build_text_to_image
    from models.store import register

    gpu = torch.cuda.is_available()
    image_model, adapter = args.work / f"t2i-{args.size}", args.work / f"adapter-{args.size}"
    began = time.perf_counter()
    if not (image_model / "model_index.json").is_file():
        if args.size == "sdxl":
            build_sdxl(image_model, device="cuda" if gpu else "cpu")
        else:
            build_text_to_image(image_model)
    if not (adapter / "sdxl_models").is_dir():
        build_image_adapter(adapter, image_model / "unet", size=args.size,
                            dtype="float16" if args.size == "sdxl" else "float32",
                            device="cuda" if gpu else "cpu")
    register("ip-adapter-sdxl", adapter)
    print(f"models built in {time.perf_counter() - began:.0f} s", flush=True)

    from models.adapter import detach
    from pipeline.render import RenderSettings
    from pipeline.scene_render import Reference, SceneRenderer, SceneTask
    from pipeline.storyboard import Scene

    rng = np.random.default_rng(0)
    face = Reference("Mimi", rng.integers(0, 255, (512, 512, 3), dtype=np.uint8), 0.6)
    look = Reference("look", rng.integers(0, 255, (512, 512, 3), dtype=np.uint8), 0.5)
    scene = Scene(description="a cat", visual_prompt="a small orange cat on a windowsill",
                  seed=1, duration=1.0)
    rows = []
    for profile in args.profiles.split(","):
        settings = RenderSettings(backend="animatic", image_model=str(image_model),
                                  width=args.width, height=args.height, fps=4, profile=profile,
                                  keyframe_steps=args.steps)
        renderer = SceneRenderer(settings, lambda event: None, lambda: False, args.work)
        renderer.prepare(needs_images=True)
        for name, pictures in (("text only", {}), ("cast + look", {"characters": [face],
                                                                     "look": look})):
            task = SceneTask(1, scene, "bench", 1.0, prompt=scene.visual_prompt, **pictures)
            first = _keyframe(renderer, task, gpu)  # attaches and embeds on first use
            runs = [_keyframe(renderer, task, gpu) for _ in range(args.reps)]
            rows.append({
                "profile": profile, "keyframe": name,
                "keyframe_s": round(statistics.median(r[0] for r in runs), 3),
                "first_s": round(first[0], 3),
                "peak_gib": round(max(r[1] for r in runs), 2),
                "held_after_gib": round(runs[-1][2], 2),
                "encoder_on_gpu": _on_gpu(getattr(renderer.image_pipe, "image_encoder", None)),
            })
            print_table(rows[-1:], list(rows[-1]))
        detach(renderer.image_pipe)  # the next profile's text-only row runs without it
    columns = ["profile", "keyframe", "keyframe_s", "first_s", "peak_gib", "held_after_gib",
               "encoder_on_gpu"]
    print()
    print_table(rows, columns)
    summary = {f"{r['profile']}/{r['keyframe']}": {k: r[k] for k in columns[2:]} for r in rows}
    summary["size"] = f"{args.size} {args.width}x{args.height}, {args.steps} keyframe steps"
    print("wrote", write_results("cast_gpu" if args.size == "sdxl" else "cast_cpu", rows,
                                 summary, args.out))


def _keyframe(renderer, task, gpu: bool) -> tuple[float, float, float]:  # noqa: ANN001
    """(seconds, peak GiB during the keyframe, GiB held after it) of one keyframe."""
    import torch

    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    renderer._keyframe(task)
    if gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    if not gpu:
        return seconds, 0.0, 0.0
    return (seconds, torch.cuda.max_memory_allocated() / 2**30,
            torch.cuda.memory_allocated() / 2**30)


def _on_gpu(module) -> bool | None:  # noqa: ANN001
    if module is None:
        return None
    return next(module.parameters()).device.type == "cuda"


if __name__ == "__main__":
    main()
