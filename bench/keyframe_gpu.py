"""Where a keyframe's time goes, and what compiling the keyframe model gives.

    python3 bench/keyframe_gpu.py --model-dir /tmp/t2i --out DIR   # GPU: SDXL-Turbo-sized, random

The keyframe pipeline (an SDXL-Turbo-sized text-to-image model, random weights from
models/random_init.build_sdxl) is loaded and placed by the product (models/diffusion.py, fast
profile) and a keyframe is made by the product's `keyframes.generate` at 1024x576 with its
default steps and guidance (pipeline/render.py). Rows:
- product: the whole keyframe as a scene gets it (a PIL picture; since 2026-11-27 the fast
  profile compiles the UNet's blocks, and the untimed first call compiles them);
- to_latents / text_encode / vae_decode / to_picture: its parts, each timed alone;
- --try LEVER,...: the whole keyframe again with candidate levers put on (compiled-vae: the
  VAE decoder compiled; compiled-unet: the UNet's blocks compiled, what the product does now),
  with their first call (compiling) and the pixel difference from the product's keyframe in
  0-255 levels. keyframe_gpu_before.json is the run before the product compiled the UNet.
Writes keyframe_gpu.json (to --out, or bench/results).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import print_table, timed, write_results  # noqa: E402 (sets sys.path)

from models import speed  # noqa: E402
from models.diffusion import apply_profile, load_image_pipeline  # noqa: E402
from models.memory import PROFILES  # noqa: E402
from pipeline.keyframes import generate  # noqa: E402
from pipeline.render import RenderSettings  # noqa: E402

PROMPT = "a forest river with small animals at dawn, watercolor, soft light"


def levels(a: Any, b: Any) -> float:
    import numpy as np

    return round(float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean()), 3)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--try", dest="candidates", default="compiled-vae")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    settings = RenderSettings()
    steps, guidance = settings.keyframe_steps, settings.keyframe_guidance
    pipe = load_image_pipeline(str(args.model_dir))
    levers = apply_profile(pipe, PROFILES["fast"])

    def keyframe() -> Any:
        return generate(pipe, PROMPT, 7, args.width, args.height, steps, guidance,
                        lambda _s, _n: None)

    rows: list[dict[str, Any]] = []
    seconds, reference = timed(keyframe, args.repeats)
    rows.append({"what": "product", "seconds": round(seconds, 4), "levers": levers})
    call = {"prompt": PROMPT, "width": args.width, "height": args.height,
            "num_inference_steps": steps, "guidance_scale": guidance}
    seconds, latents = timed(lambda: pipe(**call, generator=torch.Generator("cpu").manual_seed(7),
                                          output_type="latent").images, args.repeats)
    rows.append({"what": "to_latents", "seconds": round(seconds, 4)})
    seconds, _ = timed(lambda: pipe.encode_prompt(PROMPT, device=pipe._execution_device,
                                                  num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False),
                       args.repeats)
    rows.append({"what": "text_encode", "seconds": round(seconds, 4)})
    vae = pipe.vae

    def decode() -> Any:
        with torch.inference_mode():
            return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor,
                              return_dict=False)[0]
    seconds, pixels = timed(decode, args.repeats)
    rows.append({"what": "vae_decode", "seconds": round(seconds, 4), "dtype": str(vae.dtype),
                 "force_upcast": bool(vae.config.force_upcast)})
    seconds, _ = timed(lambda: pipe.image_processor.postprocess(pixels, output_type="pil"),
                       args.repeats)
    rows.append({"what": "to_picture", "seconds": round(seconds, 4)})
    for row in rows:
        print(row, flush=True)

    applied: list[str] = []
    for name in filter(None, args.candidates.split(",")):
        if name == "compiled-vae":
            speed.compile_regions(vae, ("Decoder",))
        elif name == "compiled-unet":
            speed.compile_regions(pipe.unet, speed.KEYFRAME_UNET_REGIONS)
        else:
            raise SystemExit(f"--try: no candidate named {name!r}")
        applied.append(name)
        began = time.perf_counter()
        timed(keyframe, 0)
        first_s = time.perf_counter() - began
        seconds, picture = timed(keyframe, args.repeats)
        rows.append({"what": "product+" + "+".join(applied), "seconds": round(seconds, 4),
                     "first_call_s": round(first_s, 1), "diff_levels": levels(picture, reference)})
        print(rows[-1], flush=True)
    print_table(rows, ["what", "seconds", "first_call_s", "diff_levels"])
    print("wrote", write_results("keyframe_gpu", rows, {"steps": steps, "guidance": guidance,
                                                         "width": args.width,
                                                         "height": args.height}, args.out))


if __name__ == "__main__":
    main()
