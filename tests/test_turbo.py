"""Turbo quality: the step-distilled video model (a UNet-only AnimateLCM-SVD-xt over SVD-XT's
parts), its consistency sampler, and the person's choice between turbo and full quality.

A tiny random SVD stands in for SVD-XT, and its UNet saved as one state-dict file stands in for
AnimateLCM-SVD-xt's checkpoint, so the real loading code runs (models/diffusion.py)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_board
from fakehub import FakeHub

ROOT = Path(__file__).resolve().parents[1]
TURBO = "wangfuyun/AnimateLCM-SVD-xt"
TURBO_FILE = "AnimateLCM-SVD-xt-1.1.safetensors"


@pytest.fixture
def store(tmp_path, monkeypatch) -> dict[str, str]:
    """An empty model registry and hub cache of this test's own; no pipeline loaded yet."""
    from huggingface_hub import constants

    from models import diffusion

    env = {"STORYREEL_CACHE": str(tmp_path / "storyreel"), "HF_HOME": str(tmp_path / "hf")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(diffusion, "_loaded", {})
    return env


@pytest.fixture(scope="session")
def turbo_unet(tiny_svd, tmp_path_factory) -> Path:
    """A folder holding a UNet as AnimateLCM publishes it: one .safetensors state dict."""
    from models.random_init import save_unet_only

    return save_unet_only(tiny_svd, tmp_path_factory.mktemp("turbo-unet"), TURBO_FILE)


def register(name: str, folder: Path) -> None:
    from models.store import register as add

    add(name, folder)


# ---- the sampler ---------------------------------------------------------------------------

def test_karras_sigmas_and_time_inputs_match_values_computed_by_hand():
    from models.consistency import ConsistencySampler

    sampler = ConsistencySampler()
    sampler.set_timesteps(4)
    # sigma_i = (700^(1/7) + r_i (0.002^(1/7) - 700^(1/7)))^7, r = 0, 10/39, 20/39, 30/39
    assert sampler.sigmas.tolist() == pytest.approx([700.0, 128.5637, 13.67844, 0.4968784, 0.0],
                                                    rel=1e-5)
    assert sampler.timesteps.tolist() == pytest.approx([1.637770, 1.214106, 0.653955, -0.174852],
                                                       abs=1e-5)  # ln(sigma) / 4
    sampler.set_timesteps(2)
    assert sampler.sigmas.tolist() == pytest.approx([700.0, 13.67844, 0.0], rel=1e-5)
    assert sampler.init_noise_sigma == pytest.approx(math.sqrt(700 ** 2 + 1))
    with pytest.raises(ValueError, match="outside 1-40"):
        sampler.set_timesteps(41)


def test_a_step_is_the_consistency_prediction_renoised_from_the_given_generator():
    from models.consistency import ConsistencySampler, scalings

    assert scalings(1.0, 1.0) == pytest.approx((0.5, -1 / math.sqrt(2)))
    assert scalings(700.0, 1.0) == pytest.approx((1 / 490001, -700 / math.sqrt(490001)))
    sampler = ConsistencySampler()
    sampler.set_timesteps(2)  # sigmas 700, 13.678, 0
    x, f = torch.full((1, 2, 3), 2.0), torch.full((1, 2, 3), -1.0)
    assert sampler.scale_model_input(x).flatten()[0].item() == pytest.approx(2 / math.sqrt(490001))
    sampler.set_noise_generator(torch.Generator().manual_seed(7))
    out = sampler.step(f, sampler.timesteps[0], x)
    x0 = 2 / 490001 + 700 / math.sqrt(490001)  # c_skip * 2 + c_out * (-1)
    z = torch.randn((1, 2, 3), generator=torch.Generator().manual_seed(7))
    assert out.pred_original_sample.flatten()[0].item() == pytest.approx(x0, rel=1e-5)
    assert torch.allclose(out.prev_sample, x0 + 13.67844 * z, rtol=1e-4)
    last = sampler.step(f, sampler.timesteps[1], out.prev_sample)  # sigma_next 0: no new noise
    sigma = 13.67844
    expected = (out.prev_sample / (sigma ** 2 + 1) + sigma / math.sqrt(sigma ** 2 + 1))
    assert torch.allclose(last.prev_sample, expected, rtol=1e-4)


# ---- the model through the product's own code ------------------------------------------------

def turbo_pipe(store, tiny_svd, turbo_unet):
    from models.diffusion import load_video_pipeline

    register("svd-xt", tiny_svd)
    register("animatelcm-svd-xt", turbo_unet)
    return load_video_pipeline(TURBO)


def clip(pipe, steps: int, seed: int = 5) -> tuple[list, list[int]]:
    from pipeline.animate import VideoParams, svd_frames
    from pipeline.storyboard import Scene

    scene = Scene(description="a fox", visual_prompt="a fox", duration=0.6, seed=seed)
    params = VideoParams(64, 64, 8, 4, steps, 0.02, 1.0, 1.0, 2)
    calls: list[int] = []
    keyframe = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8))
    frames = svd_frames(pipe, keyframe, scene, params, lambda done, total: calls.append(done))
    return frames, calls


@pytest.mark.parametrize("steps", [2, 4, 8])
def test_the_turbo_model_runs_its_steps_through_svd_frames(store, tiny_svd, turbo_unet, steps):
    pipe = turbo_pipe(store, tiny_svd, turbo_unet)
    assert type(pipe.scheduler).__name__ == "ConsistencySampler"
    frames, calls = clip(pipe, steps)
    assert calls == list(range(1, steps + 1))
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)


def test_the_turbo_clip_is_the_same_with_its_noise_drawn_ahead(store, tiny_svd, turbo_unet,
                                                               answered_draws):
    """The fast profiles draw the consistency sampler's noise ahead on a thread (models/noise.py):
    the noise augmentation, the starting latents and the fresh noise after each step but the
    last come from there, and the clip is the seed's, bit for bit."""
    from models import noise
    from pipeline.animate import svd_plan

    pipe = turbo_pipe(store, tiny_svd, turbo_unet)
    plain, _ = clip(pipe, 4)
    assert noise.draw_noise_ahead(pipe)
    ahead, calls = clip(pipe, 4)
    runs, _ = svd_plan(0.6, 4)
    assert len(answered_draws) == runs * 5 and calls == list(range(1, runs * 4 + 1))
    assert all(np.array_equal(a, b) for a, b in zip(plain, ahead))
    assert pipe.scheduler.noise_source is None  # back on its generator between calls


def test_a_seed_gives_the_same_turbo_clip_every_time(store, tiny_svd, turbo_unet):
    pipe = turbo_pipe(store, tiny_svd, turbo_unet)
    first, _ = clip(pipe, 4, seed=5)
    torch.manual_seed(12345)  # the global generator must not matter
    torch.randn(100)
    again, _ = clip(pipe, 4, seed=5)
    other, _ = clip(pipe, 4, seed=6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(first, other)]) > 1


def test_a_unet_file_that_does_not_fit_the_base_is_named(store, tiny_svd, tmp_path):
    from safetensors.torch import save_file

    from models.diffusion import load_video_pipeline
    from models.llm import ModelUnavailable

    save_file({"conv_in.weight": torch.zeros(2, 2)}, tmp_path / TURBO_FILE)
    register("svd-xt", tiny_svd)
    register("animatelcm-svd-xt", tmp_path)
    with pytest.raises(ModelUnavailable, match=f"{TURBO_FILE} does not fit the UNet"):
        load_video_pipeline(TURBO)


# ---- turbo or full: the person's choice ----------------------------------------------------

def render(tmp_path: Path, **settings):
    from pipeline.render import RenderSettings, render_storyboard

    board = make_board({"duration": 1.0, "keyframe": str(key_image(tmp_path))})
    defaults = dict(backend="svd", width=64, height=64, frames=6, fps=8)  # one run a scene
    events = list(render_storyboard(board, tmp_path / "clips",
                                    RenderSettings(**{**defaults, **settings})))
    return events, json.loads((tmp_path / "clips" / "scene_01.json").read_text())


def key_image(tmp_path: Path) -> Path:
    path = tmp_path / "key.png"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(path)
    return path


def test_turbo_is_the_default_when_its_weights_are_here_and_the_clip_records_it(
        store, tiny_svd, turbo_unet, tmp_path):
    register("svd-xt", tiny_svd)
    register("animatelcm-svd-xt", turbo_unet)
    events, info = render(tmp_path)
    assert events[-1].done == [1]
    assert info["quality"] == "turbo" and info["video_model"] == TURBO
    svd = info["svd"]
    assert svd["num_inference_steps"] == 4 and svd["sampler"] == "ConsistencySampler"
    assert svd["min_guidance_scale"] == svd["max_guidance_scale"] == 1.0  # batch 1, no guidance
    _, full = render(tmp_path, quality="full", steps=3)  # SVD-XT, its Euler steps, guidance
    assert full["quality"] == "full" and full["svd"]["num_inference_steps"] == 3
    assert full["svd"]["sampler"] == "EulerDiscreteScheduler"
    assert full["video_model"] == "stabilityai/stable-video-diffusion-img2vid-xt"
    assert full["svd"]["max_guidance_scale"] == 3.0 and full["svd"]["runs"] == 1


def test_without_the_turbo_weights_full_is_used_and_the_notice_says_how_to_get_turbo(
        store, tiny_svd, tmp_path):
    from pipeline.events import Notice

    register("svd-xt", tiny_svd)
    events, info = render(tmp_path, steps=2)
    assert info["quality"] == "full"
    notes = " ".join(e.message for e in events if isinstance(e, Notice))
    assert "turbo model (animatelcm-svd-xt" in notes
    assert "python -m models download animatelcm-svd-xt" in notes


def test_asking_for_what_cannot_be_is_refused_with_the_reason(store, tiny_svd, turbo_unet,
                                                                 tmp_path):
    from pipeline.render import RenderError, RenderSettings

    with pytest.raises(ValueError, match="turbo quality runs 2-8 steps"):
        RenderSettings(quality="turbo", steps=25).check()
    with pytest.raises(ValueError, match="quality 'fastest' is not one of"):
        RenderSettings(quality="fastest").check()
    register("svd-xt", tiny_svd)
    with pytest.raises(RenderError, match="does not fit video model"):
        render(tmp_path, quality="turbo", video_model=str(tiny_svd))
    with pytest.raises(RenderError, match="runs 2-8 steps"):
        render(tmp_path, video_model=str(turbo_unet), steps=20)


def test_the_command_line_takes_quality_and_the_film_records_it(store, tiny_svd, turbo_unet,
                                                                   tmp_path, capsys):
    from pipeline.cli import main

    register("svd-xt", tiny_svd)
    register("animatelcm-svd-xt", turbo_unet)
    board = make_board({"duration": 1.0, "keyframe": str(key_image(tmp_path))},
                       {"duration": 1.0, "keyframe": str(key_image(tmp_path))})
    (tmp_path / "board.json").write_text(board.to_json())
    common = ["--backend", "svd", "--width", "64", "--height", "64", "--frames", "6", "--fps", "8"]
    assert main(["render", str(tmp_path / "board.json"), "--out", str(tmp_path / "clips"),
                 "--quality", "turbo", *common]) == 0
    assert main(["assemble", str(tmp_path / "board.json"), "--clips", str(tmp_path / "clips"),
                 "--out", str(tmp_path / "film.mp4")]) == 0
    film = json.loads((tmp_path / "film.json").read_text())
    assert film["quality"] == "turbo"
    assert [s["quality"] for s in film["scenes"]] == ["turbo", "turbo"]
    with pytest.raises(SystemExit) as refused:
        main(["render", str(tmp_path / "board.json"), "--out", str(tmp_path / "c2"),
              "--quality", "best"])
    assert refused.value.code == 2 and "--quality" in capsys.readouterr().err


# ---- the model manager -----------------------------------------------------------------------

def models_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})


def test_the_benchmarks_stand_in_leaves_the_persons_model_store_alone(store, tiny_svd, tmp_path,
                                                                     monkeypatch):
    """bench/make_gpu.py and bench/svd_profiles.py --quality turbo register random weights as
    SVD-XT. A person who runs them keeps their own SVD-XT registration (else their next films
    would be noise) and their compile cache; the benchmark's process uses a store of its own."""
    import shutil

    from models import diffusion
    from models.registry import SVD_XT
    from models.store import registered_folder, registry_file

    sys.path.insert(0, str(ROOT / "bench"))
    from common import turbo_stand_in

    theirs = registry_file()
    register("svd-xt", tiny_svd)  # the person's own SVD-XT
    before = theirs.read_bytes()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset below, restored after the test")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    random_svd = shutil.copytree(tiny_svd, tmp_path / "bench" / "random-svd")

    turbo = turbo_stand_in(random_svd)
    assert theirs.read_bytes() == before
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(theirs.parent / "inductor")
    assert registered_folder(SVD_XT.repo_id) == random_svd  # for the benchmark's process only
    assert diffusion.is_turbo(str(turbo)) and diffusion.is_available(str(turbo))


def test_models_list_add_and_doctor_know_the_turbo_model(store, tiny_svd, turbo_unet, tmp_path):
    listed = models_cli("list", env=store)
    row = [line for line in listed.stdout.splitlines() if line.startswith("animatelcm-svd-xt")]
    assert row and "stable-video-diffusion-community" in row[0] and row[0].endswith("no")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = models_cli("add", "animatelcm-svd-xt", str(empty), env=store)
    assert refused.returncode == 2 and "holds no UNet" in refused.stderr
    assert models_cli("add", "animatelcm-svd-xt", str(turbo_unet), env=store).returncode == 0
    from models.download import integrity_problem
    from models.registry import ANIMATELCM_SVD_XT

    problem = integrity_problem(ANIMATELCM_SVD_XT)  # its UNet is here, SVD-XT's parts are not
    assert problem and problem.startswith("svd-xt, whose image encoder and VAE it uses")
    register("svd-xt", tiny_svd)
    assert integrity_problem(ANIMATELCM_SVD_XT) is None
    listed = models_cli("list", env=store)
    assert [line for line in listed.stdout.splitlines()
            if line.startswith("animatelcm-svd-xt")][0].endswith("yes")


def test_download_fetches_the_unet_file_and_reuses_svd_xt(store, tiny_svd, turbo_unet):
    register("svd-xt", tiny_svd)
    hub = FakeHub(turbo_unet, TURBO)
    try:
        done = models_cli("download", "animatelcm-svd-xt", "--endpoint", hub.url,
                          env={**store, "HF_HUB_OFFLINE": "0"})
    finally:
        hub.close()
    assert done.returncode == 0, done.stderr
    assert hub.fetched == [TURBO_FILE]  # the UNet only: SVD-XT's parts were here already
    listed = models_cli("list", env=store)
    assert [line for line in listed.stdout.splitlines()
            if line.startswith("animatelcm-svd-xt")][0].endswith("yes")


def test_download_without_svd_xt_fetches_its_parts_and_says_when_they_are_gated(store, turbo_unet):
    hub = FakeHub(turbo_unet, TURBO)  # serves the turbo repository only: SVD-XT is refused
    try:
        done = models_cli("download", "animatelcm-svd-xt", "--endpoint", hub.url,
                          env={**store, "HF_HUB_OFFLINE": "0"})
    finally:
        hub.close()
    assert done.returncode == 2
    assert "stabilityai/stable-video-diffusion-img2vid-xt" in done.stderr


# ---- the studio ------------------------------------------------------------------------------

def test_the_studio_quality_choice_reaches_the_render(store, tiny_svd, turbo_unet, tmp_path,
                                                      monkeypatch, studio_plans_by_rule):
    from gradio_client import Client

    from app import create_studio
    from pipeline.render import RenderSettings

    register("svd-xt", tiny_svd)
    register("animatelcm-svd-xt", turbo_unet)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    defaults = RenderSettings(backend="svd", quality="full", width=64, height=64, frames=4, fps=8,
                              image_model=str(tiny_svd.parent / "no-such-model"))
    demo, launch = create_studio(tmp_path / "outputs", defaults)
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    client = Client(url, verbose=False)
    try:
        api = client.view_api(return_format="dict", print_info=False)
        names = [p["parameter_name"] for p in api["named_endpoints"]["/render"]["parameters"]]
        assert names[:3] == ["job_id", "table", "quality"]
        _, table, job_id, _ = client.predict("A fox explores a snowy village", "cinematic", 1, 2,
                                             api_name="/plan")
        from gradio_client import handle_file

        table = client.predict(job_id, table, 1, handle_file(str(key_image(tmp_path))),
                               api_name="/upload_keyframe")  # no keyframe model here
        list(client.submit(job_id, table, "turbo", api_name="/render"))
    finally:
        client.close()
        demo.close()
    info = json.loads(next((tmp_path / "outputs").rglob("scene_01.json")).read_text())
    assert info["quality"] == "turbo" and info["svd"]["num_inference_steps"] == 4
