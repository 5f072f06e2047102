"""Pipelines with random weights, saved in diffusers format, for tests and GPU benchmarks.

No weights can be downloaded where Storyreel is tested, so tests build tiny pipelines from small
configs and benchmarks build the full-size SVD-XT architecture (the real configs below), save
them with `save_pretrained`, and the product loads them with `from_pretrained` like any model.
Speed does not depend on the weights' values; output quality does, so nothing here is for films.
"""
from __future__ import annotations

import json
from pathlib import Path

# Stable Video Diffusion XT (stabilityai/stable-video-diffusion-img2vid-xt), as published.
SVD_XT_UNET = dict(  # diffusers' UNetSpatioTemporalConditionModel defaults are this model
    sample_size=96, in_channels=8, out_channels=4, layers_per_block=2,
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=768, cross_attention_dim=1024,
    transformer_layers_per_block=1, num_attention_heads=(5, 10, 20, 20), num_frames=25)
SVD_XT_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
    sample_size=768, scaling_factor=0.18215, force_upcast=True)
SVD_XT_IMAGE_ENCODER = dict(  # OpenCLIP ViT-H/14 vision tower
    hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32,
    patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)
SVD_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
    sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
    timestep_type="continuous", use_karras_sigmas=True)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# A tiny SVD with the same structure (diffusers' own fast-test sizes, but a VAE that shrinks
# frames 4x rather than 2x: the UNet's attention then sees 16x16 latents for a 64x64 clip, not
# 32x32: 1.7 s a 3-frame, 8-step 64x64 clip on 2 CPU cores instead of 6.0 s).
TINY_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8,
    out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    cross_attention_dim=32, num_attention_heads=8, projection_class_embeddings_input_dim=96,
    addition_time_embed_dim=32)
TINY_VAE = dict(block_out_channels=(32, 32, 64), in_channels=3, out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * 3, latent_channels=4)
TINY_IMAGE_ENCODER = dict(hidden_size=32, projection_dim=32, num_hidden_layers=5,  # the pipeline
                          num_attention_heads=4, image_size=224, intermediate_size=37,  # resizes
                          patch_size=14)  # every image to 224x224 itself


def build_svd(folder: Path, size: str = "tiny", seed: int = 0, dtype: str = "float32") -> Path:
    """Save a random-weight StableVideoDiffusionPipeline ("tiny" or "svd-xt") to `folder`."""
    import torch
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler,
                           StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    full = size == "svd-xt"
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**(SVD_XT_UNET if full else TINY_UNET))
    vae = AutoencoderKLTemporalDecoder(**(SVD_XT_VAE if full else TINY_VAE))
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(**(SVD_XT_IMAGE_ENCODER if full else TINY_IMAGE_ENCODER)))
    crop = 224
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=encoder, unet=unet,
        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
        feature_extractor=CLIPImageProcessor(crop_size=crop, size={"shortest_edge": crop},
                                             image_mean=CLIP_MEAN, image_std=CLIP_STD))
    if full:
        shrink_weights(pipe.unet, pipe.vae, pipe.image_encoder)
    pipe.to(dtype=getattr(torch, dtype))
    pipe.save_pretrained(folder)
    return Path(folder)


def save_unet_only(svd_folder: Path, folder: Path,
                   file_name: str = "AnimateLCM-SVD-xt-1.1.safetensors") -> Path:
    """Save a saved SVD pipeline's UNet as one .safetensors state dict in `folder`, the way
    AnimateLCM-SVD-xt publishes its UNet: a stand-in turbo model (same weights, so only speed
    and the loading code mean anything)."""
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet = UNetSpatioTemporalConditionModel.from_pretrained(Path(svd_folder) / "unet")
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, folder / file_name)
    return folder


def build_text_to_image(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random-weight Stable Diffusion pipeline (loads via AutoPipelineForText2Image)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=4)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=1000, max_position_embeddings=77))
    tokenizer = CLIPTokenizer(*_tiny_clip_vocab(folder / "_vocab"), model_max_length=77)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                         beta_schedule="scaled_linear", steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


# SDXL-Turbo (stabilityai/sdxl-turbo), as published: the UNet, both text encoders and the VAE.
SDXL_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816)
SDXL_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
    layers_per_block=2, latent_channels=4, sample_size=1024, scaling_factor=0.13025)
SDXL_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                 num_hidden_layers=12, projection_dim=768, hidden_act="quick_gelu")
SDXL_TEXT_2 = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20,
                   num_hidden_layers=32, projection_dim=1280, hidden_act="gelu")
# IP-Adapter for SDXL (h94/IP-Adapter sdxl_models): its image encoder is OpenCLIP ViT-bigG/14.
ADAPTER_IMAGE_ENCODER = dict(
    hidden_size=1664, intermediate_size=8192, num_attention_heads=16, num_hidden_layers=48,
    patch_size=14, image_size=224, projection_dim=1280, hidden_act="gelu", layer_norm_eps=1e-5)
TINY_ADAPTER_IMAGE_ENCODER = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                  num_hidden_layers=2, patch_size=8, image_size=32,
                                  projection_dim=16)
ADAPTER_TOKENS = 4  # image tokens per picture (diffusers reads 4 for a plain IP-Adapter)


def build_sdxl(folder: Path, seed: int = 0, dtype: str = "float16", device: str = "cpu") -> Path:
    """Save a random-weight SDXL-Turbo-sized pipeline (AutoPipelineForText2Image loads it), for
    the GPU benchmarks: built on `device` (a GPU builds it in seconds)."""
    import torch
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                              CLIPTokenizer)

    folder = Path(folder)
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = AutoencoderKL(**SDXL_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SDXL_TEXT))
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2))
    shrink_weights(unet, vae, text, text_2)
    vocab = _tiny_clip_vocab(folder / "_vocab")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text, text_encoder_2=text_2,
        tokenizer=CLIPTokenizer(*vocab, model_max_length=77),
        tokenizer_2=CLIPTokenizer(*vocab, model_max_length=77, pad_token="!"), unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            timestep_spacing="trailing", num_train_timesteps=1000),
        force_zeros_for_empty_prompt=False)
    pipe.to(dtype=getattr(torch, dtype))
    pipe.save_pretrained(folder)
    return folder


def build_image_adapter(folder: Path, unet_folder: Path, size: str = "tiny", seed: int = 0,
                        dtype: str = "float32", device: str = "cpu") -> Path:
    """Save a random-weight IP-Adapter for the keyframe UNet in `unet_folder`, laid out as
    h94/IP-Adapter (sdxl_models/ip-adapter_sdxl.safetensors and sdxl_models/image_encoder/), so
    the product's own loading code (models/adapter.py) reads it. "tiny" or "sdxl" (ViT-bigG)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from models.registry import IMAGE_ADAPTER

    folder = Path(folder)
    config = UNet2DConditionModel.load_config(unet_folder)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    torch.manual_seed(seed)
    vision = ADAPTER_IMAGE_ENCODER if size == "sdxl" else TINY_ADAPTER_IMAGE_ENCODER
    with torch.device(device):
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
    if size == "sdxl":
        shrink_weights(encoder)
    torch_dtype = getattr(torch, dtype)
    encoder.to(dtype=torch_dtype).save_pretrained(folder / IMAGE_ADAPTER.encoder_folder)
    cross, width = config["cross_attention_dim"], vision["projection_dim"]
    std = 0.02 if size == "sdxl" else 1.0  # tiny: strong enough to see a picture's effect
    weights = {"image_proj.proj.weight": torch.randn(ADAPTER_TOKENS * cross, width) * std,
               "image_proj.proj.bias": torch.zeros(ADAPTER_TOKENS * cross),
               "image_proj.norm.weight": torch.ones(cross),
               "image_proj.norm.bias": torch.zeros(cross)}
    key_id = 1  # diffusers numbers the cross-attention layers 1, 3, 5, ... in this order
    channels = list(config["block_out_channels"])
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = channels[::-1][int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for part in ("to_k_ip", "to_v_ip"):
            weights[f"ip_adapter.{key_id}.{part}.weight"] = torch.randn(hidden, cross) * std
        key_id += 2
    target = folder / IMAGE_ADAPTER.weights_file
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch_dtype).contiguous() for k, v in weights.items()}, target)
    return folder


def _tiny_clip_vocab(folder: Path) -> tuple[str, str]:
    """A character-level CLIP vocabulary (every printable ASCII character, with and without
    the end-of-word mark), enough for CLIPTokenizer to tokenize any English prompt."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"]
    for code in range(33, 127):
        tokens += [chr(code), chr(code) + "</w>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return str(folder / "vocab.json"), str(folder / "merges.txt")


def shrink_weights(*modules: object, scale: float = 0.02) -> None:
    """Small random weights keep half-precision activations finite through 32+ layers."""
    import torch

    with torch.no_grad():
        for module in modules:
            for param in module.parameters():  # type: ignore[attr-defined]
                if param.dim() > 1:
                    param.normal_(0.0, scale)


def build_chat_model(folder: Path, tokenizer: object, seed: int = 0) -> Path:
    """A tiny random Qwen3 chat model (the optional CPU planner's architecture) with the given
    tokenizer, saved in transformers format: the real loading and decoding code runs on it."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = Path(folder)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Kokoro-82M's architecture (hexgrad/Kokoro-82M config.json). Its decoder's widths are fixed in
# the code (hidden 512, style 128); the "tiny" build shrinks only the PL-BERT text encoder and
# the layer counts, so the same loader, G2P, voice packs and durations run as with the real one.
KOKORO_CONFIG = dict(
    dim_in=64, dropout=0.2, hidden_dim=512, max_conv_dim=512, max_dur=50, multispeaker=True,
    n_layer=3, n_mels=80, n_token=178, style_dim=128, text_encoder_kernel_size=5,
    istftnet=dict(upsample_kernel_sizes=[20, 12], upsample_rates=[10, 6], gen_istft_hop_size=5,
                  gen_istft_n_fft=20, resblock_dilation_sizes=[[1, 3, 5]] * 3,
                  resblock_kernel_sizes=[3, 7, 11], upsample_initial_channel=512),
    plbert=dict(hidden_size=768, num_attention_heads=12, intermediate_size=2048,
                max_position_embeddings=512, num_hidden_layers=12, dropout=0.1))
TINY_KOKORO = dict(
    n_layer=1, istftnet={**KOKORO_CONFIG["istftnet"], "resblock_dilation_sizes": [[1, 3, 5]],
                         "resblock_kernel_sizes": [3]},
    plbert=dict(hidden_size=32, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=512, num_hidden_layers=1, dropout=0.1))


def kokoro_vocab() -> dict[str, int]:
    """Token ids for every phoneme misaki writes (English IPA and its Mandarin v1.1 symbols)
    plus punctuation; 0 is the pad."""
    from importlib.resources import files

    from misaki.zh_frontend import ZH_MAP

    chars = set(';:,.!?¡¿—…"«»“”() ') | set(ZH_MAP.values())
    for name in ("us_gold.json", "us_silver.json"):
        for value in json.loads(files("misaki").joinpath("data", name).read_text("utf-8")).values():
            for text in value.values() if isinstance(value, dict) else [value]:
                chars |= set(text or "")
    return {c: i for i, c in enumerate(sorted(chars), start=1)}


def build_kokoro(folder: Path, voices: tuple[str, ...] = ("af_heart",), size: str = "tiny",
                 seed: int = 0, checkpoint: str = "kokoro-v1_0.pth") -> Path:
    """A Kokoro folder with random weights: config.json, the .pth checkpoint (one state dict
    per part, as published) and a random style pack per voice in voices/."""
    import torch
    from kokoro import KModel

    torch.manual_seed(seed)
    folder = Path(folder)
    (folder / "voices").mkdir(parents=True, exist_ok=True)
    config = {**KOKORO_CONFIG, **(TINY_KOKORO if size == "tiny" else {}), "vocab": kokoro_vocab()}
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    empty = folder / "empty.pth"
    torch.save({}, empty)  # KModel always reads a checkpoint; an empty one leaves it random
    model = KModel(repo_id="hexgrad/Kokoro-82M", config=str(folder / "config.json"),
                   model=str(empty))
    empty.unlink()
    # Random durations would be ~0.6 s a phoneme, a voice speaks ~75 ms of each: so that speech
    # lasts as long as real speech (and speed per second of speech means something), the
    # duration head predicts 3 frames (75 ms) a phoneme.
    projection = model.predictor.duration_proj.linear_layer
    torch.nn.init.normal_(projection.weight, std=1e-3)
    torch.nn.init.constant_(projection.bias, -2.8)  # 50 x sigmoid(-2.8) = 3 frames
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    dtype = torch.float16 if size == "tiny" else torch.float32  # half the file for tests
    torch.save({part: {k: v.to(dtype) if v.is_floating_point() else v
                       for k, v in getattr(model, part).state_dict().items()} for part in parts},
               folder / checkpoint)
    for voice in voices:
        torch.save(torch.randn(510, 1, 256) * 0.5, folder / "voices" / f"{voice}.pt")
    return folder
