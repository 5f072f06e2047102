"""Text a person must read stays whole inside the frame: title cards under every camera move,
burned-in subtitles, posters, in landscape, portrait and square frames. Measured on pixels:
what a frame shows with its text minus what it shows without."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.animate import animatic_frames, animatic_tag
from pipeline.assemble import _poster
from pipeline.keyframes import title_card
from pipeline.lettering import fit_text, wrap
from pipeline.storyboard import CAMERAS, Scene, Storyboard
from pipeline.subtitles import SUBTITLE_STYLES, subtitle_band, subtitle_style, words_of

SIZES = [(1024, 576), (576, 1024), (512, 512)]
TEXTS = {
    "chinese": "一只橘猫在雨天的东京街头寻找回家的路，穿过霓虹灯下的小巷，最后在便利店门口的纸箱里睡着了",
    "english": "The keeper of the lighthouse, Bartholomewinthorpeshirecastlegatesmithy, climbs the "
               "spiral stairs one last time before the light is automated",
    "mixed": "橘猫 Mochi 在 Shibuya 的雨夜里 looks for home, 最后 falls asleep at a konbini door",
}
MIN_MARGIN = 0.04  # of the width, on each side


def ink_columns(mask: np.ndarray) -> tuple[int, int]:
    columns = np.flatnonzero(mask.any(axis=0))
    return int(columns[0]), int(columns[-1])


def assert_inside(mask: np.ndarray, width: int, height: int, what: str) -> None:
    assert mask.any(), f"{what}: no text was drawn"
    left, right = ink_columns(mask)
    margin = MIN_MARGIN * width
    assert left >= margin and right <= width - 1 - margin, \
        f"{what}: text spans columns {left}-{right} of {width}; the safe margin is {margin:.0f}"
    rows = np.flatnonzero(mask.any(axis=1))
    assert rows[0] > 0 and rows[-1] < height - 1, f"{what}: text touches the top or bottom"


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("kind", list(TEXTS))
def test_title_card_text_stays_inside_the_frame_under_every_camera(width, height, kind):
    title = f"{TEXTS[kind][:24]} Supercalifragilisticexpialidociousness"
    tag = animatic_tag(width, height)
    for camera in CAMERAS:
        scene = Scene(description=TEXTS[kind], visual_prompt="x", camera=camera, motion="high",
                      duration=1.0, seed=4)
        card = title_card(scene, 3, title, width, height, reserve_right=tag.width + tag.height)
        lettered = animatic_frames(card.background, scene, width, height, fps=5,
                                   lettering=card.lettering)
        bare = animatic_frames(card.background, scene, width, height, fps=5)
        for n, (with_text, without) in enumerate(zip(lettered, bare)):
            mask = np.abs(with_text.astype(int) - without).max(axis=2) > 24
            assert_inside(mask, width, height, f"{camera}, frame {n}")


@pytest.mark.parametrize("width, height", SIZES)
def test_the_animatic_tag_sits_inside_the_margin(width, height):
    black = Image.new("RGB", (width, height))
    scene = Scene(description="x", visual_prompt="x", camera="pan", duration=1.0)
    frame = next(animatic_frames(black, scene, width, height, fps=5))
    assert_inside(frame.max(axis=2) > 0, width, height, "ANIMATIC tag")


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("kind", list(TEXTS))
@pytest.mark.parametrize("name", list(SUBTITLE_STYLES))
def test_subtitles_wrap_and_stay_inside_the_frame_in_every_style(width, height, kind, name):
    style = subtitle_style(name, size=2.0 if kind == "english" else None)  # the largest text
    highlight = len(words_of(TEXTS[kind])) - 1 if style.highlight else None
    top, _rgb, alpha = subtitle_band(TEXTS[kind], width, height, style, highlight)
    mask = np.zeros((height, width), bool)
    mask[top:top + alpha.shape[0]] = alpha[..., 0] > 0.1
    assert_inside(mask, width, height, f"{name} subtitle")
    rows = np.flatnonzero(mask.any(axis=1))
    assert rows[0] >= 0.04 * height and rows[-1] <= 0.96 * height
    if style.position == "bottom":  # a band at the bottom, not over the middle of the picture
        assert top > height // 2
        if height > width:  # vertical video: above the bottom fifth, where apps draw buttons
            assert rows[-1] < 0.8 * height


def test_subtitle_settings_are_checked_by_name():
    assert subtitle_style("boxed", size=1.5, colour="yellow", position="top").position == "top"
    for kwargs, named in (({"name": "comic"}, "comic"), ({"size": 5}, "size"),
                          ({"colour": "blurple"}, "blurple"), ({"position": "left"}, "left")):
        with pytest.raises(ValueError, match=named):
            subtitle_style(**{"name": "classic", **kwargs})


def test_word_highlight_colours_the_word_being_spoken():
    style = subtitle_style("word-highlight")
    text = "The fox runs home"
    bands = [subtitle_band(text, 640, 360, style, n) for n in range(4)]
    gold = [((rgb[..., 2] < 120) & (rgb[..., 0] > 200) & (alpha[..., 0] > 0.9)) for _, rgb, alpha
            in bands]
    columns = [np.flatnonzero(g.any(axis=0)) for g in gold]
    assert all(len(c) for c in columns)  # each word in turn is drawn in the highlight colour
    centres = [c.mean() for c in columns]
    assert centres == sorted(centres)    # left to right, as the words are spoken


@pytest.mark.parametrize("width, height", SIZES)
def test_the_poster_title_stays_inside_the_frame(width, height):
    board = Storyboard(title=TEXTS["english"][:110], style="", scenes=[
        Scene(description="x", visual_prompt="x")])
    grey = Image.new("RGB", (width, height), (90, 90, 90))
    poster = np.asarray(_poster(board, grey, width, height)).astype(int)
    assert_inside(np.abs(poster - 90).max(axis=2) > 24, width, height, "poster title")


def test_latin_wraps_between_words_and_chinese_between_characters():
    block = fit_text("a quiet fox walks across the frozen river at dawn", 300, 4, 40)
    assert len(block.lines) > 1
    assert " ".join(block.lines) == "a quiet fox walks across the frozen river at dawn"
    chinese = fit_text(TEXTS["chinese"], 300, 6, 40, 30)
    assert "".join(chinese.lines) == TEXTS["chinese"] and len(chinese.lines) > 2


def test_a_word_too_long_for_any_line_is_broken_not_cut(monkeypatch):
    word = "Bartholomewinthorpeshirecastlegatesmithy"  # 40 letters
    block = fit_text(f"Meet {word} today", 200, 6, 40, 30)
    assert "".join(block.lines).replace(" ", "") == f"Meet{word}today"
    assert block.width <= 200


def test_text_shrinks_to_its_floor_then_ends_in_an_ellipsis():
    short = fit_text("A fox.", 600, 1, 60, 20)
    assert short.size == 60 and short.lines == ["A fox."]
    long = fit_text(TEXTS["english"], 600, 2, 60, 20)
    assert 20 <= long.size < 60
    floor = fit_text(TEXTS["english"] * 3, 300, 2, 60, 20)
    assert floor.size == 20 and len(floor.lines) == 2 and floor.lines[-1].endswith("…")
    assert floor.width <= 300
    assert wrap("", floor.face, 300) == []


@pytest.mark.parametrize("width, height", [(128, 72), (64, 64), (72, 128)])
def test_a_small_frame_gets_smaller_subtitles_that_still_fit(width, height):
    style = subtitle_style("bold-centre", size=2.0, position="top")
    top, _rgb, alpha = subtitle_band(TEXTS["english"], width, height, style, highlight=3)
    assert top >= 0 and top + alpha.shape[0] <= height and alpha.shape[1] == width
