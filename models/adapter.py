"""The image-prompt adapter on the keyframe model: reference pictures steer a keyframe.

    attach(pipe)                                  # IP-Adapter (models/registry.IMAGE_ADAPTER)
    embeds = embed(pipe, [picture, ...])          # once per picture per film
    pipe(prompt, **call_kwargs(pipe, characters=[(embeds[0], 0.6)], look=None, guidance=False))

Two copies of the adapter sit on the keyframe UNet: the first takes the scene's characters
(their pictures at once, at the strongest of their strengths), the second the film's look (its
style picture, on the style layers only: InstantStyle's setting). A copy with nothing to show
runs at strength 0, which diffusers skips, so its keyframe is the one without the adapter.

Memory: the adapter's own weights are small and sit in the keyframe UNet, placed with it by the
memory profile. Its image encoder (ViT-bigG, about 3.7 GB in half precision) is used once per
picture and leaves the GPU right after: it is never there when the video model runs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.llm import ModelUnavailable
from models.registry import IMAGE_ADAPTER, how_to_get

log = logging.getLogger(__name__)

COPIES = ("characters", "look")  # the adapter's two copies on the UNet, in this order


def adapter_folder() -> Path | None:
    """The adapter's folder on this machine (registered, or its hub cache snapshot) when it is
    whole, else None."""
    from models.download import integrity_problem, weights_folder

    if integrity_problem(IMAGE_ADAPTER) is not None:
        return None
    return weights_folder(IMAGE_ADAPTER)


def is_attached(pipe: Any) -> bool:
    """Whether an adapter sits on the pipeline's UNet (diffusers sets its image projection)."""
    return getattr(pipe.unet, "encoder_hid_proj", None) is not None


def attach(pipe: Any) -> None:
    """Load the adapter's two copies and its image encoder into a keyframe pipeline (from this
    machine only); ModelUnavailable, with the way to get it, when it is not here. The caller
    places the pipeline again (models.diffusion.apply_profile) so the encoder joins its
    offload."""
    if is_attached(pipe):
        return
    folder = adapter_folder()
    if folder is None:
        raise ModelUnavailable(f"the image adapter ({IMAGE_ADAPTER.name}) is not on this machine; "
                               f"to get it: {how_to_get(IMAGE_ADAPTER)}")
    subfolder, weights = IMAGE_ADAPTER.weights_file.rsplit("/", 1)
    try:
        pipe.load_ip_adapter(str(folder), subfolder=subfolder, weight_name=[weights] * len(COPIES),
                             image_encoder_folder=IMAGE_ADAPTER.encoder_folder,
                             local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelUnavailable(f"cannot load the image adapter in {folder} "
                               f"({str(err).splitlines()[0][:200]})") from err
    if not all(_is_plain_projection(layer) for layer in _projections(pipe)):
        pipe.unload_ip_adapter()
        raise ModelUnavailable(f"the image adapter in {folder} needs its encoder's hidden "
                               f"states (a 'plus' adapter); Storyreel uses "
                               f"{IMAGE_ADAPTER.weights_file}, one embedding per picture")
    log.info("image adapter attached from %s", folder)


def detach(pipe: Any) -> None:
    """Take the adapter and its encoder off a keyframe pipeline again."""
    if is_attached(pipe):
        pipe.unload_ip_adapter()


def encoder_off_gpu(pipe: Any) -> None:
    """Where the profile put the whole pipeline on the GPU, the image encoder goes back to the
    CPU: it is needed once per picture, and the video model needs the room."""
    encoder = getattr(pipe, "image_encoder", None)
    if encoder is not None and not hasattr(encoder, "_hf_hook"):
        encoder.to("cpu")


def embed(pipe: Any, pictures: list[Any]) -> list[tuple[Any, Any]]:
    """(embedding, empty-picture embedding) of each picture (PIL images), on the CPU. The
    encoder visits the GPU for this and leaves it (an offloaded encoder moves by its hook)."""
    import torch

    encoder = pipe.image_encoder
    hooked = hasattr(encoder, "_hf_hook")
    device = pipe._execution_device if hooked else \
        ("cuda" if torch.cuda.is_available() else "cpu")
    if not hooked:
        encoder.to(device)
    try:
        with torch.no_grad():
            found = [pipe.encode_image(p, device, 1, False) for p in pictures]
    finally:
        if not hooked:
            encoder.to("cpu")
    return [(cond.cpu(), uncond.cpu()) for cond, uncond in found]


def call_kwargs(pipe: Any, characters: list[tuple[tuple[Any, Any], float]],
                look: tuple[tuple[Any, Any], float] | None, guidance: bool) -> dict[str, Any]:
    """The keyframe call's adapter arguments: `characters` the scene's (embedding, strength),
    `look` the film's; `guidance` whether the call uses classifier-free guidance. Sets the two
    copies' strengths on the pipeline (a copy with nothing to show gets 0)."""
    import torch

    width = _projections(pipe)[0].image_embeds.in_features
    dtype = pipe.unet.dtype
    nothing = (torch.zeros(1, width), torch.zeros(1, width))
    inputs: list[Any] = []
    for pairs in (characters, [look] if look else []):
        shown = [pair for pair, strength in pairs if strength > 0] or [nothing]
        cond = torch.cat([c for c, _ in shown])[None]      # (1, pictures, width)
        uncond = torch.cat([u for _, u in shown])[None]
        inputs.append((torch.cat([uncond, cond]) if guidance else cond).to(dtype))
    strength = max((s for _, s in characters), default=0.0)
    pipe.set_ip_adapter_scale([strength, style_layers(pipe.unet, look[1] if look else 0.0)])
    return {"ip_adapter_image_embeds": inputs}


def style_layers(unet: Any, strength: float) -> dict[str, Any] | float:
    """The look's strength on the style layers only: the second attention of the first up block
    with attention (SDXL: up block 0, [0, s, 0], as InstantStyle sets it); 0 everywhere else."""
    if strength <= 0:
        return 0.0
    for number, block in enumerate(unet.up_blocks):
        attentions = getattr(block, "attentions", None)
        if attentions:
            layers = [0.0] * len(attentions)
            layers[min(1, len(layers) - 1)] = strength
            return {"up": {f"block_{number}": layers}}
    return strength


def _projections(pipe: Any) -> list[Any]:
    return list(pipe.unet.encoder_hid_proj.image_projection_layers)


def _is_plain_projection(layer: Any) -> bool:
    from diffusers.models.embeddings import ImageProjection

    return isinstance(layer, ImageProjection)
