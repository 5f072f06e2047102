"""Where each model's weights are on this machine, and whether a folder of weights is whole.

Two places count. The Hugging Face cache (under HF_HOME) holds what `hf download` or
`python -m models download NAME` fetched. A folder registered with `python -m models add NAME
PATH`, or fetched from ModelScope, is recorded in `models.json` in Storyreel's cache folder.
`resolve` turns a model name or hub id into what the loaders open: the registered folder when
there is one, otherwise the hub id, which they read from the cache only.
"""
from __future__ import annotations

import json
from pathlib import Path

from models.files import cache_dir, write_json_atomic
from models.registry import ModelSpec, find_spec

WEIGHTS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth")
CONFIGS = ("config.json", "scheduler_config.json", "preprocessor_config.json",
           "tokenizer_config.json", "vocab.json", "tokenizer.json")


class StoreError(ValueError):
    """A folder that is not a usable model; the message says what is missing."""


def registry_file() -> Path:
    return cache_dir() / "models.json"


def registered() -> dict[str, str]:
    try:
        data = json.loads(registry_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise StoreError(f"{registry_file()} is not readable JSON ({err}); fix or delete it") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def register(name: str, folder: Path) -> str:
    """Record `folder` as model `name` (a known name or hub id, or any new name); returns the key."""
    folder = Path(folder).expanduser().resolve()
    spec = find_spec(name)
    check_folder(folder, layout(spec))
    key = spec.repo_id if spec else name
    entries = registered()
    entries[key] = str(folder)
    registry_file().parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(registry_file(), entries)
    return key


def layout(spec: ModelSpec | None) -> str | None:
    """How a model's folder is laid out, for check_folder: a UNet-only model's is "unet"."""
    if spec is None:
        return None
    return "unet" if spec.base else spec.role


def registered_folder(model_id: str) -> Path | None:
    """The registered folder for a model name or hub id, if there is one and it still exists."""
    spec = find_spec(model_id)
    keys = [model_id] + ([spec.repo_id, spec.name] if spec else [])
    entries = registered()
    for key in keys:
        if key in entries and Path(entries[key]).is_dir():
            return Path(entries[key])
    return None


def resolve(model_id: str) -> str:
    """What a loader should open for `model_id`: a registered folder, else `model_id` itself."""
    folder = registered_folder(model_id)
    return str(folder) if folder else model_id


def check_folder(folder: Path, role: str | None) -> None:
    """Raise StoreError naming what is missing when `folder` is not a whole model of `role`
    ("video" and "keyframe": a diffusers pipeline; "llm": a transformers model or a GGUF file)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"{folder} is not a folder")
    if role == "voice":
        _check_voice(folder)
        return
    if role == "adapter":
        _check_adapter(folder)
        return
    if role == "unet":
        if unet_weights(folder) is None:
            raise StoreError(f"{folder} holds no UNet: neither a .safetensors file nor a diffusers "
                             f"UNet folder (config.json and diffusion_pytorch_model.safetensors)")
        return
    if role in ("video", "keyframe") or (folder / "model_index.json").is_file():
        _check_pipeline(folder)
        return
    if any(folder.glob("*.gguf")):
        return
    if not (folder / "config.json").is_file():
        raise StoreError(f"{folder} has no config.json (nor model_index.json, nor a .gguf file): "
                         f"it is not a model folder")
    if not any(p for pattern in WEIGHTS for p in folder.glob(pattern)):
        raise StoreError(f"{folder} has a config.json but no weights (*.safetensors or *.bin)")


def _check_voice(folder: Path) -> None:
    """A Kokoro folder: config.json (with its phoneme vocabulary), one .pth checkpoint, and
    voices/*.pt style packs."""
    config = folder / "config.json"
    if not config.is_file():
        raise StoreError(f"{folder} has no config.json: it is not a Kokoro model folder")
    try:
        if "vocab" not in json.loads(config.read_text(encoding="utf-8")):
            raise StoreError(f"{config} has no phoneme vocabulary: it is not Kokoro's config")
    except ValueError as err:
        raise StoreError(f"{config} is not valid JSON ({err})") from None
    if not any(folder.glob("*.pth")):
        raise StoreError(f"{folder} has no .pth checkpoint (kokoro-v1_0.pth or kokoro-v1_1-zh.pth)")
    if not any((folder / "voices").glob("*.pt")):
        raise StoreError(f"{folder}/voices holds no voice (*.pt); the download may be incomplete")


def _check_adapter(folder: Path) -> None:
    """An IP-Adapter folder laid out as h94/IP-Adapter: the adapter's weights and its image
    encoder (config.json and model.safetensors)."""
    from models.registry import IMAGE_ADAPTER

    weights = folder / IMAGE_ADAPTER.weights_file
    encoder = folder / IMAGE_ADAPTER.encoder_folder
    if not weights.is_file():
        raise StoreError(f"{folder} has no {IMAGE_ADAPTER.weights_file}: it is not an IP-Adapter "
                         f"folder laid out as {IMAGE_ADAPTER.repo_id}")
    for part in ("config.json", "model.safetensors"):
        if not (encoder / part).is_file():
            raise StoreError(f"{encoder} has no {part}: the adapter's image encoder is missing "
                             f"or incomplete")


def unet_weights(folder: Path, preferred: str | None = None) -> Path | None:
    """A UNet-only model's weights in `folder`: a diffusers UNet folder (config.json beside the
    weights, returned as the folder), or a single .safetensors state dict (`preferred` first)."""
    folder = Path(folder)
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    if preferred and (folder / preferred).is_file():
        return folder / preferred
    files = sorted(p for p in folder.glob("*.safetensors") if not p.name.endswith(".incomplete"))
    return files[-1] if files else None


def _check_pipeline(folder: Path, without: tuple[str, ...] = ()) -> None:
    index = folder / "model_index.json"
    if not index.is_file():
        raise StoreError(f"{folder} has no model_index.json: it is not a diffusers pipeline folder")
    try:
        components = json.loads(index.read_text(encoding="utf-8"))
    except ValueError as err:
        raise StoreError(f"{index} is not valid JSON ({err})") from None
    for name, value in components.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        if name in without:  # a part another model brings (a turbo model's UNet)
            if name == "unet" and not (folder / name / "config.json").is_file():
                raise StoreError(f"{folder}: the UNet's config.json is missing")
            continue
        part = folder / name
        if not part.is_dir():
            raise StoreError(f"{folder}: component {name!r} is listed in model_index.json but its "
                             f"folder is missing")
        if not any((part / c).is_file() for c in CONFIGS):
            raise StoreError(f"{folder}: component {name!r} has no configuration file")
        has_config_only = name in ("scheduler", "feature_extractor", "tokenizer", "tokenizer_2")
        if not has_config_only and not any(p for pattern in WEIGHTS for p in part.glob(pattern)):
            raise StoreError(f"{folder}: component {name!r} has no weights (*.safetensors or "
                             f"*.bin); the download may be incomplete")


def check_base_parts(folder: Path) -> None:
    """A base video pipeline that a UNet-only model runs with: everything but the UNet's weights."""
    _check_pipeline(Path(folder), without=("unet",))


def spec_or_error(name: str) -> ModelSpec:
    from models.registry import KNOWN_MODELS

    spec = find_spec(name)
    if spec is None:
        known = ", ".join(m.name for m in KNOWN_MODELS)
        raise StoreError(f"unknown model {name!r}; known models: {known}")
    return spec
