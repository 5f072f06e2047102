"""The speed levers keep the math: the same frames from the same seed, on a tiny random SVD."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from models import speed


@pytest.fixture
def svd_pipe(tiny_svd):
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(str(tiny_svd))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def frames(pipe):
    import torch

    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return pipe(image=image, height=64, width=64, num_frames=4, num_inference_steps=2,
                max_guidance_scale=3.0, generator=torch.Generator().manual_seed(0),
                output_type="np").frames[0]


def test_fused_qkv_and_split_guidance_batch_give_the_same_frames(svd_pipe):
    plain = frames(svd_pipe)
    assert speed.fuse_qkv(svd_pipe.unet) > 0
    fused = frames(svd_pipe)
    speed.split_cfg_batch(svd_pipe.unet, True)
    split = frames(svd_pipe)
    assert np.abs(plain - fused).max() < 1e-4
    assert np.abs(plain - split).max() < 1e-4
    speed.split_cfg_batch(svd_pipe.unet, False)  # and it comes off again
    assert not speed.is_split(svd_pipe.unet)
    assert np.abs(plain - frames(svd_pipe)).max() < 1e-4


def test_attention_called_without_its_signature_check_gives_the_same_frames(svd_pipe, caplog):
    """The compiled profiles call each attention's processor directly (less Python for Dynamo
    to trace at every start): the same frames; a call with an argument the processor does not
    take still goes through diffusers' check, which names it."""
    import torch
    from diffusers.models.attention_processor import Attention

    plain = frames(svd_pipe)
    changed = speed.attention_calls_direct(svd_pipe.unet) + speed.attention_calls_direct(
        svd_pipe.vae)
    attentions = [m for m in [*svd_pipe.unet.modules(), *svd_pipe.vae.modules()]
                  if isinstance(m, Attention)]
    assert changed == len(attentions) > 0
    assert speed.attention_calls_direct(svd_pipe.unet) == 0  # once
    assert np.array_equal(plain, frames(svd_pipe))
    first = attentions[0]
    tokens = torch.randn(2, 3, first.query_dim)
    with caplog.at_level("WARNING"), torch.no_grad():
        assert torch.equal(first(tokens, not_an_argument=1), first(tokens))
    assert "not_an_argument" in caplog.text


@pytest.fixture
def keys_through_sdpa(monkeypatch) -> list[int]:
    """How many keys each call of torch's scaled_dot_product_attention attended to."""
    import torch.nn.functional as F

    keys: list[int] = []
    sdpa = F.scaled_dot_product_attention

    def counted(query, key, *args, **kwargs):
        keys.append(key.shape[-2])
        return sdpa(query, key, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counted)
    return keys


def test_cross_attention_to_the_one_image_token_gives_the_same_frames_without_attending(
        svd_pipe, keys_through_sdpa):
    """SVD's cross-attentions attend to one key (the image embedding), so their output is its
    value: the same frames with no attention kernel run for them; a call with more keys still
    attends."""
    import torch

    attended = keys_through_sdpa
    speed.fuse_qkv(svd_pipe.unet)
    plain = frames(svd_pipe)
    assert 1 in attended  # the cross-attentions' one key
    crossed = speed.single_key_cross_attention(svd_pipe.unet)
    assert crossed > 0 and speed.single_key_cross_attention(svd_pipe.unet) == crossed
    attended.clear()
    assert np.abs(plain - frames(svd_pipe)).max() < 1e-4
    assert attended and 1 not in attended  # the self-attentions still attend

    attn = next(m for m in svd_pipe.unet.modules() if getattr(m, "is_cross_attention", False))
    queries = torch.randn(2, 5, attn.query_dim, generator=torch.Generator().manual_seed(0))
    keys = torch.randn(2, 3, attn.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(attn(queries, keys), attn.processor.general(attn, queries, keys))
    assert attended[-1] == 3


@pytest.fixture
def bench(monkeypatch):
    """The benchmarks' folder importable: candidate levers live there until measured."""
    import sys

    from tests.conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    yield
    for name in ("common", "vae_decode", "svd_profiles", "clip_timeline"):
        sys.modules.pop(name, None)


def test_the_clip_timeline_counts_kernels_launched_through_the_driver_in_their_phase(bench):
    """bench/clip_timeline.py's phases give the GPU time of the work each part launched, matched
    by correlation ids: Inductor's Triton kernels are launched through the driver
    (cuLaunchKernel), not the runtime, and count too."""
    from clip_timeline import phase_times

    def event(cat: str, name: str, ts: float, dur: float, correlation: int | None = None):
        return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur,
                **({"args": {"correlation": correlation}} if correlation else {})}

    trace = {"traceEvents": [
        event("user_annotation", "phase: VAE encode", 0, 100),
        event("cuda_runtime", "cudaLaunchKernel", 10, 5, correlation=1),
        event("cuda_driver", "cuLaunchKernel", 20, 5, correlation=2),
        event("kernel", "cudnn_convolution", 30, 3000, correlation=1),
        event("kernel", "triton_poi_fused_silu", 3030, 2000, correlation=2),
        event("user_annotation", "phase: sampler step", 200, 10)]}
    encode = next(row for row in phase_times(trace) if row["phase"] == "VAE encode")
    assert encode["gpu_busy_ms"] == 5.0 and encode["gpu_ms"] == [0.03, 5.03]


@pytest.mark.parametrize("attention", ["product", "float32 candidate"])
def test_the_decoders_wide_head_attention_gives_the_same_output_from_matrix_products(bench,
                                                                                    attention):
    """SVD-XT's decoder attends with one 512-wide head (no fused kernel but the memory-efficient
    one takes it): as two matrix products and a softmax, the scores from an operator of their
    own (the product's; bench/vae_decode.py's attention-mm does all of it in float32), the same
    output, compiled too; heads of 256 or less keep their processor."""
    import torch
    from diffusers.models.attention_processor import Attention
    from vae_decode import float32_attention_as_products

    torch.manual_seed(0)
    wide = Attention(query_dim=512, heads=1, dim_head=512, eps=1e-6, upcast_softmax=True,
                     norm_num_groups=32, bias=True, residual_connection=True).eval()
    narrow = Attention(query_dim=64, heads=2, dim_head=32, norm_num_groups=8, bias=True,
                       residual_connection=True).eval()
    model = torch.nn.ModuleList([wide, narrow])
    pixels = torch.randn(3, 512, 6, 5)
    place = (speed.wide_head_attention_as_products if attention == "product"
             else float32_attention_as_products)
    with torch.no_grad():
        before = wide(pixels)
        assert place(model) == 1
        assert isinstance(wide.processor, speed.WideHeadAttention)
        assert not isinstance(narrow.processor, speed.WideHeadAttention)
        after = wide(pixels)
        compiled = torch.compile(wide)(pixels)  # the compiler keeps the operator as it is
    assert after.shape == pixels.shape
    assert (compiled - before).abs().max() < 1e-5
    assert (before - pixels).abs().mean() > 0.01  # the attention adds to its residual
    assert (after - before).abs().max() < 1e-5


def test_attention_over_frames_runs_on_its_own_kernel_and_gives_the_same_frames(
        svd_pipe, keys_through_sdpa):
    """The temporal blocks' self-attentions (over a scene's frames) call the memory-efficient
    kernel's operator (the CPU's fused one here) instead of going through SDPA, which picks a
    slower kernel for them; the spatial ones still go through SDPA; the frames are the same,
    with the guidance batch split too."""
    speed.fuse_qkv(svd_pipe.unet)
    plain = frames(svd_pipe)
    assert 4 in keys_through_sdpa  # the clip's 4 frames
    held = speed.frame_attention_on_efficient_kernel(svd_pipe.unet)
    blocks = [m for m in svd_pipe.unet.modules()
              if type(m).__name__ == "TemporalBasicTransformerBlock"]
    assert held == len(blocks) > 0
    assert speed.frame_attention_on_efficient_kernel(svd_pipe.unet) == held  # once
    keys_through_sdpa.clear()
    assert np.abs(plain - frames(svd_pipe)).max() < 1e-4
    assert keys_through_sdpa and 4 not in keys_through_sdpa  # a 64x64 frame's latent pixels
    speed.split_cfg_batch(svd_pipe.unet, True)
    assert np.abs(plain - frames(svd_pipe)).max() < 1e-4


COMPILE_A_FRAME_BLOCK = """
import sys
import torch
from diffusers.models.attention import TemporalBasicTransformerBlock
from diffusers.models.attention_processor import FusedAttnProcessor2_0
from torch._dynamo.utils import counters
from models import precompiled, speed

torch.manual_seed(int(sys.argv[1]))  # each process its own weights
block = TemporalBasicTransformerBlock(32, 32, 2, 16, cross_attention_dim=16).eval()
block.attn1.fuse_projections()  # as speed.fuse_qkv leaves a UNet's
block.attn1.set_processor(FusedAttnProcessor2_0())
assert speed.frame_attention_on_efficient_kernel(torch.nn.ModuleList([block])) == 1
speed.attention_calls_direct(block)  # as the compiled profiles do
inputs = torch.randn(8, 6, 32), torch.randn(12, 1, 16)
with torch.no_grad():
    eager = block(inputs[0], num_frames=4, encoder_hidden_states=inputs[1])
    speed.compile_regions(block, ("TemporalBasicTransformerBlock",))
    compiled = block(inputs[0], num_frames=4, encoder_hidden_states=inputs[1])
print(dict(counters["aot_autograd"]), counters["stats"]["unique_graphs"])
print(float((compiled - eager).abs().max()), sorted(p.name for p in precompiled.folder().iterdir()))
from torch._inductor.runtime.runtime_utils import cache_dir
print(cache_dir())
"""


def test_a_compiled_block_is_loaded_whole_at_the_next_start_with_that_starts_weights(tmp_path):
    """The first process compiles a block (one attending over frames, the UNet's kind) and saves
    it whole; a second one, whose block has other weights, loads that file without tracing or
    compiling anything and gets its own block's output from it: the weights are the call's, never
    the file's. The caches are in Storyreel's cache folder, not the system's temporary one that
    torch names once diffusers is imported (many systems empty it at every boot)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {name: value for name, value in os.environ.items()
           if not name.startswith("TORCHINDUCTOR_")}  # the caches in STORYREEL_CACHE alone
    env.update(STORYREEL_CACHE=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    runs = [subprocess.run(
        [sys.executable, "-c", COMPILE_A_FRAME_BLOCK, str(seed)], env=env, capture_output=True,
        text=True, check=True, timeout=300).stdout.strip().splitlines()[-3:] for seed in (0, 1)]
    (first_counts, first_graphs), (second_counts, second_graphs) = (
        counts.rsplit(" ", 1) for counts, _, _ in runs)
    assert {folder for _, _, folder in runs} == {str(tmp_path / "inductor")}
    assert "autograd_cache_saved" in first_counts and int(first_graphs) == 1, runs[0]
    assert second_counts == "{}" and int(second_graphs) == 0, runs[1]  # nothing traced
    for _, result, _ in runs:
        difference, files = result.split(" ", 1)
        assert float(difference) < 1e-5, runs
        assert len(eval(files)) == 1 and eval(files)[0].startswith("TemporalBasicTransformerBlock")


def test_the_keyframe_prepared_on_the_device_gives_the_same_embedding(svd_pipe, monkeypatch):
    """diffusers blurs and resizes the keyframe for CLIP, and turns it into float pixels for the
    VAE, on the CPU; prepared where the encoders run (speed.encode_keyframe_on_device, the fast
    profiles' lever), the embedding is the same (here both on the CPU: the same steps in the same
    order), and so are the frames, with no picture converted on the CPU; a keyframe of another
    size still goes through diffusers' resize."""
    import torch
    from diffusers.image_processor import VaeImageProcessor

    on_cpu: list[tuple] = []
    to_numpy = VaeImageProcessor.pil_to_numpy
    monkeypatch.setattr(VaeImageProcessor, "pil_to_numpy", staticmethod(
        lambda images: on_cpu.append(np.shape(images)) or to_numpy(images)))

    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (96, 128, 3), np.uint8))
    with torch.no_grad():
        before = svd_pipe._encode_image(image, torch.device("cpu"), 1, True)
        plain = frames(svd_pipe)
        assert speed.encode_keyframe_on_device(svd_pipe)
        assert not speed.encode_keyframe_on_device(svd_pipe)  # once
        after = svd_pipe._encode_image(image, torch.device("cpu"), 1, True)
    assert after.shape == before.shape and before.abs().mean() > 0.01
    assert (after - before).abs().max() < 1e-5
    assert on_cpu  # diffusers' own path, for the plain frames
    on_cpu.clear()
    assert np.abs(frames(svd_pipe) - plain).max() < 1e-4  # CLIP's resize rounds differently
    assert not on_cpu
    with torch.no_grad():
        svd_pipe._encode_image(image, torch.device("cpu"), 1, True)
        for_vae = svd_pipe.video_processor.preprocess(image, height=96, width=128)
    assert not on_cpu
    assert torch.equal(for_vae, VaeImageProcessor().preprocess(image, height=96, width=128))
    other_size = Image.fromarray(np.zeros((32, 48, 3), np.uint8))
    with torch.no_grad():
        svd_pipe._encode_image(other_size, torch.device("cpu"), 1, True)
        resized = svd_pipe.video_processor.preprocess(other_size, height=64, width=64)
    assert resized.shape == (1, 3, 64, 64) and on_cpu


ENCODER_REPLAYS = {  # what is replayed: (how it is put on, the pipeline's attribute, its call)
    "image encoder": ("replay_image_encoder", "image_encoder_replay",
                      lambda pipe, pixels: pipe.image_encoder(pixels).image_embeds),
    "VAE encoder": ("replay_vae_encoder", "vae_encoder_replay",
                    lambda pipe, pixels: pipe.vae.encode(pixels).latent_dist.mode()),
}


@pytest.mark.parametrize("encoder", ENCODER_REPLAYS)
def test_an_encoder_is_replayed_only_where_it_stays_on_the_gpu(svd_pipe, encoder):
    """The fast profile replays SVD's image encoder and the VAE's encoder (the keyframe into
    latents) as CUDA graphs (speed.replay_image_encoder, replay_vae_encoder). Without CUDA, or
    where the profile offloads them, there is no graph and nothing is left from one; with a
    replay in place, the keyframe's embedding or latents come from it, once a clip, and the
    frames are the same (here a replay that runs the encoder itself: graphs need a GPU, where
    bench/clip_setup.py checks the replayed embedding against the eager one)."""
    replay_on, attribute, run = ENCODER_REPLAYS[encoder]
    assert speed.encode_keyframe_on_device(svd_pipe)
    assert not getattr(speed, replay_on)(svd_pipe, enabled=True)  # no CUDA here
    assert getattr(svd_pipe, attribute, None) is None
    plain = frames(svd_pipe)

    calls = []

    def replay(pixels: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(pixels.shape))
        return run(svd_pipe, pixels)

    setattr(svd_pipe, attribute, replay)
    try:
        assert np.abs(frames(svd_pipe) - plain).max() < 1e-6
        assert len(calls) == 1 and calls[0][:2] == (1, 3)
    finally:
        getattr(speed, replay_on)(svd_pipe, enabled=False)  # what an offload profile does
    assert getattr(svd_pipe, attribute, None) is None


def test_an_image_encoder_graph_that_cannot_be_captured_runs_without_one_and_says_so(
        svd_pipe, monkeypatch, caplog):
    """Should a CUDA graph of the image encoder fail to capture, the clip still gets the same
    embedding, from the encoder run as it is, and the log says the graph is off."""
    import torch

    encoder = svd_pipe.image_encoder
    replay = speed.GraphReplay(lambda pixels: encoder(pixels).image_embeds, encoder,
                               "the image encoder")
    attempts = []

    def cannot_capture(x: torch.Tensor) -> None:
        attempts.append(x.shape)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(replay, "_capture", cannot_capture)
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), caplog.at_level("WARNING"):
        first, second = replay(pixels), replay(pixels)
        plain = encoder(pixels).image_embeds
    assert torch.equal(first, plain) and torch.equal(second, plain)
    assert len(attempts) == 1  # not tried again at every clip
    assert "could not be captured as a CUDA graph" in caplog.text


def test_the_split_survives_the_offload_hooks_being_added_again_after_each_call(svd_pipe):
    """diffusers removes and re-adds its model-offload hooks at the end of every pipeline call;
    the low profile's halved batch (its memory saving) must still be there on the next call."""
    from accelerate import cpu_offload_with_hook
    from accelerate.hooks import remove_hook_from_module

    unet = svd_pipe.unet
    batches: list[int] = []
    unet.conv_in.register_forward_pre_hook(lambda _m, args: batches.append(args[0].shape[0]))
    speed.split_cfg_batch(unet, True)
    for _call in range(2):  # what enable_model_cpu_offload does before and after each call
        remove_hook_from_module(unet)
        cpu_offload_with_hook(unet, "cpu")
        batches.clear()
        frames(svd_pipe)
        assert batches and max(batches) == 4, batches  # one guidance half (4 frames) at a time
    with pytest.raises(RuntimeError, match="offload hooks"):
        speed.split_cfg_batch(unet, False)
    remove_hook_from_module(unet)
    speed.split_cfg_batch(unet, False)
    batches.clear()
    frames(svd_pipe)
    assert max(batches) == 8  # both halves together again


def test_the_decoder_levers_decode_the_same_frames_with_fewer_multiply_adds(svd_pipe):
    """The VAE decoder's upsamplers folded into low-resolution convolutions, and its frame
    convolutions channels-last: the same frames, the same weights, and fewer multiply-adds
    (what makes the decode faster on the GPU), eager and compiled."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    vae = svd_pipe.vae
    latents = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    weights = {k: v.clone() for k, v in vae.state_dict().items()}

    def decoded() -> tuple[np.ndarray, int]:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            out = vae.decode(latents, num_frames=4).sample.numpy()
        return out, counter.get_total_flops()

    plain, plain_flops = decoded()
    upsamplers = sum(type(m).__name__ == "Upsample2D" for m in vae.decoder.modules())
    assert upsamplers > 0 and speed.fold_upsampling(vae.decoder) == upsamplers
    assert speed.fold_upsampling(vae.decoder) == upsamplers  # placed again: folded once
    assert speed.frame_convs_channels_last(vae.decoder) > 0
    folded, folded_flops = decoded()
    assert np.abs(plain - folded).max() < 1e-4
    assert folded_flops < plain_flops
    assert all(torch.equal(v, weights[k]) for k, v in vae.state_dict().items())
    # compiled, the phases are interleaved in the channels-last order (Dynamo's own tracing
    # here, which is where that branch is taken): the same frames again
    # (outside the flop counter, whose dispatch mode Dynamo would not trace under)
    vae.decoder.compile(backend="eager", dynamic=False)
    try:
        with torch.no_grad():
            traced = vae.decode(latents, num_frames=4).sample.numpy()
    finally:
        vae.decoder._compiled_call_impl = None
    assert np.abs(plain - traced).max() < 1e-4


def test_group_norms_from_channel_statistics_decode_the_same_frames(svd_pipe):
    """The compiled decoder's group norms rewritten from per-channel statistics (what makes
    Inductor's reductions fast on the GPU): the same frames, the same weights, every norm of
    the decoder (its spatial ones and those over frames), and exact where the values sit far
    from zero, where a one-pass sum of squares would cancel."""
    import torch

    vae = svd_pipe.vae
    latents = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    weights = {k: v.clone() for k, v in vae.state_dict().items()}
    with torch.no_grad():
        plain = vae.decode(latents, num_frames=4).sample
    norms = sum(isinstance(m, torch.nn.GroupNorm) for m in vae.decoder.modules())
    assert norms > 0 and speed.group_norms_by_channel_stats(vae.decoder) == norms
    assert speed.group_norms_by_channel_stats(vae.decoder) == norms  # placed again: no change
    with torch.no_grad():
        rewritten = vae.decode(latents, num_frames=4).sample
    assert (plain - rewritten).abs().max() < 1e-4
    assert all(torch.equal(v, weights[k]) for k, v in vae.state_dict().items())

    generator = torch.Generator().manual_seed(1)
    norm = torch.nn.GroupNorm(4, 16, eps=1e-6)
    torch.nn.init.normal_(norm.weight, generator=generator)
    torch.nn.init.normal_(norm.bias, generator=generator)
    frames = 1000 + torch.randn(2, 16, 3, 5, 6, generator=generator)  # (batch, ch, frames, h, w)
    exact = torch.nn.functional.group_norm(frames.double(), 4, norm.weight.double(),
                                           norm.bias.double(), 1e-6)
    speed.group_norms_by_channel_stats(norm)
    channels_last = frames.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3)
    for layout in (frames, channels_last):
        with torch.no_grad():
            assert (norm(layout).double() - exact).abs().max() < 1e-3


def test_the_compiled_profiles_write_the_vaes_silu_as_a_product_in_its_decoder_and_encoder(
        svd_pipe):
    """With compile on, the VAE's SiLUs are written as x * sigmoid(x) (Triton's sigmoid where
    Inductor would use the accurate library exp) beside its other levers, in the decoder and in
    the encoder (the keyframe, once a clip), both compiled: the same frames and latents."""
    import torch

    from models.diffusion import video_levers
    from models.memory import PROFILES

    vae = svd_pipe.vae
    keyframe = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = vae.encode(keyframe).latent_dist.mode(), vae.decode(latents, num_frames=4).sample
    levers = video_levers(svd_pipe, PROFILES["fast"])
    assert "VAE SiLU as x * sigmoid(x)" in levers
    for coder in (vae.decoder, vae.encoder):
        silus = [m for m in coder.modules() if isinstance(m, torch.nn.SiLU)]
        assert silus and all(isinstance(m, speed._SigmoidProductSiLU) for m in silus)
        assert coder._compiled_call_impl is not None
        coder._compiled_call_impl = None  # their kernels need the GPU to pay
    assert "VAE encoder replayed as a CUDA graph" not in levers  # no GPU here
    with torch.no_grad():
        with_levers = (vae.encode(keyframe).latent_dist.mode(),
                       vae.decode(latents, num_frames=4).sample)
    assert (plain[0] - with_levers[0]).abs().max() < 1e-4
    assert (plain[1] - with_levers[1]).abs().max() < 1e-4


def test_frames_are_decoded_in_even_chunks_so_none_is_decoded_alone(svd_pipe):
    """25 frames at a chunk of 8 decode as 5 x 5 (diffusers: 8, 8, 8, 1, the last frame with no
    neighbours, and the decode's peak memory set by the 8): the largest chunk is smaller, the
    compiled decoder sees one shape, and where the chunks are diffusers' own the frames are
    identical."""
    import torch

    chunks: list[int] = []
    decode = svd_pipe.vae.decode

    def counted(z, *args, **kwargs):
        chunks.append(z.shape[0])
        return decode(z, *args, **kwargs)

    svd_pipe.vae.decode = counted
    latents = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = svd_pipe.decode_latents(latents, 4, decode_chunk_size=4)
        assert speed.even_decode_chunks(svd_pipe)
        assert not speed.even_decode_chunks(svd_pipe)  # placed again: once
        chunks.clear()
        even = svd_pipe.decode_latents(latents, 4, decode_chunk_size=4)
        assert chunks == [4] and torch.equal(plain, even)
        chunks.clear()
        svd_pipe.decode_latents(latents, 4, decode_chunk_size=3)
    assert chunks == [2, 2]  # diffusers: 3 and 1
    assert speed.even_chunks(25, 8) == [5] * 5  # one shape (7, 6, 6, 6 would be two)
    assert speed.even_chunks(24, 7) == [6] * 4
    assert speed.even_chunks(25, 2) == [2] * 12 + [1]  # 13 chunks either way
    assert speed.even_chunks(25, 4) == [4, 4, 4, 4, 3, 3, 3]
    assert speed.even_chunks(14, 14) == [14]


def test_a_finished_compile_is_remembered_per_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    assert not speed.compile_is_cached("svd-xt|1024x576x25|fast")
    speed.mark_compiled("svd-xt|1024x576x25|fast")
    assert speed.compile_is_cached("svd-xt|1024x576x25|fast")
    assert not speed.compile_is_cached("svd-xt|768x432x25|fast")  # another size compiles anew
    monkeypatch.setattr(speed, "lever_code", lambda: "an update's levers")
    assert not speed.compile_is_cached("svd-xt|1024x576x25|fast")  # changed levers: anew


def test_a_diffusers_update_compiles_anew_and_loads_no_saved_compile_of_the_old_one(
        tmp_path, monkeypatch):
    """The blocks' code is diffusers': after an update of it, the studio says it compiles again
    and a saved compile of the old code is not loaded (its file name changes)."""
    import diffusers

    from models import precompiled

    saved_compiles_in(tmp_path, monkeypatch)
    speed.mark_compiled("svd-xt|1024x576x25|fast")
    block = torch.nn.Linear(4, 4)
    precompiled.precompile(block)
    with torch.no_grad():
        block(torch.ones(2, 4))
    before = {p.name for p in precompiled.folder().glob("*.pt")}
    monkeypatch.setattr(diffusers, "__version__", diffusers.__version__ + ".an-update")
    assert not speed.compile_is_cached("svd-xt|1024x576x25|fast")
    block = torch.nn.Linear(4, 4)
    precompiled.precompile(block)
    with torch.no_grad():
        block(torch.ones(2, 4))
    after = {p.name for p in precompiled.folder().glob("*.pt")}
    assert len(before) == 1 and len(after) == 2 and before < after


def test_the_levers_fingerprint_changes_with_their_code_not_with_their_comments(tmp_path):
    """The compile markers carry a fingerprint of the lever code: an update that changes what is
    compiled makes the studio say the first scene compiles again, one that only rewrites
    comments or docstrings does not."""
    def fingerprint(text: str) -> str:
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.py"
        path.write_text(text, encoding="utf-8")
        return speed.code_fingerprint(path)

    code = 'def lever(x):\n    """Doubles."""\n    return x * 2  # twice\n'
    explained = ('"""Levers."""\n# measured again\ndef lever(x):\n    """Doubles x, measured."""'
                 '\n\n    return x * 2  # twice as much\n')
    changed = 'def lever(x):\n    """Doubles."""\n    return x * 3  # twice\n'
    assert fingerprint(code) == fingerprint(explained)
    assert fingerprint(code) != fingerprint(changed)
    assert speed.lever_code() == speed.lever_code() and len(speed.lever_code()) == 16


def test_noise_drawn_ahead_gives_the_same_frames_and_a_clear_error_when_off_plan(
        svd_pipe, answered_draws):
    """The lever's draws (models/noise.py) come from a copy of the call's generator on a thread:
    the same noise augmentation and starting latents as diffusers' own draws, so the same
    frames. A first draw other than planned stands the plan down (the caller draws its own);
    a later one is an error naming both, never other noise than the seed's."""
    import torch

    from models import noise

    plain = frames(svd_pipe)
    assert noise.draw_noise_ahead(svd_pipe)
    assert not noise.draw_noise_ahead(svd_pipe)  # once
    assert np.abs(frames(svd_pipe) - plain).max() == 0
    # the noise augmentation, then the latents (the tiny VAE shrinks frames 4x)
    assert answered_draws == [(1, 3, 64, 64), (1, 4, 4, 16, 16)]

    plan = [((5,), torch.float32), ((2, 3), torch.float32)]
    seeded = torch.Generator().manual_seed(3)
    first, second = (torch.randn(shape, generator=seeded) for shape, _ in plan)
    ahead = noise.NoiseAhead(torch.Generator().manual_seed(3), plan, pin=False)
    assert torch.equal(ahead.take((5,), torch.float32), first)
    with pytest.raises(RuntimeError, match=r"\(2, 4\) torch.float32 asked for after 1 draws "
                                           r"where \(\(2, 3\), torch.float32\)"):
        ahead.take((2, 4), torch.float32)
    ahead = noise.NoiseAhead(torch.Generator().manual_seed(3), plan, pin=False)
    assert ahead.take((5,), torch.float32) is not None
    assert torch.equal(ahead.take((2, 3), torch.float32, "cpu"), second) and ahead.left == 0
    with pytest.raises(RuntimeError, match="after 2 draws where None was planned"):
        ahead.take((2, 3), torch.float32)
    ahead = noise.NoiseAhead(torch.Generator().manual_seed(3), plan, pin=False)
    assert ahead.take((6,), torch.float32) is None and ahead.stood_down
    assert ahead.take((2, 3), torch.float32) is None  # stood down for good


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16", "float16"])
def test_noise_drawn_in_chunks_on_several_threads_is_exactly_the_seeds_noise(dtype_name,
                                                                            monkeypatch):
    """Large draws are cut into chunks drawn on worker threads, each from the generator's state
    at its first value: the values are exactly those of one draw after another from the seed,
    whatever the count (a multiple of 16 or not, so PyTorch's redrawn tail is covered), and so is
    a plan holding a draw too small to cut, which is made whole, in order."""
    import torch

    from models import noise

    dtype = getattr(torch, dtype_name)
    chunks = []
    draw_chunk = noise._draw_chunk
    monkeypatch.setattr(noise, "_workers", lambda: 4)
    monkeypatch.setattr(noise, "_draw_chunk", lambda state, into: (
        chunks.append(into.numel()), draw_chunk(state, into)))
    plan = [((3, 1000), torch.float32), ((2, 5, 103), dtype), ((40, 16), dtype), ((777,), dtype)]
    seeded = torch.Generator().manual_seed(7)
    expected = [torch.randn(shape, generator=seeded, dtype=kind) for shape, kind in plan]
    ahead = noise.NoiseAhead(torch.Generator().manual_seed(7), plan, pin=False, min_chunk=64)
    for (shape, kind), values in zip(plan, expected):
        assert torch.equal(ahead.take(shape, kind), values)
    assert sorted(chunks) == sorted([752, 752, 752, 744, 272, 272, 272, 214, 160, 160, 160, 160,
                                     208, 208, 208, 153])  # every draw cut, on 4 threads
    chunks.clear()
    monkeypatch.setattr(noise, "_workers", lambda: 1)  # one core to spare: drawn in order
    ahead = noise.NoiseAhead(torch.Generator().manual_seed(7), plan, pin=False, min_chunk=64)
    for (shape, kind), values in zip(plan, expected):
        assert torch.equal(ahead.take(shape, kind), values)
    assert chunks == []
    assert noise.cut_into_chunks(3000, 8, 64)[1] == (384, 384)  # cut at multiples of 16
    assert noise.cut_into_chunks(1030, 2, 64) == [(0, 528), (528, 502)]
    assert noise.cut_into_chunks(100, 8, 64) == [(0, 100)]  # under twice the least: whole
    assert noise.cut_into_chunks(16 * 9 + 5, 9, 16)[-1] == (16 * 8, 16 + 5)  # no tail under 16

    plan = [((5,), torch.float32), ((700,), dtype)]  # 5 values: PyTorch's one-by-one draw
    seeded = torch.Generator().manual_seed(8)
    expected = [torch.randn(shape, generator=seeded, dtype=kind) for shape, kind in plan]
    ahead = noise.NoiseAhead(torch.Generator().manual_seed(8), plan, pin=False, min_chunk=64)
    for (shape, kind), values in zip(plan, expected):
        assert torch.equal(ahead.take(shape, kind), values)


def test_a_call_off_the_noise_plan_draws_its_own_noise_and_says_so(svd_pipe, monkeypatch, caplog):
    """Should diffusers' first draw not be the planned one, the clip draws its own noise from the
    seed (the same frames) and the log says the lever stood down."""
    import torch

    from models import noise

    plain = frames(svd_pipe)
    noise.draw_noise_ahead(svd_pipe)
    planned = noise.NoiseAhead.__init__

    def wrong_first_draw(self, generator, draws, pin, min_chunk=None):
        planned(self, generator, [((1, 3, 8, 8), torch.float32)] + draws[1:], pin, min_chunk)

    monkeypatch.setattr(noise.NoiseAhead, "__init__", wrong_first_draw)
    with caplog.at_level("WARNING", logger="models.noise"):
        assert np.abs(frames(svd_pipe) - plain).max() == 0
    assert "draws its own noise" in caplog.text
    assert not noise._planned  # nothing left planned after the call


def test_a_region_that_cannot_be_compiled_ahead_of_time_is_compiled_as_usual_and_the_log_says_so(
        tmp_path, monkeypatch, caplog):
    """A region with a graph break cannot be saved whole: it still runs compiled, with the same
    output, the log names it and says why and that every start traces it again, and no file is
    left."""
    import logging

    import torch

    from models import precompiled

    saved_compiles_in(tmp_path, monkeypatch)
    block, x = Breaks(), torch.randn(3, 4)
    with torch.no_grad():
        eager = block(x)
        precompiled.precompile(block)
        with caplog.at_level(logging.WARNING, logger="models.precompiled"):
            compiled = block(x)
    assert torch.equal(compiled, eager)
    assert "Breaks is compiled the usual way, traced again at every start" in caplog.text
    assert "graph_break" in caplog.text  # the reason: the break, not anything else
    assert not list(precompiled.folder().glob("*.pt"))


def test_saved_compiles_unused_for_a_month_are_deleted_when_one_is_saved(tmp_path, monkeypatch):
    """Each input shape saves its own file; a file no start has loaded for 30 days (an earlier
    version's) goes when a new one is saved, a recent one stays."""
    import os
    import time

    import torch

    from models import precompiled

    saved_compiles_in(tmp_path, monkeypatch)
    folder = precompiled.folder()
    folder.mkdir(parents=True)
    stale, recent = folder / "Old-0.pt", folder / "Recent-0.pt"
    for path, days in ((stale, 31), (recent, 29)):
        path.write_bytes(b"saved by an earlier version")
        os.utime(path, (time.time() - days * 86400,) * 2)
    block = torch.nn.Linear(4, 4)
    precompiled.precompile(block)
    with torch.no_grad():
        for rows in (2, 3):  # two shapes, two files
            assert torch.allclose(block(torch.ones(rows, 4)), block.forward(torch.ones(rows, 4)))
    saved = sorted(p.name for p in folder.glob("Linear-*.pt"))
    assert len(saved) == 2
    assert not stale.exists() and recent.exists()


def test_blocks_alike_but_for_a_setting_the_compiled_code_holds_get_a_file_each(
        tmp_path, monkeypatch, caplog):
    """Two blocks with the same weights' shapes and inputs but another output scale (as SDXL's
    resnet blocks differ) do not share a saved compile, whose code holds the value: each gets
    its own file and its own right output, with no refusal in the log."""

    import torch

    from models import precompiled

    saved_compiles_in(tmp_path, monkeypatch)
    blocks, eager, (compiled,) = scaled_blocks_compiled(caplog, rounds=1)
    assert all(torch.equal(a, b) for a, b in zip(eager, compiled))
    assert "refused" not in caplog.text and "usual way" not in caplog.text
    assert len(list(precompiled.folder().glob("Scaled-*.pt"))) == 2


def test_a_saved_compile_whose_guards_refuse_a_block_falls_back_and_says_so(
        tmp_path, monkeypatch, caplog):
    """Should two blocks that differ in what the compiled code holds ever map to one file (here
    forced by giving every block the same structure), the file's own guards refuse the second:
    it gets its right output from the usual compile, the log says so, and the first block keeps
    its saved compile."""

    from models import precompiled

    saved_compiles_in(tmp_path, monkeypatch)
    monkeypatch.setattr(precompiled, "_structure", lambda module: "one for all")
    blocks, eager, rounds = scaled_blocks_compiled(caplog, rounds=2)
    assert all(torch.equal(a, b) for outputs in rounds for a, b in zip(eager, outputs))
    assert caplog.text.count("the saved compile of Scaled refused its inputs") == 1
    first, second = (list(block._compiled_call_impl.functions.values()) for block in blocks)
    assert first != [blocks[0]._compiled_call_impl._traced_call]  # still the saved compile
    assert second == [blocks[1]._compiled_call_impl._traced_call]
    assert len(list(precompiled.folder().glob("Scaled-*.pt"))) == 1


def test_the_decoders_tuned_compile_is_saved_apart_and_loaded_only_for_tuned_regions(
        tmp_path, monkeypatch):
    """A region compiled with the decoder's kernel tuning (Inductor's, here on the CPU) gives the
    same output as eager and is saved in a file of its own, beside the untuned compile of a block
    alike in all else; a third block, tuned, loads the tuned file and saves nothing new."""
    from models import precompiled

    saved_compiles_in(tmp_path, monkeypatch, backend="inductor")
    torch.manual_seed(0)
    blocks, x = [torch.nn.Linear(4, 4) for _ in range(3)], torch.randn(3, 4)
    with torch.no_grad():
        eager = [block(x) for block in blocks]
        for block, tuning in zip(blocks, (speed.DECODER_TUNING, None, speed.DECODER_TUNING)):
            precompiled.precompile(block, tuning)
        first_two = [block(x) for block in blocks[:2]]
        saved = sorted(precompiled.folder().glob("Linear-*.pt"))
        third = blocks[2](x)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(eager, [*first_two, third]))
    assert len(saved) == 2
    assert sorted(precompiled.folder().glob("Linear-*.pt")) == saved
    assert blocks[2]._compiled_call_impl.functions == blocks[0]._compiled_call_impl.functions


def test_a_loaded_kernel_keeps_the_configuration_tuned_for_it_on_an_older_torch(monkeypatch):
    """With torch 2.11, loading a saved compile dropped what coordinate descent had tuned for a
    kernel with one candidate configuration, so every start tuned the decoder again (40 s). On
    such a torch the lookup is replaced: the tuned configuration is kept and marked tuned (no
    launch tunes it again), and one that is none of the loaded ones is compiled; torch 2.13, which
    has the fix, keeps its own."""
    from types import SimpleNamespace

    from torch._inductor.runtime import triton_heuristics as heuristics

    from models import precompiled

    autotuner = heuristics.CachingAutotuner
    monkeypatch.setattr(autotuner, "recheck_autotune_cache", autotuner.recheck_autotune_cache)
    torch_own = autotuner.recheck_autotune_cache
    monkeypatch.setattr(torch, "__version__", "2.13.0")
    precompiled.keep_tuned_kernels()
    assert autotuner.recheck_autotune_cache is torch_own
    monkeypatch.setattr(torch, "__version__", "2.12.1+cu128")
    precompiled.keep_tuned_kernels()
    assert autotuner.recheck_autotune_cache is precompiled._recheck_autotune_cache

    def config(block: int, tuned: bool = False) -> Any:
        made = heuristics.Config({"XBLOCK": block}, num_warps=4, num_stages=1)
        if tuned:
            made.found_by_coordesc = True
        return made

    def loaded_kernel(block: int) -> Any:
        kernel = SimpleNamespace(compile_results=[SimpleNamespace(config=config(block))],
                                 filename="k.py", inductor_meta={}, fn=SimpleNamespace(fn=1),
                                 _precompile_config=lambda c: SimpleNamespace(config=c))
        kernel.recheck = autotuner.recheck_autotune_cache.__get__(kernel)
        return kernel

    monkeypatch.setattr(heuristics, "check_autotune_cache",
                        lambda configs, *_: ([config(256, tuned=True)], None, {"state": "hit"}))
    same, other = loaded_kernel(256), loaded_kernel(1024)
    for kernel in (same, other):
        kernel.recheck(lambda: None)
        (result,) = kernel.compile_results
        assert result.config.kwargs == {"XBLOCK": 256} and result.config.found_by_coordesc
    monkeypatch.setattr(heuristics, "check_autotune_cache", lambda configs, *_: (configs, None, {}))
    untuned = loaded_kernel(512)
    untuned.recheck(lambda: None)
    assert not getattr(untuned.compile_results[0].config, "found_by_coordesc", False)


def scaled_blocks_compiled(caplog: Any, rounds: int) -> tuple[list, list, list[list]]:
    """Two Scaled blocks (output scales 1 and 2), their eager outputs, and `rounds` rounds of
    their outputs once precompiled, with the log's warnings captured."""
    import logging

    from models import precompiled

    blocks, x = [Scaled(1.0), Scaled(2.0)], torch.randn(3, 4)
    with torch.no_grad():
        eager = [block(x) for block in blocks]
        for block in blocks:
            precompiled.precompile(block)
        with caplog.at_level(logging.WARNING, logger="models.precompiled"):
            outputs = [[block(x) for block in blocks] for _ in range(rounds)]
    return blocks, eager, outputs


def saved_compiles_in(folder: Any, monkeypatch: Any, backend: str = "eager") -> None:
    """This test's saved compiles in `folder`, nothing loaded or announced before it, and
    Dynamo's eager backend unless told (what is tested is mostly Dynamo's part)."""
    from models import precompiled

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(folder / "inductor"))
    monkeypatch.setattr(precompiled, "BACKEND", backend)
    monkeypatch.setattr(precompiled, "_loaded", {})
    monkeypatch.setattr(precompiled, "_told", set())


class Breaks(torch.nn.Module):
    """A block with a graph break (module level: a saved compile names its classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: Any) -> Any:
        x = self.linear(x)
        torch._dynamo.graph_break()
        return x * 2


class Scaled(torch.nn.Module):
    """A block whose output scale is a plain setting, as diffusers' resnet blocks have."""

    def __init__(self, output_scale_factor: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.output_scale_factor = output_scale_factor

    def forward(self, x: Any) -> Any:
        return self.linear(x) / self.output_scale_factor
