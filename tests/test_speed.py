"""The speed levers keep the math: the same frames from the same seed, on a tiny random SVD."""
from __future__ import annotations

import numpy as np
import pytest
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
    assert "_storyreel_forward" not in svd_pipe.unet.__dict__
    assert np.abs(plain - frames(svd_pipe)).max() < 1e-4


def test_a_finished_compile_is_remembered_per_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    assert not speed.compile_is_cached("svd-xt|1024x576x25|fast")
    speed.mark_compiled("svd-xt|1024x576x25|fast")
    assert speed.compile_is_cached("svd-xt|1024x576x25|fast")
    assert not speed.compile_is_cached("svd-xt|768x432x25|fast")  # another size compiles anew
