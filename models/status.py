"""What this machine has: device, memory, loaded models, which weights are present and how to
get the missing ones. Read by the studio's System tab."""
from __future__ import annotations

from dataclasses import dataclass

from models import diffusion, llm
from models.memory import free_vram_gib, pick_profile
from models.registry import EMBEDDED_LLM, KNOWN_MODELS, ModelSpec, how_to_get


@dataclass(frozen=True)
class ModelState:
    spec: ModelSpec
    present: bool
    how_to_get: str


@dataclass(frozen=True)
class SystemReport:
    device: str
    vram_free_gib: float | None
    vram_used_gib: float | None
    profile: str
    loaded: list[str]
    models: list[ModelState]


def model_present(spec: ModelSpec) -> bool:
    if spec is EMBEDDED_LLM:
        try:
            llm.embedded_gguf_path()
            return True
        except llm.ModelUnavailable:
            return False
    if spec.role == "llm":
        from huggingface_hub import try_to_load_from_cache

        from models.store import registered_folder

        return (registered_folder(spec.repo_id) is not None
                or isinstance(try_to_load_from_cache(spec.repo_id, "config.json"), str))
    if spec.role in ("voice", "adapter"):
        from models.download import integrity_problem

        return integrity_problem(spec) is None
    return diffusion.is_available(spec.repo_id)


def system_report() -> SystemReport:
    import torch

    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
        used = torch.cuda.memory_allocated() / 2**30
    else:
        device, used = "CPU (no CUDA GPU: the animatic backend renders)", None
    loaded = llm.loaded_chat_models() + diffusion.loaded_pipelines()
    return SystemReport(device=device, vram_free_gib=free_vram_gib(), vram_used_gib=used,
                        profile=pick_profile("auto").name if torch.cuda.is_available() else "-",
                        loaded=loaded,
                        models=[ModelState(s, model_present(s), how_to_get(s))
                                for s in KNOWN_MODELS])
