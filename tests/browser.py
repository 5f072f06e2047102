"""Driving the studio in a real browser (Debian's Chromium through Playwright)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def browser_pages(count: int = 1, locale: str = "en-US",
                  viewport: tuple[int, int] = (1400, 1800)) -> Iterator[list[Page]]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=[*FLAGS, f"--lang={locale}"])
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                          locale=locale)
            yield [context.new_page() for _ in range(count)]
        finally:
            browser.close()


def write_storyboard(page: Page, url: str, prompt: str, scenes: int) -> None:
    page.goto(url)
    page.locator("#prompt textarea").fill(prompt)
    number = page.locator("#scenes input[type=number]")
    number.fill(str(scenes))
    number.press("Enter")
    page.locator("#plan-btn").click()
    rows = page.locator("#storyboard [role=row][data-index]")
    deadline = time.time() + 180
    while rows.count() < scenes and time.time() < deadline:
        page.wait_for_timeout(250)
    if rows.count() < scenes:
        raise AssertionError(f"the storyboard table did not fill: {rows.count()} rows")


def edit_cell(page: Page, row: int, column: int, text: str) -> None:
    """Double-click a storyboard cell (0-based data row and column), type, press Enter."""
    page.locator(f'#storyboard [data-testid="cell-{row}-{column}"]').dblclick()
    editor = page.locator("#storyboard textarea, #storyboard input:not([type=checkbox])").first
    editor.fill(text)
    editor.press("Enter")
    page.locator("#prompt textarea").click()  # leave the table so the edit is committed


WATCH = """(scenes) => {
    window.__marks = {};
    const t0 = performance.now();
    const timer = setInterval(() => {
        const shown = document.querySelectorAll('#previews video, #previews img').length;
        const film = document.querySelector('#film video');
        const now = (performance.now() - t0) / 1000;
        if (shown >= 1 && !window.__marks.first_preview_s) window.__marks.first_preview_s = now;
        if (shown >= scenes && !window.__marks.all_previews_s) window.__marks.all_previews_s = now;
        if (film && film.getAttribute('src')) { window.__marks.film_s = now; clearInterval(timer); }
    }, 50);
}"""


def start_render(page: Page, scenes: int) -> None:
    """Click Render; the page itself notes when previews and the film appear."""
    page.evaluate(WATCH, scenes)
    page.locator("#render-btn").click()


def wait_for_film(page: Page, timeout_s: float = 300) -> dict[str, float]:
    """Seconds (measured in the page) from Render to the first preview, all previews, film."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        marks = page.evaluate("() => window.__marks")
        if marks.get("film_s"):
            return marks
        page.wait_for_timeout(200)
    raise AssertionError(f"the film did not appear within {timeout_s} s: "
                         f"{page.evaluate('() => window.__marks')}")


def render_and_time(page: Page, scenes: int, timeout_s: float = 300) -> dict[str, float]:
    start_render(page, scenes)
    return wait_for_film(page, timeout_s)


def film_plays(page: Page) -> bool:
    return bool(page.evaluate("""async () => {
        const video = document.querySelector('#film video');
        video.muted = true;
        await video.play();
        await new Promise(r => setTimeout(r, 1200));
        return video.currentTime > 0.2 && !video.error && video.videoWidth > 0;
    }"""))


def open_history(page: Page, url: str) -> float:
    """Seconds for a second tab to load the page and show the history list."""
    started = time.perf_counter()
    page.goto(url)
    page.get_by_role("tab", name="History").click()
    page.locator("#history").wait_for(state="visible", timeout=60_000)
    page.locator("#history-refresh").click()
    page.locator(CARDS).first.wait_for(timeout=60_000)
    return time.perf_counter() - started


CARDS = "#history button.thumbnail-item"  # one card per film in History

# Elements inside `selector` whose content is wider than their box and who may scroll sideways.
SIDEWAYS = """(selector) => {
    const found = [];
    for (const el of document.querySelectorAll(selector + ', ' + selector + ' *')) {
        const style = getComputedStyle(el);
        if (!['auto', 'scroll'].includes(style.overflowX)) continue;
        if (el.scrollWidth > el.clientWidth + 1) found.push(el.tagName + '.' + el.className);
    }
    return found;
}"""

# Each History poster: (displayed width / height, the image's own width / height).
POSTER_SHAPES = """() => [...document.querySelectorAll('#history button.thumbnail-item img')]
    .map(img => { const box = img.getBoundingClientRect();
                  return [box.width / box.height, img.naturalWidth / img.naturalHeight]; })"""


def screenshot(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    return path
