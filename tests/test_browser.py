"""A person in a real browser: write, edit, render, watch previews arrive, play the film."""
from __future__ import annotations

import json
import shutil

import pytest

from app import create_studio
from pipeline.render import RenderSettings

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
