"""The planner: rules, refusals, and the real embedded model."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.beats import detect_language
from pipeline.planner import (MAX_PROMPT_CHARS, PlanRequest, PlanTimings, PromptRejected,
                              plan_storyboard)
from pipeline.storyboard import MAX_SCENES, Storyboard
from tests.conftest import ROOT


@pytest.mark.parametrize("prompt, words", [
    ("", "prompt is empty"),
    ("   \n ", "prompt is empty"),
    ("x" * (MAX_PROMPT_CHARS + 1), "characters long"),
    ("a castle with a beheading", "blocked term"),
    ("制作一段血腥的视频", "blocked term"),
])
def test_unusable_prompts_are_refused_with_a_reason(prompt, words):
    with pytest.raises(PromptRejected, match=words):
        plan_storyboard(PlanRequest(prompt, use_model=False))


def test_rule_based_planner_is_marked_and_valid():
    board = plan_storyboard(PlanRequest("a lighthouse on a stormy island", scenes=4, seconds=20,
                                        seed=5, use_model=False))
    assert board.planner == "rule-based" and any("rule-based" in n for n in board.notes)
    assert len(board.scenes) == 4 and abs(board.total_duration - 20) < 1e-6
    assert len({s.description for s in board.scenes}) == 4
    assert {s.seed for s in board.scenes} == {5}
    Storyboard.from_json(board.to_json())


def test_the_seconds_left_after_rounding_are_spread_half_a_second_at_a_time():
    # 25 s over 6 scenes: 4.5, 4.5, 4, 4, 4, 4 (each fits one SVD-XT run), never one 5 s scene
    # that would take a second run on the GPU
    board = plan_storyboard(PlanRequest("a forest adventure with a river", scenes=6, seconds=25,
                                        use_model=False))
    durations = sorted(s.duration for s in board.scenes)
    assert durations == [4.0, 4.0, 4.0, 4.0, 4.5, 4.5]


def test_scene_count_is_capped_and_the_user_is_told():
    board = plan_storyboard(PlanRequest("熊猫在竹林里", scenes=100, use_model=False))
    assert len(board.scenes) == MAX_SCENES
    assert any(f"at most {MAX_SCENES}" in n for n in board.notes)
    assert len({s.description for s in board.scenes}) == MAX_SCENES


def test_embedded_model_writes_a_valid_english_storyboard(embedded_chat):
    timings = PlanTimings()
    board = plan_storyboard(PlanRequest("A forest adventure with a river and small animals",
                                        scenes=4, seconds=18, seed=11), timings=timings)
    assert "SmolLM2" in board.planner and timings.tokens > 50
    assert board.provenance["description"] == board.planner
    descriptions = [s.description for s in board.scenes]
    assert len(descriptions) == 4 and len(set(descriptions)) == 4 and all(descriptions)
    assert abs(board.total_duration - 18) < 1e-6
    assert all(s.visual_prompt.isascii() for s in board.scenes)


def test_chinese_prompt_gets_chinese_subtitles_and_english_visuals(embedded_chat):
    board = plan_storyboard(PlanRequest("制作一段关于森林探险的短视频，包含河流和小动物", scenes=5, seed=2))
    assert board.language == "zh"
    assert all(detect_language(s.description) == "zh" for s in board.scenes)
    assert len({s.description for s in board.scenes}) == 5
    assert all(s.visual_prompt.isascii() and len(s.visual_prompt) > 20 for s in board.scenes)
    assert "prompt" in board.provenance["description"]
    assert board.provenance["visual_prompt"] == board.planner


def test_streamed_text_is_the_models_output(embedded_chat):
    pieces: list[str] = []
    plan_storyboard(PlanRequest("a kite over a beach", scenes=2, seed=1), on_text=pieces.append)
    streamed = "".join(pieces)
    assert json.loads(streamed)["scenes"] and len(pieces) > 10


def test_a_missing_model_falls_back_to_the_embedded_one_and_says_so(embedded_chat, tmp_path):
    board = plan_storyboard(PlanRequest("a kite over a beach", scenes=2, seed=1,
                                        model=str(tmp_path / "no-such-model")))
    assert "SmolLM2" in board.planner
    assert any("cannot load chat model" in n for n in board.notes)
    assert any("embedded" in n for n in board.notes)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_plan_prints_json_and_refuses_blank_prompts():
    done = run_cli("plan", "a snowy village at night", "--scenes", "3", "--no-model")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["scenes"]) == 3
    blank = run_cli("plan", " ")
    assert blank.returncode == 2
    assert blank.stderr.strip().splitlines() == ["error: prompt is empty: describe the film in a sentence"]


def test_gpu_default_that_is_missing_falls_back_to_the_embedded_model(embedded_chat, monkeypatch):
    import models.llm

    monkeypatch.setattr(models.llm, "default_llm_id", lambda: "Qwen/Qwen3-1.7B")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    board = plan_storyboard(PlanRequest("a kite over a beach", scenes=2, seed=1))
    assert "SmolLM2" in board.planner
    assert any("python -m models download qwen3-1.7b" in n for n in board.notes)


def test_no_model_at_all_means_the_rule_based_planner_says_so(monkeypatch):
    import models.llm

    def missing(_model_id):
        raise models.llm.ModelUnavailable("the embedded planner model is not installed")

    monkeypatch.setattr(models.llm, "load_chat_model", missing)
    board = plan_storyboard(PlanRequest("a kite over a beach", scenes=3, seed=1))
    assert board.planner == "rule-based"
    assert any("not installed" in n for n in board.notes)
    assert any("rule-based" in n for n in board.notes)
