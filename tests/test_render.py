"""The renderer: animatic and SVD backends, keyframes, cancel, failures, out-of-memory."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from pipeline import scene_render
from pipeline.events import (Notice, RenderFinished, SceneDone, SceneFailed, SceneStarted,
                             StepProgress)
from pipeline.render import RenderError, RenderSettings, render_storyboard
from pipeline.video_io import moov_before_mdat, probe, read_frames
from tests.conftest import ROOT, make_board

SMALL = dict(width=128, height=72, fps=12)


def run(board, out, **settings):
    return list(render_storyboard(board, out, RenderSettings(**settings)))


def test_animatic_writes_browser_playable_clips_of_exact_length(tmp_path):
    board = make_board({"duration": 1.5, "camera": "zoom in"}, {"duration": 2.0, "camera": "pan"})
    events = run(board, tmp_path, backend="animatic", **SMALL)
    order = [(type(e), e.scene) for e in events if isinstance(e, (SceneStarted, SceneDone))]
    for number in (1, 2):  # each scene starts, then is done (scene 1 may encode while 2 starts)
        assert order.index((SceneStarted, number)) < order.index((SceneDone, number))
    assert len(order) == 4 and isinstance(events[-1], RenderFinished)
    assert events[-1].done == [1, 2]
    for number, seconds in ((1, 1.5), (2, 2.0)):
        clip = tmp_path / f"scene_{number:02d}.mp4"
        info = probe(clip)
        assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
        assert (info["width"], info["height"]) == (128, 72)
        assert info["frames"] == round(seconds * 12)
        assert moov_before_mdat(clip)
        assert (tmp_path / f"scene_{number:02d}_keyframe.png").is_file()
        assert (tmp_path / f"scene_{number:02d}_last.png").is_file()
        meta = json.loads((tmp_path / f"scene_{number:02d}.json").read_text())
        assert meta["backend"] == "animatic" and "not generated video" in meta["label"]
        assert meta["keyframe"] == "title card"
    assert any(isinstance(e, Notice) and "title card" in e.message for e in events)


@pytest.mark.parametrize("camera, moves", [("static", False), ("zoom in", True), ("pan", True),
                                           ("aerial view", True), ("zoom out", True)])
def test_animatic_follows_the_camera(tmp_path, camera, moves):
    rng = np.random.default_rng(0)
    picture = tmp_path / "still.png"
    Image.fromarray(rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)).save(picture)
    board = make_board({"camera": camera, "keyframe": str(picture), "duration": 1.0})
    run(board, tmp_path / "out", backend="animatic", **SMALL)
    frames = read_frames(tmp_path / "out" / "scene_01.mp4")
    change = np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean()
    assert (change > 10) == moves, change


def test_uploaded_keyframe_that_is_not_an_image_fails_only_its_scene(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    board = make_board({}, {"keyframe": str(fake)}, {})
    events = run(board, tmp_path / "out", backend="animatic", **SMALL)
    failed = [e for e in events if isinstance(e, SceneFailed)]
    assert [f.scene for f in failed] == [2]
    assert "scene 2, keyframe" in failed[0].message and "not an image" in failed[0].message
    assert events[-1].done == [1, 3] and events[-1].failed == [2]


def test_continue_starts_from_the_previous_last_frame(tmp_path):
    board = make_board({"camera": "zoom in"}, {"keyframe": "continue"})
    run(board, tmp_path, backend="animatic", **SMALL)
    last = np.asarray(Image.open(tmp_path / "scene_01_last.png"))
    start = np.asarray(Image.open(tmp_path / "scene_02_keyframe.png"))
    assert np.array_equal(last, start)


def test_svd_backend_loads_a_saved_pipeline_and_honours_the_duration(tmp_path, tiny_svd,
                                                                     tiny_text_to_image):
    board = make_board({"duration": 1.0, "motion": "high"}, {"duration": 1.25, "motion": "low"})
    events = run(board, tmp_path, backend="svd", video_model=str(tiny_svd),
                 image_model=str(tiny_text_to_image), width=64, height=64, steps=2, frames=4,
                 fps=8)
    assert events[-1].done == [1, 2], [e for e in events if isinstance(e, SceneFailed)]
    meta = json.loads((tmp_path / "scene_01.json").read_text())
    assert meta["backend"] == "svd" and meta["video_model"] == str(tiny_svd)
    assert meta["keyframe"].startswith("generated")
    assert meta["svd"]["motion_bucket_id"] == 200 and meta["svd"]["runs"] == 2
    assert json.loads((tmp_path / "scene_02.json").read_text())["svd"]["motion_bucket_id"] == 60
    assert probe(tmp_path / "scene_01.mp4")["frames"] == 8
    assert probe(tmp_path / "scene_02.mp4")["frames"] == 10
    video_steps = [e.step for e in events if isinstance(e, StepProgress) and e.scene == 1
                   and e.stage == "video"]
    assert video_steps == [1, 2, 3, 4]  # two runs of two steps: the scene was continued


def test_the_first_compiled_keyframe_is_announced_once(tmp_path, tiny_svd, tiny_text_to_image,
                                                       keyframe_model_compiled):
    """Where the profile compiles the keyframe model (on a GPU), the first render of a size says
    its first keyframe takes longer; once it is made, later renders find the compile cached."""
    board = make_board({"duration": 1.0}, {"duration": 1.0})
    said = []
    for attempt in ("first", "second"):
        events = run(board, tmp_path / attempt, backend="svd", video_model=str(tiny_svd),
                     image_model=str(tiny_text_to_image), width=64, height=64, steps=2,
                     frames=3, fps=6)
        assert events[-1].done == [1, 2]
        said.append([e for e in events if isinstance(e, Notice)
                     and "compiling the keyframe model" in e.message])
    assert len(said[0]) == 1 and said[0][0].scene == 1
    assert "keyframe at 64x64" in said[0][0].message
    assert "takes about a minute longer" in said[0][0].message
    assert said[1] == []


def test_svd_is_conditioned_on_the_keyframe(tmp_path, tiny_svd):
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(red)
    Image.new("RGB", (64, 64), (30, 30, 220)).save(blue)
    board = make_board({"keyframe": str(red)}, {"keyframe": str(blue)})
    run(board, tmp_path / "out", backend="svd", video_model=str(tiny_svd), width=64, height=64,
        steps=2, frames=3, fps=4)
    first = read_frames(tmp_path / "out" / "scene_01.mp4")
    second = read_frames(tmp_path / "out" / "scene_02.mp4")
    assert np.abs(first[0].astype(int) - second[0].astype(int)).mean() > 5


def test_a_clip_is_encoded_while_the_next_scene_is_being_made(tmp_path, monkeypatch):
    """The GPU does not wait for the encoder: scene 2's frames start before scene 1's clip is
    written, and both clips come out whole."""
    real_write, real_frames = scene_render.encode_mp4, scene_render.animatic_frames
    second_begun = threading.Event()
    waited = []

    def frames(keyframe, scene, *args):
        if scene.visual_prompt == "a test scene 2":
            second_begun.set()
        return real_frames(keyframe, scene, *args)

    def write(frames, fps, scratch, name):
        if name == "scene_01.mp4":  # a serial renderer would never get to scene 2 here
            waited.append(second_begun.wait(timeout=30))
        return real_write(frames, fps, scratch, name)

    monkeypatch.setattr(scene_render, "animatic_frames", frames)
    monkeypatch.setattr(scene_render, "encode_mp4", write)
    events = run(make_board({}, {}), tmp_path, backend="animatic", **SMALL)
    assert waited == [True]
    assert events[-1].done == [1, 2]
    assert [probe(tmp_path / f"scene_0{n}.mp4")["frames"] for n in (1, 2)] == [12, 12]


def test_cancel_keeps_finished_scenes_and_drops_the_one_in_flight(tmp_path, tiny_svd):
    board = make_board({}, {}, {})
    cancel = threading.Event()
    events = []
    settings = RenderSettings(backend="svd", video_model=str(tiny_svd), width=64, height=64,
                              steps=3, frames=3, fps=4)
    red = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (200, 50, 50)).save(red)
    board = make_board({"keyframe": str(red)}, {"keyframe": "continue"}, {"keyframe": "continue"})
    for event in render_storyboard(board, tmp_path / "out", settings, cancel=cancel):
        events.append(event)
        if isinstance(event, StepProgress) and event.scene == 2 and event.step == 1:
            cancel.set()
    finished = events[-1]
    assert finished.cancelled and finished.done == [1]
    assert (tmp_path / "out" / "scene_01.mp4").is_file()
    assert not (tmp_path / "out" / "scene_02.mp4").exists()
    steps_after_cancel = [e for e in events if isinstance(e, StepProgress) and e.scene == 2]
    assert len(steps_after_cancel) == 1  # stopped within one denoising step


def test_out_of_memory_steps_down_a_profile_and_retries(tmp_path, tiny_svd, monkeypatch):
    import torch

    real = scene_render.svd_frames
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args[3].decode_chunk_size)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(scene_render, "svd_frames", flaky)
    red = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (200, 50, 50)).save(red)
    events = run(make_board({"keyframe": str(red)}), tmp_path / "out", backend="svd",
                 video_model=str(tiny_svd), width=64, height=64, steps=1, frames=3, fps=4,
                 profile="fast")
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any("retrying in the balanced profile" in n for n in notes)
    assert events[-1].done == [1] and calls == [8, 4]
    assert json.loads((tmp_path / "out" / "scene_01.json").read_text())["profile"] == "balanced"


def test_missing_or_gated_video_model_says_how_to_get_it(tmp_path):
    board = make_board({})
    with pytest.raises(RenderError, match="accept the licence.*hf auth login"):
        run(board, tmp_path, backend="svd", video_model="stabilityai/stable-video-diffusion-img2vid-xt")
    with pytest.raises(RenderError, match="not on this machine"):
        run(board, tmp_path, backend="svd", video_model=str(tmp_path / "nothing-here"))


def test_auto_backend_on_a_cpu_renders_an_animatic_and_says_so(tmp_path):
    events = run(make_board({}), tmp_path, backend="auto", **SMALL)
    assert any(isinstance(e, Notice) and "animatic" in e.message and "no GPU" in e.message
               for e in events)
    assert isinstance(events[-1], RenderFinished) and events[-1].done == [1]


def test_cli_render_prints_a_line_per_event(tmp_path):
    board_file = tmp_path / "board.json"
    board_file.write_text(make_board({"description": "森林探险的故事从这里开始"}, {}).to_json(),
                          encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipeline", "render", str(board_file), "--out",
                           str(tmp_path / "clips"), "--backend", "animatic", "--width", "128",
                           "--height", "72", "--fps", "12"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("render finished") and "2 scene(s) done" in lines[-1]
    assert sum("done in" in line for line in lines) == 2
    board_file.write_text('{"title": "x", "scenes": [{"description": "", "visual_prompt": "a"}]}')
    bad = subprocess.run([sys.executable, "-m", "pipeline", "render", str(board_file), "--out",
                          str(tmp_path / "clips2")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "scene 1, description: is empty" in bad.stderr
    assert not (tmp_path / "clips2").exists()


def test_forward_chunking_leaves_svd_output_unchanged(tiny_svd):
    """diffusers issue #6258 reported degraded SVD output with forward chunking. It does not
    (same seed, same frames); no profile uses it, because it was 5x slower on an H100."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(str(tiny_svd))
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))

    def frames():
        return pipe(image=image, height=64, width=64, num_frames=4, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="np").frames[0]

    plain = frames()
    pipe.unet.enable_forward_chunking()
    chunked = frames()
    assert np.abs(plain - chunked).max() < 1e-5


def test_a_full_disk_stops_the_job_with_a_clear_message_and_keeps_finished_clips(tmp_path,
                                                                                 monkeypatch):
    import errno

    real = scene_render.encode_mp4
    calls = []

    def filling_up(frames, fps, scratch, name):
        calls.append(name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(frames, fps, scratch, name)

    monkeypatch.setattr(scene_render, "encode_mp4", filling_up)
    events = run(make_board({}, {}, {}), tmp_path, backend="animatic", **SMALL)
    failed = [e for e in events if isinstance(e, SceneFailed)]
    assert len(failed) == 1 and failed[0].scene == 2 and "disk is full" in failed[0].message
    assert events[-1].done == [1] and calls == ["scene_01.mp4", "scene_02.mp4"]
    assert (tmp_path / "scene_01.mp4").is_file() and not (tmp_path / "scene_03.mp4").exists()
