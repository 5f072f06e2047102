"""Loading the diffusion pipelines (keyframe text-to-image, Stable Video Diffusion) and placing
them in GPU memory according to a memory profile.

Weights are read from a local folder or the Hugging Face cache only (`local_files_only`):
rendering never downloads anything. A missing or gated model raises ModelUnavailable whose
message gives the exact steps to get it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import speed
from models.llm import ModelUnavailable
from models.memory import Profile
from models.registry import (DEFAULT_KEYFRAME, SVD_XT, TURBO_VIDEO, ModelSpec, base_of, find_spec,
                             how_to_get)
from models.store import StoreError, check_base_parts, registered_folder, resolve, unet_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    device: str             # where the pipeline computes: "cuda" or "cpu"
    dtype_name: str         # "float16", "bfloat16" or "float32"


def default_video_model(quality: str = "full") -> str:
    """The video model of a quality: "turbo" (step-distilled, 4 steps) or "full" (SVD-XT)."""
    return TURBO_VIDEO.repo_id if quality == "turbo" else SVD_XT.repo_id


def is_turbo(model_id: str) -> bool:
    """Whether a video model is step-distilled (sampled in a few steps without guidance): a known
    UNet-only model, or a folder holding a UNet without a pipeline around it."""
    spec = find_spec(model_id)
    if spec is not None:
        return spec.base is not None
    path = Path(model_id).expanduser()
    return path.is_dir() and not (path / "model_index.json").is_file() \
        and unet_weights(path) is not None


def default_image_model() -> str:
    return DEFAULT_KEYFRAME.repo_id


def placement() -> Placement:
    import torch

    if torch.cuda.is_available():  # bf16: as fast as fp16 here, and the VAE needs no fp32 upcast
        return Placement("cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    return Placement("cpu", "float32")


def is_available(model_id: str) -> bool:
    """True when the weights are on this machine (a folder, a registered folder, the hub cache)."""
    if is_turbo(model_id):
        return distilled_unet(model_id) is not None and _base_is_whole(model_id)
    path = Path(resolve(model_id)).expanduser()
    if path.is_dir():
        return (path / "model_index.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "model_index.json")
    except ValueError:  # not a valid repo id either
        return False
    return isinstance(found, str)


def distilled_unet(model_id: str) -> Path | None:
    """Where a UNet-only model's weights are: a folder given or registered for it, or its file in
    the Hugging Face cache; None when they are not on this machine."""
    spec = find_spec(model_id)
    folder = registered_folder(model_id) if spec else Path(model_id).expanduser()
    if folder is not None and folder.is_dir():
        return unet_weights(folder, spec.unet_file if spec else None)
    if spec is None or spec.unet_file is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec.repo_id, spec.unet_file)
    return Path(found) if isinstance(found, str) else None


def base_model(model_id: str) -> ModelSpec:
    """The pipeline a UNet-only model runs with (SVD-XT for AnimateLCM-SVD-xt and for folders)."""
    spec = find_spec(model_id)
    return (base_of(spec) if spec else None) or SVD_XT


def base_folder(model_id: str) -> Path | None:
    """The base pipeline's folder on this machine (registered, or in the hub cache), or None."""
    base = base_model(model_id)
    folder = registered_folder(base.repo_id)
    if folder is not None:
        return folder
    from huggingface_hub import try_to_load_from_cache

    index = try_to_load_from_cache(base.repo_id, "model_index.json")
    return Path(index).parent if isinstance(index, str) else None


def _base_is_whole(model_id: str) -> bool:
    folder = base_folder(model_id)
    if folder is None:
        return False
    try:
        check_base_parts(folder)
    except StoreError:
        return False
    return True


_loaded: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def load_video_pipeline(model_id: str) -> Any:
    """A StableVideoDiffusionPipeline, loaded once and kept. A turbo model comes with its
    consistency sampler (models/consistency.py) in place of the Euler scheduler."""
    from diffusers import StableVideoDiffusionPipeline

    if is_turbo(model_id):
        return _load(("video", model_id), lambda dtype: _distilled_pipeline(model_id, dtype))
    return _load(("video", model_id), _from_pretrained(StableVideoDiffusionPipeline, model_id))


def load_image_pipeline(model_id: str) -> Any:
    """A text-to-image pipeline for keyframes (AutoPipelineForText2Image), loaded once."""
    from diffusers import AutoPipelineForText2Image

    return _load(("image", model_id), _from_pretrained(AutoPipelineForText2Image, model_id))


def _from_pretrained(cls: Any, model_id: str) -> Callable[[Any], Any]:
    """Loads `cls` from the model's folder, or from the hub cache only (never downloading)."""
    def build(dtype: Any) -> Any:
        path = Path(resolve(model_id)).expanduser()
        if path.is_dir():
            return cls.from_pretrained(str(path), dtype=dtype)
        return cls.from_pretrained(model_id, dtype=dtype, local_files_only=True)
    return build


def _distilled_pipeline(model_id: str, dtype: Any) -> Any:
    """A UNet-only model's pipeline: its UNet with the base pipeline's other parts."""
    from diffusers import StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel

    from models.consistency import ConsistencySampler

    weights = distilled_unet(model_id)
    base = base_folder(model_id)
    if weights is None:
        raise OSError(f"the UNet weights of {model_id} are not on this machine")
    if base is None:
        raise OSError(f"{base_model(model_id).name} (its image encoder and VAE) is not on "
                      f"this machine")
    if weights.is_dir():
        unet = UNetSpatioTemporalConditionModel.from_pretrained(weights, dtype=dtype)
    else:
        unet = _unet_from_state_dict(base / "unet", weights, dtype)
    return StableVideoDiffusionPipeline.from_pretrained(
        base, unet=unet, scheduler=ConsistencySampler(), dtype=dtype)


def _unet_from_state_dict(config_folder: Path, weights: Path, dtype: Any) -> Any:
    """The base's UNet architecture with a fine-tune's weights (a single .safetensors state
    dict), built without random initialisation and checked key for key."""
    from accelerate import init_empty_weights
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import load_file

    config = UNetSpatioTemporalConditionModel.load_config(config_folder)
    with init_empty_weights():
        unet = UNetSpatioTemporalConditionModel.from_config(config)
    state = load_file(weights)
    expected = set(unet.state_dict())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"{weights.name} does not fit the UNet of {config_folder.parent.name}: "
                         f"{len(missing)} weights missing (first: {missing[:1]}), {len(extra)} "
                         f"unexpected (first: {extra[:1]})")
    unet.load_state_dict(state, assign=True)
    return unet.to(dtype=dtype) if dtype is not None else unet


def _load(key: tuple[str, str], build: Callable[[Any], Any]) -> Any:
    """The pipeline `build(dtype)` makes, built once per (kind, model id) and kept."""
    import torch

    kind, model_id = key
    with _lock:
        if key in _loaded:
            return _loaded[key]
        where = placement()
        log.info("loading %s pipeline %s (%s on %s)", kind, model_id, where.dtype_name, where.device)
        try:
            pipe = build(getattr(torch, where.dtype_name))
        except (OSError, ValueError, EnvironmentError) as err:
            raise ModelUnavailable(_missing_message(model_id, err)) from err
        pipe.set_progress_bar_config(disable=True)
        if where.device == "cpu":
            pipe.to("cpu")
        _loaded[key] = pipe
        return pipe


def _missing_message(model_id: str, err: BaseException) -> str:
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    if Path(model_id).expanduser().exists() or is_available(model_id):
        return f"cannot load the diffusers pipeline in {model_id} ({detail})"
    return f"model {model_id} is not on this machine; to get it: {how_to_get(model_id)}"


def loaded_pipelines() -> list[str]:
    """What is loaded now, as "kind: model id" (the System tab shows it)."""
    with _lock:
        return [f"{kind}: {model_id}" for kind, model_id in _loaded]


def apply_profile(pipe: Any, profile: Profile) -> list[str]:
    """Place a loaded pipeline on the GPU as the profile says, with the profile's speed levers
    on a video UNet (models/speed.py). Returns the levers in use; a no-op on the CPU, and on a
    pipeline already placed with this profile (the next film starts without moving 5 GB)."""
    import torch

    if not torch.cuda.is_available():
        return []
    placed = _placements.get(id(pipe))
    if placed is not None and placed[0] is pipe and placed[1] == profile:
        return placed[2]
    levers = _place(pipe, profile)
    _placements[id(pipe)] = (pipe, profile, levers)
    return levers


_placements: dict[int, tuple[Any, Profile, list[str]]] = {}  # id -> (pipeline, profile, levers)
COMPILED_KEYFRAME_MODEL = "compiled UNet blocks"  # the lever naming a compiled keyframe model


def place_again(pipe: Any, profile: Profile) -> list[str]:
    """Place a pipeline whose parts changed (an adapter attached) as the profile says."""
    _placements.pop(id(pipe), None)
    return apply_profile(pipe, profile)


def _place(pipe: Any, profile: Profile) -> list[str]:
    import torch

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
        from models.adapter import encoder_off_gpu

        encoder_off_gpu(pipe)  # an image adapter's encoder visits the GPU only when it is used
        levers = [f"{profile.offload} offload"]
        if profile.compile and unet is not None:
            speed.attention_calls_direct(unet)
            speed.compile_regions(unet, speed.KEYFRAME_UNET_REGIONS)
            levers.append(COMPILED_KEYFRAME_MODEL)
        return levers
    levers = [f"{profile.offload} offload", "bf16" if unet.dtype == torch.bfloat16 else "fp16"]
    return levers + video_levers(pipe, profile)


def video_levers(pipe: Any, profile: Profile) -> list[str]:
    """Put the profile's speed levers (models/speed.py, models/noise.py) on an SVD pipeline
    wherever it is (the GPU, or a CPU for bench/compile_trace_cpu.py); returns their names."""
    from models import precompiled
    from models.noise import draw_noise_ahead

    unet, levers = pipe.unet, []
    speed.fuse_qkv(unet)
    levers.append("fused QKV")
    if speed.single_key_cross_attention(unet):
        levers.append("one-key cross-attention as its value")
    if profile.cfg_split:
        levers.append("guidance batch split")
    if speed.fold_upsampling(pipe.vae.decoder):
        levers.append("folded VAE upsampling")
    if speed.frame_convs_channels_last(pipe.vae.decoder):
        levers.append("channels-last frame convolutions")
    speed.even_decode_chunks(pipe)
    levers.append(f"decode in even chunks of at most {profile.decode_chunk_size} frames")
    speed.encode_keyframe_on_device(pipe)
    levers.append("keyframe prepared on the GPU")
    if speed.replay_image_encoder(pipe, enabled=profile.offload == "none"):
        levers.append("image encoder replayed as a CUDA graph")
    draw_noise_ahead(pipe)
    levers.append("noise drawn ahead on CPU threads")
    if profile.compile:
        decoder = pipe.vae.decoder
        if speed.group_norms_by_channel_stats(decoder):
            levers.append("VAE group norms from channel statistics")
        if speed.silu_as_sigmoid_product(decoder):
            levers.append("VAE SiLU as x * sigmoid(x)")
        speed.attention_calls_direct(unet)
        speed.attention_calls_direct(pipe.vae)
        levers.append("attention calls without signature checks")
        if speed.frame_attention_on_efficient_kernel(unet):
            levers.append("frame attention on the memory-efficient kernel")
        if speed.wide_head_attention_as_products(decoder):
            levers.append("VAE attention as matrix products")
        speed.compile_regions(unet, speed.UNET_REGIONS)
        speed.compile_regions(pipe.vae, speed.VAE_REGIONS, tuning=speed.DECODER_TUNING)
        speed.compile_vae_encoder(pipe.vae)
        levers.append("compiled UNet blocks and VAE decoder and encoder")
        levers.append("VAE decoder's kernels tuned by timing")
        if precompiled.supported():
            levers.append("compiles saved whole and loaded at the next start")
    if speed.replay_vae_encoder(pipe, enabled=profile.compile and profile.offload == "none"):
        levers.append("VAE encoder replayed as a CUDA graph")
    return levers
