"""Nothing lost: a render killed with SIGKILL resumes with only its missing scenes; history
survives concurrent writers and a killed process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.history import History
from pipeline.video_io import probe
from tests.conftest import ROOT, make_board


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env, **kwargs)


@pytest.fixture()
def outputs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "outputs"
    monkeypatch.setenv("STORYREEL_OUTPUTS", str(root))
    return root


@pytest.mark.parametrize("kill_after", ["scene_02.mp4", "scene_03_keyframe.png"])
def test_kill_minus_nine_then_resume_keeps_finished_clips(tmp_path, outputs, tiny_svd,
                                                          tiny_text_to_image, kill_after):
    """Killed right after clip 2, and mid-denoise of scene 3 (each case is three process starts
    or more, so the suite keeps two; a kill before any clip is finished resumes the same way,
    with nothing kept)."""
    board_file = tmp_path / "board.json"
    board_file.write_text(make_board(*({"duration": 1.0} for _ in range(4))).to_json())
    out = tmp_path / "clips"
    command = [sys.executable, "-m", "pipeline", "render", str(board_file), "--out", str(out),
               "--backend", "svd", "--video-model", str(tiny_svd), "--image-model",
               str(tiny_text_to_image), "--width", "64", "--height", "64", "--steps", "3",
               "--frames", "4", "--fps", "4"]  # one SVD run covers a scene's 4 frames
    render = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=os.environ.copy())
    deadline = time.time() + 300
    while not (out / kill_after).exists() and time.time() < deadline:
        time.sleep(0.02)
    render.send_signal(signal.SIGKILL)
    render.wait()
    assert (out / kill_after).exists() and not (out / "scene_04.mp4").exists()
    finished = {p.name: p.read_bytes() for p in out.glob("scene_0?.mp4")
                if p.with_suffix(".json").is_file()}  # a scene is finished once its info exists
    jobs = History(outputs).jobs()
    assert jobs[0]["status"] == "rendering"  # what a crash leaves behind

    if kill_after == "scene_02.mp4":  # (once: each command is a process start)
        listed = cli("history", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == jobs[0]["id"]
        assert json.loads(listed.stdout)[0]["status"] == "interrupted"  # its process is gone

    resumed = cli("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} finished scene(s) kept" in resumed.stdout
    for name, data in finished.items():
        assert (out / name).read_bytes() == data, f"{name} was rendered again"
    assert all(probe(out / f"scene_0{n}.mp4")["frames"] == 4 for n in range(1, 5))
    job = History(outputs).get(jobs[0]["id"])
    assert job["status"] == "done" and set(job["scenes"]) == {"1", "2", "3", "4"}
    if kill_after == "scene_02.mp4":
        again = cli("resume", jobs[0]["id"])  # by id, with nothing left to do
        assert again.returncode == 0 and "rendering nothing" in again.stdout


def test_resume_of_something_unknown_says_what_it_looked_for(tmp_path, outputs):
    done = cli("resume", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "neither a render folder" in done.stderr and len(done.stderr.splitlines()) == 1


WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from pipeline.history import History
history = History({outputs!r})
for i in range({count}):
    job = history.create({name!r} + "-" + str(i), "prompt", {{"title": "t", "scenes": []}})
    history.update(job["id"], status="done")
    print(job["id"], flush=True)  # acknowledged: create and update have returned
    time.sleep({pause})
"""


def test_history_survives_threads_processes_and_a_kill(tmp_path):
    import threading

    outputs = tmp_path / "outputs"
    history = History(outputs)
    acknowledged: list[str] = []

    def thread_writer(n: int) -> None:
        for i in range(15):
            job = history.create(f"thread{n}-{i}", "prompt")
            history.record_scene(job["id"], 1, {"status": "done"})
            acknowledged.append(job["id"])

    steady = subprocess.Popen([sys.executable, "-c", WRITER.format(
        root=str(ROOT), outputs=str(outputs), count=40, name="steady", pause=0.0)],
        stdout=subprocess.PIPE, text=True)
    doomed = subprocess.Popen([sys.executable, "-c", WRITER.format(
        root=str(ROOT), outputs=str(outputs), count=10_000, name="doomed", pause=0.0)],
        stdout=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=thread_writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    doomed.send_signal(signal.SIGKILL)
    for thread in threads:
        thread.join()
    steady_ids = steady.communicate(timeout=300)[0].split()
    doomed_ids = doomed.communicate()[0].split()
    assert steady.returncode == 0 and len(steady_ids) == 40 and doomed_ids

    text = (outputs / "history.json").read_text(encoding="utf-8")
    stored = {job["id"]: job for job in json.loads(text)["jobs"].values()}  # it parses
    for job_id in acknowledged + steady_ids + doomed_ids:
        assert job_id in stored, f"acknowledged write {job_id} was lost"
    assert all(stored[j]["status"] == "done" for j in steady_ids + doomed_ids[:-1])
    assert all(stored[j]["scenes"] == {"1": {"status": "done"}} for j in acknowledged)


def test_films_made_within_one_second_are_listed_newest_first(tmp_path, monkeypatch):
    """History stores `created` to the second; two quick command-line films still open in the
    order they were made (the newest is the first card)."""
    from pipeline import history as history_module

    monkeypatch.setattr(history_module, "now", lambda: "2026-11-27T04:40:30+00:00")
    history = History(tmp_path / "outputs")
    made = [history.create("local", f"film {n}")["id"] for n in range(3)]
    assert [job["id"] for job in history.jobs()] == made[::-1]
    assert [job["id"] for job in History(tmp_path / "outputs").jobs("local")] == made[::-1]
