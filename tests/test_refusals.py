"""Bad input never becomes a traceback: one line naming the scene and field, nothing changed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.history import History
from pipeline.jobs import JobError, Jobs
from pipeline.render import RenderSettings
from tests.conftest import ROOT, make_board


@pytest.mark.parametrize("field, value, words", [
    ("duration", "abc", "scene 2, duration: must be a number"),
    ("duration", -3, "scene 2, duration: -3 s is outside"),
    ("duration", 1e9, "scene 2, duration: 1e+09 s is outside"),
    ("description", "", "scene 2, description: is empty"),
    ("camera", "dolly zoom", "scene 2, camera: 'dolly zoom' is not one of"),
    ("motion", 7, "scene 2, motion: 7 is not one of"),
    ("seed", "lucky", "scene 2, seed: must be a whole number"),
])
def test_cli_refuses_a_bad_storyboard_in_one_line_and_touches_nothing(tmp_path, field, value,
                                                                       words):
    good = json.loads(make_board({}, {}).to_json())
    good["scenes"][1][field] = value
    board_file = tmp_path / "board.json"
    board_file.write_text(json.dumps(good))
    out = tmp_path / "clips"
    out.mkdir()
    earlier = out / "scene_01.mp4"
    earlier.write_bytes(b"an earlier clip")
    done = subprocess.run([sys.executable, "-m", "pipeline", "render", str(board_file), "--out",
                           str(out), "--backend", "animatic"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["scene_01.mp4"]
    assert earlier.read_bytes() == b"an earlier clip"


@pytest.fixture(scope="module")
def job_and_jobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    jobs = Jobs(History(root), RenderSettings(backend="animatic", width=64, height=64, fps=4))
    job = jobs.history.create("ann", "a test", make_board({}).to_dict())
    return job, jobs, root


names = st.one_of(st.sampled_from(["../../escape.png", "a/../../b.png", ".png", "x.PNG",
                                   "photo.jpeg", "évasion.webp", "con.png", "x" * 200 + ".png",
                                   "notes.txt", "archive.png.exe", "image.gif"]),
                  st.text(st.characters(blacklist_characters="/\x00",  # no file has a
                                        blacklist_categories=("Cs",)),  # lone surrogate's name
                          min_size=1, max_size=40))
contents = st.one_of(st.just(b""), st.binary(max_size=2000), st.just("png"), st.just("huge"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, content=contents)
def test_fuzzed_uploads_are_refused_or_kept_safely_inside_the_job(job_and_jobs, tmp_path_factory,
                                                                 name, content):
    job, jobs, root = job_and_jobs
    folder = tmp_path_factory.mktemp("upload")
    upload = folder / Path(name.replace("/", "_")).name if name.strip(". ") else folder / "x"
    if content == "png":
        Image.new("RGB", (8, 8), (1, 2, 3)).save(upload, format="PNG")
    elif content == "huge":
        upload.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(21 * 2**20))
    else:
        upload.write_bytes(content)
    before = {p for p in root.rglob("*") if p.is_file()}
    try:
        value = jobs.add_keyframe("ann", job["id"], 1, upload)
    except JobError as err:
        assert str(err).startswith("scene 1, keyframe:")
        after = {p for p in root.rglob("*") if p.is_file()}
        assert after == before  # nothing written
        return
    kept = (Path(job["dir"]) / value).resolve()
    assert kept.parent == (Path(job["dir"]) / "uploads").resolve()
    assert kept.name.startswith("scene_01.") and kept.is_file()
    with Image.open(kept) as image:
        image.load()
    assert all(p.resolve().is_relative_to(root.resolve()) for p in root.rglob("*"))


def test_someone_elses_job_is_refused_as_if_it_did_not_exist(job_and_jobs, tmp_path):
    job, jobs, _root = job_and_jobs
    picture = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(picture)
    with pytest.raises(JobError, match="does not exist"):
        jobs.add_keyframe("mallory", job["id"], 1, picture)
    with pytest.raises(JobError, match="does not exist"):
        jobs.delete("mallory", job["id"])
    assert jobs.history.get(job["id"]) is not None
