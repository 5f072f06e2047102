"""`python -m models download` and `add` against a fake hub on 127.0.0.1 (tests/fakehub.py):
progress, resume after a cut connection, the gated-repository steps, the disk-space refusal,
the ModelScope client, and registered folders that the loaders then open."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakehub import FakeHub

ROOT = Path(__file__).resolve().parents[1]
SVD_XT = "stabilityai/stable-video-diffusion-img2vid-xt"


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> dict[str, str]:
    """Environment for a download: its own HF cache, ModelScope cache and model registry."""
    env = {"HF_HOME": str(tmp_path / "hf"), "STORYREEL_CACHE": str(tmp_path / "storyreel"),
           "MODELSCOPE_CACHE": str(tmp_path / "modelscope"), "HF_HUB_OFFLINE": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from huggingface_hub import constants  # read when it was imported: follow HF_HOME here too

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return env


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})


def kokoro_repository(repo: Path) -> Path:
    """Kokoro-82M's files as its repository lays them out (random bytes for the weights)."""
    (repo / "voices").mkdir(parents=True)
    (repo / "config.json").write_text(json.dumps({"vocab": {"a": 1}, "n_token": 178}))
    (repo / "kokoro-v1_0.pth").write_bytes(os.urandom(300_000))
    (repo / "voices" / "af_heart.pt").write_bytes(os.urandom(2_000))
    return repo


def big_pipeline(folder: Path) -> Path:
    """A keyframe-model folder whose weights file is 26 MB: larger than huggingface_hub's
    10 MB read size, so a connection cut half-way leaves bytes to resume from."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "X", "unet": ["diffusers", "U"]}')
    (folder / "unet" / "config.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(os.urandom(26_000_000))
    return folder


def test_download_from_a_mirror_shows_progress_and_the_model_is_then_present(tiny_svd, isolated):
    hub = FakeHub(tiny_svd, SVD_XT)
    try:
        before = cli("list", env=isolated)
        done = cli("download", "svd-xt", "--endpoint", hub.url, env=isolated)
    finally:
        hub.close()
    assert done.returncode == 0, done.stderr
    shares = [float(part.split("%")[0]) for part in done.stderr.replace("\r", "\n").split("\n")
              if "%" in part]
    assert len(shares) >= 2 and shares == sorted(shares) and shares[-1] == 100.0  # a moving bar
    assert "svd-xt: ready in" in done.stdout and str(Path(isolated["HF_HOME"])) in done.stdout
    assert [l for l in before.stdout.splitlines() if l.startswith("svd-xt")][0].endswith("no")
    after = cli("list", env=isolated)
    assert [l for l in after.stdout.splitlines() if l.startswith("svd-xt")][0].endswith("yes")
    again = subprocess.run([sys.executable, "-m", "models", "download", "svd-xt"], cwd=ROOT,
                           text=True, capture_output=True, timeout=300,
                           env={**os.environ, **isolated, "HF_ENDPOINT": hub.url})
    assert again.returncode == 0  # everything cached: nothing fetched, the hub is not even up


def test_a_cut_connection_resumes_where_it_stopped(tmp_path, isolated):
    repo = big_pipeline(tmp_path / "repo")
    hub = FakeHub(repo, "stabilityai/sdxl-turbo", cut_after=15_000_000)
    try:
        done = cli("download", "sdxl-turbo", "--endpoint", hub.url, env=isolated)
    finally:
        hub.close()
    assert done.returncode == 0, done.stderr
    weights = "unet/diffusion_pytorch_model.safetensors"
    resumed = [r for r in hub.ranges if r.startswith(weights)]
    assert resumed and not resumed[0].endswith("bytes=0-")  # asked only for the missing bytes
    folder = Path(done.stdout.strip().split("ready in ")[1])
    assert (folder / weights).read_bytes() == (repo / weights).read_bytes()


def test_a_gated_repository_gets_the_exact_steps_and_hf_token_opens_it(tiny_svd, isolated):
    hub = FakeHub(tiny_svd, SVD_XT, gated=True, token="hf_accepted")
    try:
        done = cli("download", "svd-xt", "--endpoint", hub.url, env=isolated)
        assert not hub.fetched
        with_token = cli("download", "svd-xt", "--endpoint", hub.url,
                         env={**isolated, "HF_TOKEN": "hf_accepted"})
    finally:
        hub.close()
    assert done.returncode == 2
    assert f"accept its licence at https://huggingface.co/{SVD_XT}" in done.stderr
    assert "hf auth login" in done.stderr and "HF_TOKEN" in done.stderr
    assert with_token.returncode == 0, with_token.stderr


def test_not_enough_disk_refuses_before_fetching_anything(tiny_svd, isolated, monkeypatch):
    from huggingface_hub import constants

    from models import download as dl

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(dl.shutil, "disk_usage",
                        lambda _p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    hub = FakeHub(tiny_svd, SVD_XT)
    try:
        with pytest.raises(dl.DownloadError, match=r"not enough disk space .* needs .* 1\.0 MB|"
                                                   r"not enough disk space .* needs .* free"):
            dl.download("svd-xt", endpoint=hub.url)
    finally:
        hub.close()
    assert not hub.fetched


def test_modelscope_download_resumes_registers_and_loads(tiny_svd, isolated):
    from models import download as dl
    from models.diffusion import is_available
    from models.store import registered_folder

    hub = FakeHub(tiny_svd, "AI-ModelScope/stable-video-diffusion-img2vid-xt", cut_after=3_000_000)
    seen: list[dl.Progress] = []
    try:
        with pytest.raises(dl.DownloadError, match="run the same command again to resume"):
            dl.download("svd-xt", source="modelscope", endpoint=hub.url, on_progress=seen.append)
        assert not is_available(SVD_XT)
        folder = dl.download("svd-xt", source="modelscope", endpoint=hub.url,
                             on_progress=seen.append)
    finally:
        hub.close()
    assert hub.ranges and not hub.ranges[0].endswith("bytes=0-")
    assert seen[-1].done_bytes == seen[-1].total_bytes > 0
    assert folder == registered_folder(SVD_XT) and is_available(SVD_XT)
    for name in ("unet/diffusion_pytorch_model.safetensors", "model_index.json"):
        assert (folder / name).read_bytes() == (tiny_svd / name).read_bytes()
    from diffusers import StableVideoDiffusionPipeline

    from models.store import resolve

    pipe = StableVideoDiffusionPipeline.from_pretrained(resolve("svd-xt"))
    assert pipe.unet.config.in_channels == 8


def test_a_model_without_a_modelscope_copy_says_so(isolated):
    from models import download as dl

    with pytest.raises(dl.DownloadError, match="smollm2-135m ships as a Python package"):
        dl.download("smollm2-135m", source="modelscope")


def test_models_add_registers_a_whole_folder_and_names_what_a_broken_one_lacks(tiny_svd, tmp_path,
                                                                               isolated):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_svd, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    bad = cli("add", "svd-xt", str(broken), env=isolated)
    assert bad.returncode == 2 and "component 'unet' has no weights" in bad.stderr
    assert cli("add", "svd-xt", str(tmp_path / "nowhere"), env=isolated).returncode == 2
    good = cli("add", "svd-xt", str(tiny_svd), env=isolated)
    assert good.returncode == 0, good.stderr
    listing = cli("list", env=isolated).stdout
    assert [l for l in listing.splitlines() if l.startswith("svd-xt")][0].endswith("yes")


@pytest.fixture
def studio_client(tmp_path, monkeypatch, studio_plans_by_rule):
    from gradio_client import Client

    from app import create_studio
    from pipeline.render import RenderSettings

    def start(settings: RenderSettings):
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
        demo, launch = create_studio(tmp_path / "outputs", settings)
        _, url, _ = launch(prevent_thread_lock=True, server_port=None)
        started.append(demo)
        return Client(url, verbose=False)

    started: list = []
    yield start
    for demo in started:
        demo.close()


def test_studio_download_button_streams_progress_and_the_model_turns_present(
        tiny_svd, isolated, studio_client, monkeypatch):
    from pipeline.render import RenderSettings

    hub = FakeHub(tiny_svd, SVD_XT)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        client = studio_client(RenderSettings(backend="animatic", width=128, height=72, fps=12))
        job = client.submit("svd-xt", "hf", api_name="/download_model")
        updates = [u[0] for u in job]
    finally:
        hub.close()
    assert any("%" in u for u in updates[:-1])  # progress arrived before the end
    assert "svd-xt" in updates[-1] and "ready in" in updates[-1]
    system = job.outputs()[-1][1]
    assert f"| {SVD_XT} | video | yes |" in system
    with pytest.raises(Exception, match="choose a missing model"):
        client.predict(None, "hf", api_name="/download_model")


def test_voices_downloaded_in_the_studio_join_the_voice_picker_at_once(tmp_path, isolated,
                                                                       studio_client,
                                                                       monkeypatch):
    """Kokoro fetched with the System tab's Download button: its voices are offered in the
    Create tab's voice picker straight away, not only after the studio is restarted."""
    from pipeline.render import RenderSettings

    repo = kokoro_repository(tmp_path / "kokoro")
    client = studio_client(RenderSettings(backend="animatic", width=128, height=72, fps=12))
    hub = FakeHub(repo, "hexgrad/Kokoro-82M")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        job = client.submit("kokoro-82m", "hf", api_name="/download_model")
        outputs = [list(u) for u in job]
    finally:
        hub.close()
    status, _system, picker = job.outputs()[-1]
    assert "ready in" in status
    offered = [c[0] if isinstance(c, (list, tuple)) else c for c in picker["choices"]]
    assert "kokoro:af_heart" in offered and "auto" in offered
    assert all(u[2] == {"__type__": "update"} for u in outputs[:-1])  # untouched while fetching


def test_render_with_a_missing_video_model_says_which_and_how_to_get_it(studio_client):
    from pipeline.render import RenderSettings

    client = studio_client(RenderSettings(backend="svd", video_model=SVD_XT, width=128,
                                          height=72, fps=12))
    job = client.submit("A fox explores a snowy village", "", 1, 2, api_name="/plan")
    _text, table, job_id, _notes = job.result()
    with pytest.raises(Exception) as refused:
        client.predict(job_id, table, api_name="/render")
    message = str(refused.value)
    assert SVD_XT in message and "python -m models download svd-xt" in message
    assert "Download button in the System tab" in message


def test_doctor_names_a_damaged_model_and_how_to_mend_it(tiny_svd, tmp_path, isolated):
    from pipeline.doctor import check_models

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_svd, damaged)
    assert cli("add", "svd-xt", str(damaged), env=isolated).returncode == 0
    (damaged / "vae" / "diffusion_pytorch_model.safetensors").unlink()  # a later accident
    check = next(c for c in check_models() if c.name == "model svd-xt")
    assert not check.ok and "component 'vae' has no weights" in check.detail
    assert "python -m models download svd-xt" in check.fix


def test_kokoro_downloads_its_checkpoint_and_voices_only(tmp_path, isolated):
    """`models download kokoro-82m` fetches config.json, its .pth and voices/*.pt (not the
    repository's other checkpoints or samples), and the model then counts as present."""
    repo = kokoro_repository(tmp_path / "kokoro")
    (repo / "samples").mkdir()
    (repo / "samples" / "HEARME.wav").write_bytes(os.urandom(50_000))
    hub = FakeHub(repo, "hexgrad/Kokoro-82M")
    try:
        done = cli("download", "kokoro-82m", "--endpoint", hub.url, env=isolated)
    finally:
        hub.close()
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().split("ready in ")[1])
    assert (folder / "voices" / "af_heart.pt").is_file() and (folder / "kokoro-v1_0.pth").is_file()
    assert not (folder / "samples").exists()
    listed = cli("list", env=isolated).stdout.splitlines()
    assert [l for l in listed if l.startswith("kokoro-82m ")][0].endswith("yes")
