"""Scenes on Ray workers: two fake GPUs on this CPU, tiny random pipelines, the real scheduler.

Ray starts once for the whole module (`ray.init(num_cpus=2, num_gpus=2)`); the workers stay up
between tests, as they do between films in the studio.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from pipeline.events import Notice, RenderFinished, SceneDone, SceneStarted, StepProgress
from pipeline.render import RenderSettings, render_storyboard
from pipeline.video_io import read_frames
from tests.conftest import ROOT, make_board

import ray  # noqa: E402 - installed by `bash scripts/setup.sh --with-ray`


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def store(tiny_svd, tmp_path_factory):
    """Model folders as two nodes have them: svd-xt registered in the first, nothing in the
    second (the other tests name their models by folder, which both workers can read)."""
    from models.store import register

    full, empty = tmp_path_factory.mktemp("node-1"), tmp_path_factory.mktemp("node-2")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYREEL_CACHE", str(full))
        register("svd-xt", tiny_svd)
    return full, empty


@pytest.fixture(scope="module")
def workers(ray_session, store):
    from pipeline.ray_workers import RayWorkers

    full, empty = store
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(empty / "hf")}
    pool = RayWorkers.start(gpus=2, worker_env=[{"STORYREEL_CACHE": str(full), **offline},
                                                {"STORYREEL_CACHE": str(empty), **offline}])
    yield pool
    pool.shutdown()


def svd_settings(tiny_svd, tiny_text_to_image, **changes) -> RenderSettings:
    base = dict(backend="svd", video_model=str(tiny_svd), image_model=str(tiny_text_to_image),
                width=64, height=64, steps=1, frames=6, fps=4, profile="fast")
    return RenderSettings(**{**base, **changes})


def test_two_workers_start_each_on_its_own_gpu(workers):
    assert len(workers.workers) == 2
    assert len({w.name for w in workers.workers}) == 2
    assert len({w.pid for w in workers.workers}) == 2 and os.getpid() not in {
        w.pid for w in workers.workers}
    assert workers.times.ray_s >= 0 and workers.times.workers_s > 0


def test_ray_and_in_process_make_the_same_files(tmp_path, workers, tiny_svd, tiny_text_to_image,
                                               monkeypatch):
    """The same frames, pictures and scene records. Frames are compared as they go into the
    encoder (both paths encode on this machine): x264 does not give the same bytes every time
    for frames this small, not even twice in one process (64x64 noise-like frames: 2-7 runs in
    60 differed, encoding one after another; never at 256x144 or 1024x576), so the clips'
    pixels are not a fair measure of what the workers made."""
    from pipeline import scene_render

    encoded: dict[tuple[str, str], list[np.ndarray]] = {}
    real_encode = scene_render.encode_mp4

    def encode(frames, fps, scratch, name):
        frames = [np.array(f) for f in frames]
        encoded[(scratch.name, name)] = frames
        return real_encode(frames, fps, scratch, name)

    monkeypatch.setattr(scene_render, "encode_mp4", encode)
    red = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(red)
    board = make_board({"seed": 11}, {"keyframe": str(red), "seed": 5})
    settings = svd_settings(tiny_svd, tiny_text_to_image)
    import torch

    from pipeline.render import gpu_thread

    def set_threads(count: int) -> None:  # where this process makes video scenes (torch's CPU
        gpu_thread().submit(torch.set_num_threads, count).result()  # thread count is per thread)

    threads = gpu_thread().submit(torch.get_num_threads).result()
    set_threads(1)  # as a one-CPU worker runs: float sums depend on the thread count
    try:
        here = list(render_storyboard(board, tmp_path / "here", settings))
    finally:
        set_threads(threads)
    there = list(render_storyboard(board, tmp_path / "ray", settings, workers=workers))
    assert here[-1].done == there[-1].done == [1, 2]
    used = {e.worker for e in there if isinstance(e, SceneStarted)}
    assert len(used) == 2  # both GPUs rendered
    for number in range(1, 3):
        name = f"scene_{number:02d}"
        a, b = encoded[("here", f"{name}.mp4")], encoded[("ray", f"{name}.mp4")]
        assert len(a) == len(b) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b)), name
        assert len(read_frames(tmp_path / "here" / f"{name}.mp4")) == len(
            read_frames(tmp_path / "ray" / f"{name}.mp4")) == 4
        for suffix in ("_keyframe.png", "_last.png"):
            assert np.array_equal(np.asarray(Image.open(tmp_path / "here" / f"{name}{suffix}")),
                                  np.asarray(Image.open(tmp_path / "ray" / f"{name}{suffix}")))
        info = [json.loads((tmp_path / d / f"{name}.json").read_text()) for d in ("here", "ray")]
        for meta in info:
            meta.pop("timings"), meta.pop("worker")
        assert info[0] == info[1]


def test_a_continue_scene_waits_for_its_parent_and_starts_from_its_last_frame(
        tmp_path, workers, tiny_svd, tiny_text_to_image):
    board = make_board({"duration": 2.0}, {"keyframe": "continue"}, {},
                       {"keyframe": "continue"})
    events = list(render_storyboard(board, tmp_path, svd_settings(tiny_svd, tiny_text_to_image),
                                    workers=workers))
    order = [(type(e).__name__, e.scene) for e in events if isinstance(e, (SceneStarted,
                                                                            SceneDone))]
    assert order.index(("SceneDone", 1)) < order.index(("SceneStarted", 2))
    assert order.index(("SceneDone", 3)) < order.index(("SceneStarted", 4))
    assert order.index(("SceneStarted", 3)) < order.index(("SceneDone", 1))  # 3 did not wait
    for child in (2, 4):
        last = np.asarray(Image.open(tmp_path / f"scene_{child - 1:02d}_last.png"))
        first = np.asarray(Image.open(tmp_path / f"scene_{child:02d}_keyframe.png"))
        assert np.array_equal(last, first)
    assert events[-1].done == [1, 2, 3, 4]


def test_scenes_stream_back_in_the_order_they_finish(tmp_path, workers, tiny_svd,
                                                    tiny_text_to_image):
    board = make_board({"duration": 4.0}, {"duration": 1.0}, {"duration": 1.0})
    events = list(render_storyboard(board, tmp_path, svd_settings(tiny_svd, tiny_text_to_image),
                                    workers=workers))
    done = [e.scene for e in events if isinstance(e, SceneDone)]
    assert sorted(done) == [1, 2, 3] and done[-1] == 1  # the long first scene finished last
    progress = [e for e in events if isinstance(e, StepProgress)]
    assert {e.scene for e in progress} == {1, 2, 3}  # each worker's progress came through
    for number in done:  # each preview is announced with its own files
        event = next(e for e in events if isinstance(e, SceneDone) and e.scene == number)
        assert event.clip.name == f"scene_{number:02d}.mp4" and event.clip.is_file()


def test_cancel_drops_queued_scenes_and_stops_running_ones(tmp_path, workers, tiny_svd,
                                                          tiny_text_to_image):
    board = make_board(*({"duration": 6.0} for _ in range(5)))
    cancel = threading.Event()
    events = []
    settings = svd_settings(tiny_svd, tiny_text_to_image, steps=8, frames=3)
    for event in render_storyboard(board, tmp_path, settings, cancel=cancel, workers=workers):
        events.append(event)
        if isinstance(event, StepProgress) and event.stage == "video":
            cancel.set()
    finished = events[-1]
    assert isinstance(finished, RenderFinished) and finished.cancelled
    started = {e.scene for e in events if isinstance(e, SceneStarted)}
    assert started <= {1, 2}  # the queued scenes were never sent
    assert finished.done == [] and not list(tmp_path.glob("scene_*.mp4"))
    runs = 6 * 8  # a 6 s scene is several SVD runs of 8 steps: far more steps than it took
    for number in started:
        steps = [e for e in events if isinstance(e, StepProgress) and e.scene == number
                 and e.stage == "video"]
        assert len(steps) < runs // 2, (number, len(steps))


def test_a_worker_killed_mid_scene_has_its_scene_rendered_elsewhere(tmp_path, workers, tiny_svd,
                                                                   tiny_text_to_image):
    board = make_board({"duration": 3.0}, {}, {})
    pids = {w.name: w.pid for w in workers.workers}
    killed = []
    events = []
    for event in render_storyboard(board, tmp_path, svd_settings(tiny_svd, tiny_text_to_image),
                                   workers=workers):
        events.append(event)
        if isinstance(event, SceneStarted) and event.scene == 1:
            victim = event.worker
        if (not killed and isinstance(event, StepProgress) and event.scene == 1
                and event.stage == "video"):
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)
    assert killed
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any(f"{killed[0]} stopped while rendering" in n and "rendered again" in n
               for n in notes), notes
    assert events[-1].done == [1, 2, 3] and not events[-1].failed
    assert all((tmp_path / f"scene_{n:02d}.mp4").is_file() for n in range(1, 4))
    assert len([e for e in events if isinstance(e, SceneStarted) and e.scene == 1]) == 2


def test_a_model_missing_on_one_node_is_reported_with_its_name(tmp_path, workers,
                                                              tiny_text_to_image):
    lacking, having = workers.workers[1].name, workers.workers[0].name
    board = make_board({}, {})
    settings = svd_settings("unused", tiny_text_to_image, video_model="svd-xt")
    events = list(render_storyboard(board, tmp_path, settings, workers=workers))
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any(n.startswith(f"left out of this film: {lacking}") and "not on this machine" in n
               for n in notes), notes
    assert events[-1].done == [1, 2]
    assert {e.worker for e in events if isinstance(e, SceneStarted)} == {having}


def test_gpus_without_ray_gives_the_install_command(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from pipeline.cli import main\n"
            f"sys.exit(main(['make', 'a fox in the snow', '--out', {str(tmp_path / 'f.mp4')!r},"
            " '--gpus', '2']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert "needs Ray" in done.stderr and "setup.sh --with-ray" in done.stderr
    assert not (tmp_path / "f.mp4").exists()
