"""Cast and look: the same characters and the same style in every scene.

Tiny random keyframe model and a tiny random IP-Adapter (tests can download nothing), saved as
h94/IP-Adapter lays out its files and registered in the model store, so the product's own
loading code runs. Renders use the animatic backend with the keyframe model: the keyframe is
what the adapter changes, and the animatic is the quickest clip around it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.events import CastDrawn, Notice, RenderFinished, SceneDone
from pipeline.planner import PlanRequest, plan_storyboard
from pipeline.render import RenderSettings, render_storyboard
from pipeline.storyboard import Storyboard, StoryboardError
from tests.conftest import ROOT, make_board

LOOK = "a small orange tabby with a white chest and a red collar"


@pytest.fixture(scope="module")
def tiny_adapter(tiny_text_to_image, tmp_path_factory) -> Path:
    from models.random_init import build_image_adapter

    return build_image_adapter(tmp_path_factory.mktemp("tiny-adapter"), tiny_text_to_image / "unet")


@pytest.fixture(autouse=True)
def keyframe_model_without_adapter(tiny_text_to_image):
    """Each test starts from a keyframe model without the adapter, as a new process would (the
    loaded pipeline is kept between tests, as between films)."""
    from models.adapter import detach
    from models.diffusion import load_image_pipeline

    pipe = load_image_pipeline(str(tiny_text_to_image))
    detach(pipe)
    yield
    detach(pipe)


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A model store of this test's own (nothing registered)."""
    monkeypatch.setenv("STORYREEL_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.fixture
def with_adapter(store, tiny_adapter) -> Path:
    from models.store import register

    register("ip-adapter-sdxl", tiny_adapter)
    return tiny_adapter


def picture(path: Path, colour: tuple[int, int, int], stripes: bool = False) -> Path:
    pixels = np.zeros((64, 64, 3), np.uint8) + np.array(colour, np.uint8)
    if stripes:
        pixels[::8] = 255 - pixels[::8]
    Image.fromarray(pixels).save(path)
    return path


def cast_board(*scenes: dict, cast: list[dict], **fields) -> Storyboard:
    data = make_board(*({k: v for k, v in s.items() if k != "cast"} for s in scenes)).to_dict()
    for scene, given in zip(data["scenes"], scenes):
        scene["cast"] = given.get("cast", [])
    data.update(cast=cast, **fields)
    return Storyboard.from_dict(data)


def render(board: Storyboard, out: Path, tiny_text_to_image: Path, **changes) -> list:
    settings = RenderSettings(**{"backend": "animatic", "image_model": str(tiny_text_to_image),
                                 "width": 64, "height": 64, "fps": 4, "keyframe_steps": 2,
                                 **changes})
    return list(render_storyboard(board, out, settings, base_dir=out.parent))


def keyframe(out: Path, number: int = 1) -> np.ndarray:
    return np.asarray(Image.open(out / f"scene_{number:02d}_keyframe.png").convert("RGB"),
                      dtype=np.int16)


# ---- the storyboard ----------------------------------------------------------------------------


def test_the_planner_proposes_the_subject_as_cast_in_every_scene_that_shows_it():
    board = plan_storyboard(PlanRequest("an orange cat explores a sunny garden", scenes=4,
                                        use_model=False, seed=3))
    assert [m.name for m in board.cast] == ["Orange cat"]
    assert board.cast[0].look == "orange cat" and board.cast[0].reference is None
    assert all(scene.cast == ["Orange cat"] for scene in board.scenes
               if "orange cat" in scene.visual_prompt.lower())
    assert "cast" in board.provenance
    chinese = plan_storyboard(PlanRequest("一只橘猫在花园里探险", scenes=3, use_model=False, seed=3))
    assert chinese.cast and chinese.cast[0].name == "橘猫"  # named in the film's language
    assert chinese.cast[0].look.isascii()                     # looked at by the image model
    places = plan_storyboard(PlanRequest("a forest adventure with a river", scenes=3,
                                         use_model=False, seed=3))
    assert places.cast == []  # a place is a setting, not a character


def test_the_cast_column_survives_edits_and_a_wrong_name_is_named():
    board = cast_board({"cast": "Mimi"}, {}, {"cast": "mimi, Bo"},
                       cast=[{"name": "Mimi", "look": LOOK}, {"name": "Bo", "look": "a grey dog"}])
    assert [s.cast for s in board.scenes] == [["Mimi"], [], ["Mimi", "Bo"]]
    rows = board.to_rows()
    column = rows[0].index("Mimi")
    rows[1][column] = "Bo，Mimi"  # a Chinese comma separates names too
    edited = Storyboard.from_json(board.with_rows(rows).to_json())  # edit, save, load
    assert [s.cast for s in edited.scenes] == [["Mimi"], ["Bo", "Mimi"], ["Mimi", "Bo"]]
    rows[1][column] = "Bob"
    with pytest.raises(StoryboardError) as refused:
        board.with_rows(rows)
    assert "scene 2, cast: 'Bob' is not in the film's cast (Mimi, Bo)" in str(refused.value)
    with pytest.raises(StoryboardError, match="cast 2, name: 'mimi' is in the cast twice"):
        cast_board({}, cast=[{"name": "Mimi", "look": "a"}, {"name": "mimi", "look": "b"}])
    with pytest.raises(StoryboardError, match="at most 4 characters"):
        cast_board({}, cast=[{"name": f"N{k}", "look": "x"} for k in range(5)])
    with pytest.raises(StoryboardError, match="cast 1, strength: must be a number from 0"):
        cast_board({}, cast=[{"name": "Mimi", "look": "x", "strength": 2}])


def test_a_characters_look_leads_the_prompt_of_each_of_their_scenes(tmp_path, tiny_text_to_image,
                                                                    store):
    board = cast_board({"cast": "Mimi", "visual_prompt": "sleeping on a windowsill"},
                       {"visual_prompt": "an empty garden"},
                       {"cast": "Mimi", "visual_prompt": "chasing a butterfly"},
                       cast=[{"name": "Mimi", "look": LOOK}])
    events = render(board, tmp_path / "out", tiny_text_to_image)
    assert events[-1].done == [1, 2, 3]
    prompts = [json.loads((tmp_path / "out" / f"scene_{n:02d}.json").read_text())
               ["keyframe_prompt"] for n in (1, 2, 3)]
    assert prompts[0].startswith(LOOK) and prompts[2].startswith(LOOK)
    assert LOOK not in prompts[1]


# ---- the adapter -------------------------------------------------------------------------------


def test_reference_pictures_steer_the_keyframe_and_strength_0_is_the_plain_keyframe(
        tmp_path, tiny_text_to_image, with_adapter):
    red = picture(tmp_path / "red.png", (200, 40, 40))
    blue = picture(tmp_path / "blue.png", (30, 60, 220), stripes=True)
    plain = make_board({"seed": 7, "visual_prompt": "a cat"})
    render(plain, tmp_path / "plain", tiny_text_to_image)

    def with_picture(reference: Path, strength: float, name: str) -> np.ndarray:
        board = cast_board({"seed": 7, "visual_prompt": "a cat", "cast": "Mimi"},
                           cast=[{"name": "Mimi", "look": "a cat", "reference": str(reference),
                                  "strength": strength}])
        events = render(board, tmp_path / name, tiny_text_to_image)
        assert events[-1].done == [1], events
        info = json.loads((tmp_path / name / "scene_01.json").read_text())
        assert ("Mimi" in info["keyframe"]) == (strength > 0)
        return keyframe(tmp_path / name)

    by_red, by_blue = with_picture(red, 0.8, "red"), with_picture(blue, 0.8, "blue")
    assert np.abs(by_red - by_blue).mean() > 2     # two references, two keyframes
    assert np.abs(by_red - keyframe(tmp_path / "plain")).mean() > 2
    assert np.array_equal(with_picture(red, 0.0, "off"), keyframe(tmp_path / "plain"))


def test_a_keyframe_steered_by_pictures_is_the_same_with_attention_called_directly(
        tmp_path, tiny_text_to_image, with_adapter):
    """The compiled profiles call the keyframe model's attentions without diffusers' signature
    check (models.speed.attention_calls_direct): with the adapter's image tokens too, the same
    keyframe."""
    from diffusers.models.attention_processor import Attention

    from models import speed
    from models.diffusion import load_image_pipeline

    red = picture(tmp_path / "red.png", (200, 40, 40))
    board = cast_board({"seed": 7, "visual_prompt": "a cat", "cast": "Mimi"},
                       cast=[{"name": "Mimi", "look": "a cat", "reference": str(red)}])
    render(board, tmp_path / "checked", tiny_text_to_image)
    unet = load_image_pipeline(str(tiny_text_to_image)).unet
    try:
        assert speed.attention_calls_direct(unet) > 0
        events = render(board, tmp_path / "direct", tiny_text_to_image)
    finally:
        for module in unet.modules():  # as a new process loads it, for the next tests
            if isinstance(module, Attention):
                module.__class__ = Attention
    assert events[-1].done == [1]
    info = json.loads((tmp_path / "direct" / "scene_01.json").read_text())
    assert "steered by the pictures of: Mimi" in info["keyframe"]
    assert np.array_equal(keyframe(tmp_path / "direct"), keyframe(tmp_path / "checked"))


def test_the_films_look_steers_every_keyframe_on_the_style_layers(tmp_path, tiny_text_to_image,
                                                                  with_adapter):
    from diffusers import AutoPipelineForText2Image

    from models.adapter import style_layers

    unet = AutoPipelineForText2Image.from_pretrained(tiny_text_to_image).unet
    assert style_layers(unet, 0.5) == {"up": {"block_0": [0.0, 0.5]}}  # one block, not all
    look = picture(tmp_path / "look.png", (240, 200, 20), stripes=True)
    scenes = ({"seed": 3, "visual_prompt": "a hill"}, {"seed": 3, "visual_prompt": "a hill"})
    render(make_board(*scenes), tmp_path / "plain", tiny_text_to_image)
    styled = cast_board(*scenes, cast=[], look_reference=str(look), look_strength=1.0)
    render(styled, tmp_path / "styled", tiny_text_to_image)
    for number in (1, 2):
        assert np.abs(keyframe(tmp_path / "styled", number)
                      - keyframe(tmp_path / "plain", number)).mean() > 0.5


def test_a_missing_adapter_is_named_and_keyframes_use_the_text(tmp_path, tiny_text_to_image,
                                                               store):
    red = picture(tmp_path / "red.png", (200, 40, 40))
    board = cast_board({"cast": "Mimi", "seed": 7, "visual_prompt": "a cat"},
                       cast=[{"name": "Mimi", "look": LOOK, "reference": str(red)}])
    events = render(board, tmp_path / "out", tiny_text_to_image)
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any("image adapter (ip-adapter-sdxl) is not on this machine" in n
               and "python -m models download ip-adapter-sdxl" in n
               and "look text only" in n for n in notes), notes
    assert events[-1].done == [1]


def test_a_cast_films_new_compiles_are_each_announced_once(tmp_path, tiny_text_to_image,
                                                           with_adapter, keyframe_model_compiled):
    """A compiled keyframe model compiles anew for a cast picture's square size and again with
    the picture adapter attached: each is announced before the wait, once per machine."""
    board = cast_board({"cast": "Mimi", "seed": 1}, {"seed": 2},
                       cast=[{"name": "Mimi", "look": LOOK, "seed": 5}])
    from models.adapter import detach
    from models.diffusion import load_image_pipeline

    said = []
    for attempt in ("first", "second"):  # the second as a new process makes it
        detach(load_image_pipeline(str(tiny_text_to_image)))
        events = render(board, tmp_path / attempt, tiny_text_to_image, width=96, height=64)
        assert events[-1].done == [1, 2], events
        said.append([e.message for e in events if isinstance(e, Notice)
                     and "compiling the keyframe model" in e.message])
    assert len(said[0]) == 2, said[0]
    assert "cast picture at 64x64" in said[0][0] and "adapter" not in said[0][0]
    assert "keyframe at 96x64" in said[0][1] and "with the picture adapter" in said[0][1]
    assert said[1] == []


# ---- pictures drawn once, kept, and checked ---------------------------------------------------


def test_a_cast_picture_is_drawn_once_kept_and_used_again_by_resume_and_rerender(
        tmp_path, tiny_text_to_image, with_adapter):
    from pipeline.history import History
    from pipeline.jobs import Jobs

    jobs = Jobs(History(tmp_path / "outputs"), RenderSettings(
        backend="animatic", image_model=str(tiny_text_to_image), width=64, height=64, fps=4))
    board = cast_board({"cast": "Mimi", "seed": 1}, {"seed": 2}, {"cast": "Mimi", "seed": 3},
                       cast=[{"name": "Mimi", "look": LOOK, "seed": 5}])
    job = jobs.history.create("ana", "a cat film", board.to_dict())
    events = list(jobs.render("ana", job["id"], board))
    drawn = [e for e in events if isinstance(e, CastDrawn)]
    assert [e.name for e in drawn] == ["Mimi"] and drawn[0].picture.is_file()
    kept = Storyboard.from_dict(jobs.job("ana", job["id"])["storyboard"])
    assert kept.cast[0].reference == "scenes/cast_01.png"  # remembered with the job
    first = drawn[0].picture.read_bytes()
    assert events[-1].film.with_name("film_cast.png").is_file()  # the sheet for a person's eye

    # Re-render one scene from the stored storyboard: the same picture, not a new one.
    again = list(jobs.render("ana", job["id"], kept, only_scenes=[3]))
    assert not any(isinstance(e, CastDrawn) for e in again)
    assert drawn[0].picture.read_bytes() == first
    info = json.loads((Path(job["dir"]) / "scenes" / "scene_03.json").read_text())
    assert "Mimi" in info["keyframe"] and info["cast"] == ["Mimi"]


def test_a_picture_that_cannot_be_read_fails_its_scene_by_name(tmp_path, tiny_text_to_image,
                                                               with_adapter):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    board = cast_board({"cast": "Mimi"}, {}, cast=[{"name": "Mimi", "look": LOOK,
                                                    "reference": str(broken)}])
    events = render(board, tmp_path / "out", tiny_text_to_image)
    finished = [e for e in events if isinstance(e, RenderFinished)][0]
    assert finished.failed == [1] and finished.done == [2]
    failed = [e.message for e in events if type(e).__name__ == "SceneFailed"]
    assert "scene 1, cast Mimi: the picture broken.png cannot be read" in failed[0]
    assert [e.scene for e in events if isinstance(e, SceneDone)] == [2]


# ---- the model manager -------------------------------------------------------------------------


def test_models_list_add_and_doctor_know_the_adapter(tmp_path, tiny_adapter, store):
    env = {**os.environ, "STORYREEL_CACHE": str(store)}

    def models(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "models", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    listed = [line for line in models("list").stdout.splitlines()
              if line.startswith("ip-adapter-sdxl ")]
    assert listed and "apache-2.0" in listed[0] and "h94/IP-Adapter" in listed[0]
    assert listed[0].endswith("no")
    broken = tmp_path / "broken"
    (broken / "sdxl_models").mkdir(parents=True)
    (broken / "sdxl_models" / "ip-adapter_sdxl.safetensors").write_bytes(b"x")
    refused = models("add", "ip-adapter-sdxl", str(broken))
    assert refused.returncode != 0 and "image encoder is missing" in refused.stderr
    assert models("add", "ip-adapter-sdxl", str(tiny_adapter)).returncode == 0
    listed = [line for line in models("list").stdout.splitlines()
              if line.startswith("ip-adapter-sdxl ")]
    assert listed[0].endswith("yes")


def test_the_command_line_keeps_a_drawn_picture_for_resume(tmp_path, tiny_text_to_image,
                                                            tiny_adapter):
    """`pipeline render` draws the missing picture once and writes it into its job.json;
    `pipeline resume` renders the missing scene with that picture, drawing nothing."""
    env = {**os.environ, "STORYREEL_CACHE": str(tmp_path / "store"),
           "STORYREEL_OUTPUTS": str(tmp_path / "outputs")}
    subprocess.run([sys.executable, "-m", "models", "add", "ip-adapter-sdxl", str(tiny_adapter)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    board = cast_board({"cast": "Mimi", "seed": 1}, {"cast": "Mimi", "seed": 2},
                       cast=[{"name": "Mimi", "look": LOOK, "seed": 9}])
    path = tmp_path / "film.json"
    path.write_text(board.to_json(), encoding="utf-8")
    out = tmp_path / "render"

    def pipeline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    first = pipeline("render", str(path), "--out", str(out), "--backend", "animatic",
                     "--image-model", str(tiny_text_to_image), "--width", "64", "--height",
                     "64", "--fps", "4", "--scene", "1")
    assert first.returncode == 0, first.stderr
    assert "cast: Mimi's picture drawn from their look" in first.stdout
    manifest = json.loads((out / "job.json").read_text(encoding="utf-8"))
    reference = manifest["storyboard"]["cast"][0]["reference"]
    assert reference and (out / "cast_01.png").is_file()
    drawn = (out / "cast_01.png").read_bytes()
    resumed = pipeline("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "picture drawn" not in resumed.stdout and (out / "scene_02.mp4").is_file()
    assert (out / "cast_01.png").read_bytes() == drawn
    info = json.loads((out / "scene_02.json").read_text(encoding="utf-8"))
    assert "Mimi" in info["keyframe"]


def test_draw_a_new_picture_now_renders_no_scene(tmp_path, tiny_text_to_image, with_adapter):
    """The Cast panel's *Draw a new picture*: the member's picture is drawn at once from their
    look (a new seed, a new picture), kept with the job, and no scene is rendered."""
    from pipeline.history import History
    from pipeline.jobs import Jobs

    jobs = Jobs(History(tmp_path / "outputs"), RenderSettings(
        backend="animatic", image_model=str(tiny_text_to_image), width=64, height=64, fps=4))
    board = cast_board({"cast": "Mimi"}, cast=[{"name": "Mimi", "look": LOOK, "seed": 5}])
    job = jobs.history.create("ana", "a cat film", board.to_dict())
    first = [e for e in jobs.draw_cast("ana", job["id"]) if isinstance(e, CastDrawn)]
    picture = first[0].picture.read_bytes()
    kept = Storyboard.from_dict(jobs.job("ana", job["id"])["storyboard"])
    assert kept.cast[0].reference == "scenes/cast_01.png"
    assert not list((Path(job["dir"]) / "scenes").glob("scene_*"))  # no scene rendered
    again = kept.with_cast_member("Mimi", reference=None, seed=6)
    jobs.history.update(job["id"], storyboard=again.to_dict())
    second = [e for e in jobs.draw_cast("ana", job["id"]) if isinstance(e, CastDrawn)]
    assert second and second[0].picture.read_bytes() != picture
