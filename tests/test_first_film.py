"""A new user's first film on a bare machine: no CJK font needed for English, a Chinese film
refused in seconds when the font is missing, the content filter on everything that is drawn or
rendered, no debris after a kill, and a doctor that says what is wrong."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import fonts
from pipeline.assemble import AssemblySettings, assemble_film
from pipeline.history import History
from pipeline.jobs import JobError, Jobs
from pipeline.render import RenderSettings, render_storyboard
from pipeline.storyboard import TABLE_COLUMNS, Storyboard, StoryboardError
from pipeline.video_io import read_frames
from tests.conftest import ROOT, make_board

# Runs the CLI in a fresh process that can see no CJK font: STORYREEL_FONT unset and none of the
# system font paths Storyreel looks at. Only the font that comes with the install is left.
WITHOUT_CJK_FONTS = ("import sys, pipeline.fonts as f; f.CANDIDATES = (); "
                     "from pipeline.cli import main; sys.exit(main(sys.argv[1:]))")
CHINESE_PROMPT = "一只橘猫在雨天的东京街头寻找回家的路，最后在便利店门口睡着了"


def cli_without_cjk_fonts(outputs: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STORYREEL_FONT"}
    env["STORYREEL_OUTPUTS"] = str(outputs)
    return subprocess.run([sys.executable, "-c", WITHOUT_CJK_FONTS, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture()
def no_cjk_fonts(monkeypatch):
    monkeypatch.delenv("STORYREEL_FONT", raising=False)
    monkeypatch.setattr(fonts, "CANDIDATES", ())
    fonts.cjk_font_path.cache_clear()
    fonts._load.cache_clear()
    yield
    fonts.cjk_font_path.cache_clear()
    fonts._load.cache_clear()


def test_an_english_film_needs_no_cjk_font_and_shows_its_subtitles(tmp_path, no_cjk_fonts):
    film = tmp_path / "film.mp4"
    done = cli_without_cjk_fonts(tmp_path / "outputs", "make",
                                 "A forest adventure with a river and small animals",
                                 "--no-model", "--scenes", "3", "--seconds", "6", "--seed", "2",
                                 "--backend", "animatic", "--width", "256", "--height", "144",
                                 "--fps", "8", "--out", str(film))
    assert done.returncode == 0, done.stderr
    board = Storyboard.from_json((tmp_path / "film_scenes" / "storyboard.json").read_text())
    plain = assemble_film(board, tmp_path / "film_scenes", tmp_path / "plain.mp4",
                          AssemblySettings(subtitles=False))
    titled, bare = read_frames(film), read_frames(plain.film)
    assert len(titled) == len(bare) == 6 * 8
    for n in (4, 20, 40):  # one frame in each scene: white subtitle text in the bottom band
        changed = np.abs(titled[n].astype(int) - bare[n]).max(axis=2) > 60
        assert changed[100:].sum() > 150 and changed[:60].sum() == 0


def test_a_chinese_film_without_a_cjk_font_stops_in_seconds_before_any_work(tmp_path):
    started = time.perf_counter()
    done = cli_without_cjk_fonts(tmp_path / "outputs", "make", CHINESE_PROMPT,
                                 "--backend", "animatic", "--out", str(tmp_path / "film.mp4"))
    elapsed = time.perf_counter() - started
    assert done.returncode == 2 and elapsed < 10, (elapsed, done.stderr)
    assert "no font that can draw Chinese" in done.stderr and "fonts-noto-cjk" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "film_scenes").exists()  # no scene rendered, nothing recorded
    assert not (tmp_path / "outputs" / "history.json").exists()
    plan = cli_without_cjk_fonts(tmp_path / "outputs", "plan", CHINESE_PROMPT)
    assert plan.returncode == 2 and "fonts-noto-cjk" in plan.stderr and plan.stdout == ""


def test_render_of_a_chinese_storyboard_without_the_font_renders_nothing(tmp_path):
    board = make_board({"description": "小猫回家了"}, {"description": "The cat sleeps."})
    path = tmp_path / "storyboard.json"
    path.write_text(board.to_json(), encoding="utf-8")
    done = cli_without_cjk_fonts(tmp_path / "outputs", "render", str(path), "--out",
                                 str(tmp_path / "clips"), "--backend", "animatic")
    assert done.returncode == 2 and "fonts-noto-cjk" in done.stderr
    assert not list(tmp_path.glob("clips/*.mp4"))


def test_the_studios_render_button_names_the_missing_font(tmp_path, no_cjk_fonts):
    board = make_board({"description": "小猫回家了"})
    history = History(tmp_path / "outputs")
    job = history.create("local", "小猫", board.to_dict())
    jobs = Jobs(history, RenderSettings(backend="animatic", width=128, height=72, fps=8))
    with pytest.raises(JobError, match="fonts-noto-cjk"):
        jobs.board_from_rows(job, board.to_rows())
    with pytest.raises(JobError, match="fonts-noto-cjk"):
        list(jobs.render("local", job["id"], board))
    assert history.get(job["id"])["status"] == job["status"]  # the job was left as it was


def test_doctor_reports_each_script_on_its_own_line(no_cjk_fonts):
    from pipeline.doctor import check_fonts

    latin, chinese = check_fonts()
    assert latin.ok and "NotoSans" in latin.detail
    assert not chinese.ok and not chinese.required
    assert "English films render" in chinese.line() and "fonts-noto-cjk" in chinese.line()


def test_doctor_says_when_torch_is_a_cpu_build_on_a_gpu_machine(monkeypatch):
    import torch

    from pipeline import doctor

    monkeypatch.setattr(doctor, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    line = doctor.check_gpu().line()
    assert "torch is a CPU build" in line and "torch.cuda.is_available()" in line


# ---- the content filter reads everything -------------------------------------------------


def test_render_storyboard_refuses_blocked_text_before_any_work(tmp_path):
    board = make_board({}, {"visual_prompt": "a nude figure by the river"})
    with pytest.raises(StoryboardError, match="scene 2, visual_prompt: contains a blocked term"):
        list(render_storyboard(board, tmp_path / "clips", RenderSettings(backend="animatic")))
    assert not (tmp_path / "clips").exists()


def test_a_hand_written_storyboard_with_blocked_text_is_refused_by_name(tmp_path):
    board = make_board({}, {"description": "一段血腥的打斗"})
    path = tmp_path / "storyboard.json"
    path.write_text(board.to_json(), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipeline", "render", str(path), "--out",
                           str(tmp_path / "clips"), "--backend", "animatic"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "scene 2, description: contains a blocked term ('血腥')" in done.stderr
    assert not (tmp_path / "clips").exists()


def test_an_edited_cell_with_blocked_text_is_named_and_nothing_changes(tmp_path):
    board = make_board({}, {})
    history = History(tmp_path / "outputs")
    job = history.create("local", "a fox", board.to_dict())
    rows = board.to_rows()
    rows[1][TABLE_COLUMNS.index("visual_prompt")] = "a corpse and naked bodies"
    with pytest.raises(JobError, match="scene 2, visual_prompt: contains a blocked term"):
        Jobs(history, RenderSettings(backend="animatic")).board_from_rows(job, rows)
    assert history.get(job["id"])["storyboard"] == board.to_dict()


class FakeChat:
    model_id = "fake-chat"
    multilingual = False


def planned_with(monkeypatch, first: list[str], again: list[str], prompt: str):
    """Plan `prompt` with a model whose first answer is `first` (one visual prompt per scene)
    and whose re-asks answer `again`, in order."""
    import models.llm
    from pipeline import planner
    from pipeline.planner import PlanRequest, _Draft

    def draft(text: str) -> _Draft:
        return _Draft(description=text, visual_prompt=text, camera="wide shot",
                      source={"description": "model", "visual_prompt": "model"})

    answers = iter(again)
    asked: list[int] = []
    monkeypatch.setattr(models.llm, "load_chat_model", lambda _id: FakeChat())
    monkeypatch.setattr(planner._SceneWriter, "write_all",
                        lambda self, p, beats: ([draft(t) for t in first], ""))

    def rewrite(self, p, beat, index, count, others):
        asked.append(index)
        return draft(next(answers))

    monkeypatch.setattr(planner._SceneWriter, "rewrite", rewrite)
    board = planner.plan_storyboard(PlanRequest(prompt, scenes=len(first), seed=1,
                                                language="en"))
    return board, asked


def test_blocked_text_the_model_writes_is_asked_again_then_replaced(monkeypatch):
    first = ["A small orange cat walks along a rainy street at night.",
             "Her little coat full of blood, the cat hides under a car.",
             "The cat sleeps in a warm box by the shop door at last."]
    board, asked = planned_with(monkeypatch, first,
                                ["The cat shakes rain from her soft orange coat."],
                                "a lost cat finds her way home in the rain")
    assert asked == [1]
    assert board.scenes[1].description == "The cat shakes rain from her soft orange coat."
    assert any("scene 2" in n and "'blood'" in n and "asked again" in n for n in board.notes)

    board, asked = planned_with(monkeypatch, first, ["A bloody paw print on the pavement."],
                                "a lost cat finds her way home in the rain")
    assert asked == [1]
    assert "blood" not in board.scenes[1].visual_prompt.lower()
    assert board.provenance["visual_prompt"].count("rule-based") == 1
    assert any("scene 2" in n and "twice" in n and "rule-based" in n for n in board.notes)


def test_words_the_person_asked_for_are_theirs_to_keep(monkeypatch):
    board, asked = planned_with(
        monkeypatch, ["A vampire drinks blood under a red moon in the castle.",
                      "The vampire walks the dark castle hall alone at night."], [],
        "a vampire story with blood and a red moon")
    assert asked == [] and "blood" in board.scenes[0].visual_prompt


# ---- no debris -------------------------------------------------------------------------------

DIE_ON_RENAME = ("import os, signal, sys; real = os.replace\n"
                 "def die(src, dst):\n"
                 "    if str(dst).endswith(sys.argv[2]): os.kill(os.getpid(), signal.SIGKILL)\n"
                 "    real(src, dst)\n"
                 "os.replace = die\n")


def test_a_partial_json_left_by_a_kill_goes_with_the_next_write(tmp_path):
    code = DIE_ON_RENAME + ("from pathlib import Path\nfrom models.files import write_json_atomic\n"
                            "write_json_atomic(Path(sys.argv[1]) / 'job.json', {'a': 1})\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), "job.json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".job.json.") and left[0].endswith(".partial")
    from models.files import write_json_atomic

    write_json_atomic(tmp_path / "other.json", {"b": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]


def test_a_partial_clip_left_by_a_kill_goes_when_the_render_resumes(tmp_path):
    board = make_board({}, {})
    (tmp_path / "storyboard.json").write_text(board.to_json(), encoding="utf-8")
    code = DIE_ON_RENAME + (
        "from pathlib import Path\nfrom pipeline.render import RenderSettings, render_storyboard\n"
        "from pipeline.storyboard import Storyboard\n"
        "board = Storyboard.from_json((Path(sys.argv[1]) / 'storyboard.json').read_text())\n"
        "list(render_storyboard(board, Path(sys.argv[1]) / 'clips', RenderSettings("
        "backend='animatic', width=128, height=72, fps=8)))\n")
    with subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "scene_02.mp4"], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as killed:
        _, stderr = killed.communicate(timeout=120)
    assert killed.returncode == -9, stderr
    clips = tmp_path / "clips"
    assert [p.name for p in clips.glob(".*partial*")] == [f".scene_02.{killed.pid}.partial.mp4"]
    events = list(render_storyboard(board, clips, RenderSettings(backend="animatic", width=128,
                                                                 height=72, fps=8,
                                                                 only_scenes=[2])))
    assert events[-1].done == [2]
    assert not list(clips.glob(".*partial*"))
    assert (clips / "scene_02.mp4").is_file()

