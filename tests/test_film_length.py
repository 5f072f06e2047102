"""A film asked to be S seconds plays S seconds, crossfades included, from the planner's
storyboard through the renderer and the assembly; a crossfade costs no extra SVD run."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.assemble import AssemblySettings, assemble_film
from pipeline.planner import PlanRequest, plan_storyboard
from pipeline.render import RenderSettings, render_storyboard
from pipeline.video_io import probe
from tests.conftest import make_board

FPS = 12


@pytest.mark.parametrize("transition", ["crossfade", "cut"])
@pytest.mark.parametrize("seconds", [12, 20, 25, 31])
def test_a_film_lasts_what_was_asked_within_one_frame(tmp_path, seconds, transition):
    for count in (3, 5, 8):  # few scenes, some, many
        board = plan_storyboard(PlanRequest("a lighthouse keeper on a stormy island",
                                            scenes=count, seconds=seconds, seed=1,
                                            use_model=False))
        if transition == "cut":
            board = replace(board, scenes=[replace(s, transition="cut") for s in board.scenes])
        # the table shows durations that add up to the film
        assert abs(sum(s.duration for s in board.scenes) - seconds) < 1e-6, (count, board.notes)
        folder = tmp_path / f"{count}"
        events = list(render_storyboard(board, folder / "scenes", RenderSettings(
            backend="animatic", width=128, height=72, fps=FPS, crossfade=0.5)))
        assert events[-1].done == list(range(1, count + 1))
        film = assemble_film(board, folder / "scenes", folder / "film.mp4",
                             AssemblySettings(crossfade=0.5, subtitles=False))
        played = probe(film.film)["frames"] / FPS
        assert abs(played - seconds) <= 1 / FPS, (count, transition, played)
        details = json.loads(film.info.read_text(encoding="utf-8"))
        assert details["asked_seconds"] == seconds
        assert abs(details["film_seconds"] - seconds) <= 1 / FPS
        ends = [s["end"] for s in details["scenes"]]
        assert abs(ends[-1] - seconds) <= 1 / FPS  # the last subtitle runs to the film's end


def test_clips_made_without_a_tail_still_give_the_full_length(tmp_path):
    """Clips rendered for cuts, assembled with crossfades: the outgoing scene holds its last
    picture while the next fades in, and the film keeps its length."""
    board = make_board({"duration": 2.0}, {"duration": 2.0, "transition": "crossfade"},
                       {"duration": 1.5, "transition": "crossfade"})
    list(render_storyboard(board, tmp_path / "scenes", RenderSettings(
        backend="animatic", width=128, height=72, fps=FPS, crossfade=0.0)))
    film = assemble_film(board, tmp_path / "scenes", tmp_path / "film.mp4",
                         AssemblySettings(crossfade=1.0))
    assert probe(film.film)["frames"] == 5.5 * FPS


def test_a_crossfade_tail_costs_no_extra_svd_run(tmp_path, tiny_svd, tiny_text_to_image):
    # 4.5 s fits one 25-frame SVD-XT run (up to 4.8 s); 4.5 s plus a 0.5 s tail would not.
    board = make_board({"duration": 4.5}, {"duration": 2.0, "transition": "crossfade"})
    settings = RenderSettings(backend="svd", video_model=str(tiny_svd),
                              image_model=str(tiny_text_to_image), width=64, height=64, steps=1,
                              frames=25, fps=8, crossfade=0.5)
    events = list(render_storyboard(board, tmp_path, settings))
    assert events[-1].done == [1, 2]
    info = json.loads((tmp_path / "scene_01.json").read_text(encoding="utf-8"))
    assert info["svd"]["runs"] == 1 and info["clip_seconds"] == 5.0
    assert probe(tmp_path / "scene_01.mp4")["frames"] == 5.0 * 8  # the tail is re-timed frames
    film = assemble_film(board, tmp_path, tmp_path / "film.mp4")
    assert probe(film.film)["frames"] == 6.5 * 8
