"""Loading the diffusion pipelines (keyframe text-to-image, Stable Video Diffusion) and placing
them in GPU memory according to a memory profile.

Weights are read from a local folder or the Hugging Face cache only (`local_files_only`):
rendering never downloads anything. A missing or gated model raises ModelUnavailable whose
message gives the exact steps to get it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import speed
from models.llm import ModelUnavailable
from models.memory import Profile
from models.registry import DEFAULT_KEYFRAME, SVD_XT, how_to_get
from models.store import resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    device: str             # where the pipeline computes: "cuda" or "cpu"
    dtype_name: str         # "float16", "bfloat16" or "float32"


def default_video_model() -> str:
    return SVD_XT.repo_id


def default_image_model() -> str:
    return DEFAULT_KEYFRAME.repo_id


def placement() -> Placement:
    import torch

    if torch.cuda.is_available():  # bf16: as fast as fp16 here, and the VAE needs no fp32 upcast
        return Placement("cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    return Placement("cpu", "float32")


def is_available(model_id: str) -> bool:
    """True when the weights are on this machine (a folder, a registered folder, the hub cache)."""
    path = Path(resolve(model_id)).expanduser()
    if path.is_dir():
        return (path / "model_index.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "model_index.json")
    except ValueError:  # not a valid repo id either
        return False
    return isinstance(found, str)


_loaded: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def load_video_pipeline(model_id: str) -> Any:
    """A StableVideoDiffusionPipeline, loaded once and kept."""
    from diffusers import StableVideoDiffusionPipeline

    return _load(("video", model_id), StableVideoDiffusionPipeline, model_id)


def load_image_pipeline(model_id: str) -> Any:
    """A text-to-image pipeline for keyframes (AutoPipelineForText2Image), loaded once."""
    from diffusers import AutoPipelineForText2Image

    return _load(("image", model_id), AutoPipelineForText2Image, model_id)


def _load(key: tuple[str, str], cls: Any, model_id: str) -> Any:
    import torch

    with _lock:
        if key in _loaded:
            return _loaded[key]
        where = placement()
        path = Path(resolve(model_id)).expanduser()
        source = str(path) if path.is_dir() else model_id
        kwargs: dict[str, Any] = {"torch_dtype": getattr(torch, where.dtype_name)}
        if not path.is_dir():
            kwargs["local_files_only"] = True
        log.info("loading %s pipeline %s (%s on %s)", key[0], model_id, where.dtype_name, where.device)
        try:
            pipe = cls.from_pretrained(source, **kwargs)
        except (OSError, ValueError, EnvironmentError) as err:
            raise ModelUnavailable(_missing_message(model_id, err)) from err
        pipe.set_progress_bar_config(disable=True)
        if where.device == "cpu":
            pipe.to("cpu")
        _loaded[key] = pipe
        return pipe


def _missing_message(model_id: str, err: BaseException) -> str:
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    if Path(model_id).expanduser().exists():
        return f"cannot load the diffusers pipeline in {model_id} ({detail})"
    return f"model {model_id} is not on this machine; to get it: {how_to_get(model_id)}"


def loaded_pipelines() -> list[str]:
    """What is loaded now, as "kind: model id" (the System tab shows it)."""
    with _lock:
        return [f"{kind}: {model_id}" for kind, model_id in _loaded]


def apply_profile(pipe: Any, profile: Profile) -> list[str]:
    """Place a loaded pipeline on the GPU as the profile says, with the profile's speed levers
    on a video UNet (models/speed.py). Returns the levers in use; a no-op on the CPU."""
    import torch

    if not torch.cuda.is_available():
        return []
    unet = getattr(pipe, "unet", None)
    video = type(unet).__name__ == "UNetSpatioTemporalConditionModel"
    pipe.remove_all_hooks()
    pipe.to("cpu")
    torch.cuda.empty_cache()
    speed.allow_fast_math()
    if video:  # below the offload hooks, so it survives their re-adding after every call
        speed.split_cfg_batch(unet, profile.cfg_split)
    if profile.offload == "none":
        pipe.to("cuda")
    else:
        pipe.enable_model_cpu_offload()
    if not video:
        return [f"{profile.offload} offload"]
    levers = [f"{profile.offload} offload", "bf16" if unet.dtype == torch.bfloat16 else "fp16"]
    speed.fuse_qkv(unet)
    levers.append("fused QKV")
    if profile.cfg_split:
        levers.append("guidance batch split")
    if profile.compile:
        speed.compile_regions(unet, speed.UNET_REGIONS)
        speed.compile_regions(pipe.vae, speed.VAE_REGIONS)
        levers.append("compiled UNet blocks and VAE decoder")
    return levers
