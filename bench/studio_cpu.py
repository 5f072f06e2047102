"""The studio in a real browser on the CPU (animatic backend, 5 scenes, 1024x576, 24 fps):
seconds from clicking Render to the first scene preview on screen, and how long a second tab
takes to load the page and the history while the render runs.

    .venv/bin/python bench/studio_cpu.py
Writes bench/results/studio_cpu.json. Target (issue 5): first preview <= 15 s.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import print_table, write_results  # noqa: E402 (sets sys.path)

from app import create_studio
from pipeline.cli import quiet_libraries
from pipeline.render import RenderSettings
from tests.browser import browser_pages, open_history, start_render, wait_for_film, write_storyboard


def main() -> None:
    quiet_libraries()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        demo, launch = create_studio(Path(tmp) / "outputs", RenderSettings(backend="animatic"))
        _, url, _ = launch(prevent_thread_lock=True, server_port=None)
        try:
            for run, prompt in enumerate(("A fox explores a snowy village",
                                          "制作一段关于森林探险的短视频，包含河流和小动物")):
                with browser_pages(2) as (page, other):
                    write_storyboard(page, url, prompt, scenes=5)
                    started = time.perf_counter()
                    start_render(page, scenes=5)  # the page times its own previews
                    page.wait_for_timeout(1000)
                    history_s = open_history(other, url)  # a second tab, mid-render
                    history_at = time.perf_counter() - started
                    marks = wait_for_film(page)
                    rows.append({"prompt": prompt, **{k: round(v, 2) for k, v in marks.items()},
                                 "history_tab_s": round(history_s, 2),
                                 "history_loaded_at_s": round(history_at, 2),
                                 "film_before_history": marks["film_s"] < history_at})
                    print(rows[-1], flush=True)
        finally:
            demo.close()
    summary = {"first_preview_s_max": max(r["first_preview_s"] for r in rows),
               "history_tab_s_max": max(r["history_tab_s"] for r in rows),
               "history_loaded_while_rendering": not any(r["film_before_history"] for r in rows),
               "storyboard": "5 scenes, 20 s, animatic 1024x576 at 24 fps"}
    path = write_results("studio_cpu", rows, summary)
    print_table(rows, ["prompt", "first_preview_s", "all_previews_s", "film_s", "history_tab_s",
                       "history_loaded_at_s"])
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
