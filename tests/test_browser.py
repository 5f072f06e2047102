"""A person in a real browser: write, edit, render, watch previews arrive, play the film."""
from __future__ import annotations

import json
import shutil

import pytest

from app import create_studio
from pipeline.render import RenderSettings
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (.ci/run installs it)")


def test_write_edit_render_and_play_in_a_browser(tmp_path, monkeypatch, embedded_chat):
    from tests.browser import (browser_pages, edit_cell, film_plays, open_history,
                               render_and_time, screenshot, write_storyboard)

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    demo, launch = create_studio(tmp_path / "outputs", RenderSettings(
        backend="animatic", width=256, height=144, fps=12))
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    try:
        with browser_pages(2) as (page, other):
            write_storyboard(page, url, "A fox explores a snowy village", scenes=2)
            name = page.locator("#cast-1-name textarea, #cast-1-name input").first
            page.wait_for_function(  # the planner's cast fills the Cast panel
                "() => [...document.querySelectorAll('#cast-1-name textarea, #cast-1-name input')]"
                ".some(e => e.value === 'Fox')", timeout=30_000)
            assert name.input_value() == "Fox"
            shots = ROOT / "outputs" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.locator("#cast-panel").screenshot(path=str(shots / "cast-en.png"))
            edit_cell(page, 0, 0, "The fox wakes up under a pine tree.")
            marks = render_and_time(page, scenes=2)
            assert marks["first_preview_s"] <= marks["all_previews_s"] <= marks["film_s"]
            assert film_plays(page)
            assert open_history(other, url) < 30
            shot = screenshot(page, tmp_path / "studio.png")
            assert shot.stat().st_size > 10_000
        history = json.loads((tmp_path / "outputs" / "history.json").read_text(encoding="utf-8"))
        job = next(iter(history["jobs"].values()))
        assert job["status"] == "done"
        assert job["storyboard"]["scenes"][0]["description"] == "The fox wakes up under a pine tree."
    finally:
        demo.close()


def test_a_chinese_browser_gets_a_chinese_interface(tmp_path, monkeypatch):
    from tests.browser import browser_pages

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    demo, launch = create_studio(tmp_path / "outputs", RenderSettings(backend="animatic"))
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    try:
        with browser_pages(1, locale="zh-CN") as (page,):
            page.goto(url)
            page.get_by_text("生成分镜").first.wait_for(timeout=30_000)
            assert page.locator("#render-btn").inner_text().strip() == "渲染"
        with browser_pages(1, locale="en-US") as (page,):
            page.goto(url)
            assert page.locator("#render-btn").inner_text().strip() == "Render"
    finally:
        demo.close()


FILMS = (("A fox explores a snowy village", "16:9"), ("灯塔看守人遇见一头迷路的鲸鱼", "9:16"))


def test_history_is_a_library_of_films_opened_with_one_click(tmp_path, monkeypatch):
    """Films made with `pipeline make` are in History as whole posters; one click opens one in
    Create; the storyboard fits the page; Delete asks first; Ctrl+Enter in the table renders.
    In Chinese and in English, at 1280x800; screenshots go to outputs/screenshots/."""
    from pipeline.cli import main as pipeline_main
    from tests.browser import browser_pages
    from tests.conftest import ROOT

    outputs = tmp_path / "outputs"
    monkeypatch.setenv("STORYREEL_OUTPUTS", str(outputs))
    for n, (prompt, aspect) in enumerate(FILMS):  # `python -m pipeline make ...`
        assert pipeline_main(["make", prompt, "--no-model", "--scenes", "2", "--seconds", "4",
                              "--backend", "animatic", "--fps", "8", "--aspect", aspect,
                              "--out", str(tmp_path / f"film{n}.mp4")]) == 0
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    demo, launch = create_studio(outputs, RenderSettings(backend="animatic", width=256,
                                                         height=144, fps=8))
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    shots = ROOT / "outputs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with browser_pages(1, locale="zh-CN", viewport=(1280, 800)) as (page,):
            _library_opens_in_one_click(page, url, shots, "zh", card=0, prompt=FILMS[1][0])
        with browser_pages(1, locale="en-US", viewport=(1280, 800)) as (page,):
            _library_opens_in_one_click(page, url, shots, "en", card=1, prompt=FILMS[0][0])
            _ctrl_enter_renders_and_delete_asks_first(page, shots)
    finally:
        demo.close()


def _library_opens_in_one_click(page, url, shots, language, card, prompt):
    import time

    from tests.browser import CARDS, POSTER_SHAPES, SIDEWAYS

    page.goto(url)
    page.locator("#tabs button[role=tab]").nth(1).click()  # History
    cards = page.locator(CARDS)
    cards.nth(1).wait_for(timeout=60_000)
    assert cards.count() == 2  # both command-line films, newest first
    page.wait_for_function("() => [...document.querySelectorAll('#history button.thumbnail-item "
                           "img')].every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    shapes = page.evaluate(POSTER_SHAPES)
    assert len(shapes) == 2
    for shown, own in shapes:  # each poster whole, at its own aspect ratio
        assert abs(shown / own - 1) <= 0.02, (shown, own)
    assert sorted(round(own, 2) for _, own in shapes) == [round(9 / 16, 2), round(16 / 9, 2)]
    page.screenshot(path=str(shots / f"history-{language}.png"))

    clicked = time.perf_counter()  # one click opens the film in Create
    cards.nth(card).click()
    page.locator("#storyboard [role=row][data-index]").nth(1).wait_for(timeout=10_000)
    opened_s = time.perf_counter() - clicked
    (shots / f"open-{language}.txt").write_text(f"{opened_s:.2f} s from click to storyboard\n")
    assert opened_s <= 2.0
    assert page.locator("#prompt textarea").input_value() == prompt
    assert page.locator("#job-header").inner_text().strip() not in ("", "Storyreel")
    assert page.evaluate(SIDEWAYS, "#storyboard") == []  # every column fits the width
    page.screenshot(path=str(shots / f"create-{language}.png"))
    page.locator("#tabs button[role=tab]").nth(2).click()  # System
    page.locator("#system").wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / f"system-{language}.png"))
    page.locator("#tabs button[role=tab]").nth(0).click()


def _ctrl_enter_renders_and_delete_asks_first(page, shots):
    import time

    from tests.browser import CARDS

    page.locator('#storyboard [data-testid="cell-0-0"]').click()
    page.keyboard.press("Control+Enter")  # renders the open film again
    page.locator("#previews img, #previews video").nth(1).wait_for(timeout=120_000)
    page.locator("#film video[src]").wait_for(timeout=120_000)

    page.locator("#tabs button[role=tab]").nth(1).click()
    cards = page.locator(CARDS)
    page.locator("#delete-btn").click()  # Delete asks first, naming the film
    page.locator("#delete-question").wait_for(timeout=10_000)
    assert "fox" in page.locator("#delete-question").inner_text().lower()
    assert cards.count() == 2
    page.locator("#delete-keep").click()
    page.locator("#delete-question").wait_for(state="hidden", timeout=10_000)
    assert cards.count() == 2
    page.locator("#delete-btn").click()
    page.locator("#delete-confirm").click()
    deadline = time.time() + 20
    while cards.count() != 1 and time.time() < deadline:
        page.wait_for_timeout(200)
    assert cards.count() == 1
