"""The storyboard model: validation messages, JSON and table round trips."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.storyboard import (CAMERAS, MAX_DURATION, MAX_SCENES, MOTIONS, TABLE_COLUMNS,
                                 TRANSITIONS, Scene, Storyboard, StoryboardError, with_scene)


def board(**scene_changes) -> dict:
    scene = {"description": "A fox drinks from the river.", "visual_prompt": "a red fox, river",
             "camera": "close up", "motion": "low", "duration": 4, "transition": "cut",
             "keyframe": None, "seed": 7}
    scene.update(scene_changes)
    return {"title": "Fox", "style": "cinematic", "scenes": [dict(scene), dict(scene)]}


@pytest.mark.parametrize("field, value, words", [
    ("duration", "abc", "must be a number"),
    ("duration", -3, "outside"),
    ("duration", 1e9, "outside"),
    ("duration", float("nan"), "must be a number"),
    ("description", "   ", "is empty"),
    ("camera", "dolly zoom", "is not one of"),
    ("motion", "extreme", "is not one of"),
    ("transition", "wipe", "is not one of"),
    ("seed", 1.5, "whole number"),
    ("seed", -1, "between"),
    ("visual_prompt", 42, "must be text"),
])
def test_a_bad_field_is_named_with_its_scene(field, value, words):
    data = board()
    data["scenes"][1][field] = value
    with pytest.raises(StoryboardError) as err:
        Storyboard.from_dict(data)
    problem = err.value.problems[0]
    assert (problem.scene, problem.field) == (2, field)
    assert words in str(err.value) and str(err.value).startswith(f"scene 2, {field}:")


def test_every_problem_is_reported_at_once():
    data = board()
    data["scenes"][0]["camera"] = "nope"
    data["scenes"][1]["duration"] = "long"
    with pytest.raises(StoryboardError) as err:
        Storyboard.from_dict(data)
    assert [(p.scene, p.field) for p in err.value.problems] == [(1, "camera"), (2, "duration")]


def test_first_scene_cannot_continue_a_previous_one():
    data = board()
    data["scenes"][0]["keyframe"] = "continue"
    with pytest.raises(StoryboardError, match="scene 1, keyframe"):
        Storyboard.from_dict(data)
    data["scenes"][0]["keyframe"] = None
    data["scenes"][1]["keyframe"] = "Continue"
    assert Storyboard.from_dict(data).scenes[1].keyframe == "continue"


def test_too_many_scenes_and_bad_json_are_refused():
    data = board()
    data["scenes"] = data["scenes"] * MAX_SCENES
    with pytest.raises(StoryboardError, match=f"the most a film may have is {MAX_SCENES}"):
        Storyboard.from_dict(data)
    with pytest.raises(StoryboardError, match="not valid JSON"):
        Storyboard.from_json('{"title": ')
    with pytest.raises(StoryboardError, match="unknown|not a scene field"):
        Storyboard.from_dict(board(colour="red"))


def test_lenient_spellings_are_normalised():
    scene = Storyboard.from_dict(board(camera="Close-Up", duration="5s", seed="12")).scenes[0]
    assert (scene.camera, scene.duration, scene.seed) == ("close up", 5.0, 12)


def test_json_round_trip_keeps_everything():
    original = Storyboard.from_dict(board())
    original.notes = ["a note"]
    again = Storyboard.from_json(original.to_json())
    assert again == original


def test_edit_one_scene_validates_it():
    original = Storyboard.from_dict(board())
    edited = with_scene(original, 2, description="A heron lands.", seed=99)
    assert edited.scenes[1].description == "A heron lands." and edited.scenes[0] == original.scenes[0]
    with pytest.raises(StoryboardError, match="scene 2, duration"):
        with_scene(original, 2, duration=MAX_DURATION + 1)


def test_blank_table_rows_are_deleted_scenes():
    original = Storyboard.from_dict(board())
    rows = original.to_rows()
    rows.append([""] * len(TABLE_COLUMNS))
    assert len(original.with_rows(rows).scenes) == 2
    rows[1][TABLE_COLUMNS.index("duration")] = "forever"
    with pytest.raises(StoryboardError, match="scene 2, duration"):
        original.with_rows(rows)


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80).filter(
    lambda s: s.strip())
scenes = st.builds(
    Scene, description=text, visual_prompt=text, camera=st.sampled_from(CAMERAS),
    motion=st.sampled_from(MOTIONS), duration=st.floats(1, 30).map(lambda x: round(x, 3)),
    transition=st.sampled_from(TRANSITIONS), keyframe=st.none(),
    seed=st.integers(0, 2**32 - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(scenes, min_size=1, max_size=MAX_SCENES))
def test_table_rows_round_trip(scene_list):
    original = Storyboard(title="t", style="s", scenes=scene_list)
    normalised = Storyboard.from_dict(original.to_dict())
    assert normalised.with_rows(normalised.to_rows()) == normalised
    assert Storyboard.from_json(normalised.to_json()) == normalised


cells = st.one_of(st.none(), st.text(max_size=30), st.integers(), st.floats(allow_nan=True),
                  st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cells, max_size=len(TABLE_COLUMNS) + 2), max_size=14))
def test_any_edited_table_gives_a_storyboard_or_named_problems(rows):
    original = Storyboard.from_dict(board())
    try:
        edited = original.with_rows(rows)
    except StoryboardError as err:
        assert err.problems and all(str(p) for p in err.problems)
        for problem in err.problems:
            assert problem.scene is None or 1 <= problem.scene <= len(rows)
    else:
        assert 1 <= len(edited.scenes) <= MAX_SCENES
        json.loads(edited.to_json())
