"""Fonts for the text Storyreel draws (subtitles, title cards, poster, contact sheet, tags).

Latin, Greek and Cyrillic text uses Noto Sans, which arrives with the install (the PyPI package
`fontpkg-noto-sans`, in requirements.txt): an English film needs no system font at all.
Text with Chinese (or Japanese/Korean) characters needs a CJK font from the system:
STORYREEL_FONT, then the usual CJK fonts of Linux, macOS and Windows. setup installs none by
itself (it needs root): `sudo apt install fonts-noto-cjk` (or fonts-wqy-microhei) on
Debian/Ubuntu; macOS and Windows ship one. `check_fonts` is called with every text a job will
draw before any model loads, so a missing CJK font stops a job in seconds, not after a render.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path

from PIL import ImageFont

CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
INSTALL_HINT = ("install a CJK font (Debian/Ubuntu: `sudo apt install fonts-noto-cjk`) or set "
                "STORYREEL_FONT to a .ttf/.ttc/.otf file that has Chinese glyphs")
# CJK ideographs and punctuation, kana, hangul and full-width forms: characters Noto Sans lacks.
CJK_TEXT = re.compile(r"[\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\ufe30-\ufe4f"
                      r"\uff00-\uffef\U00020000-\U0003134f]")


class FontMissing(RuntimeError):
    pass


def needs_cjk(text: str) -> bool:
    """Whether drawing `text` needs a CJK font."""
    return bool(CJK_TEXT.search(text or ""))


@functools.lru_cache(maxsize=1)
def latin_font_path() -> Path:
    """Noto Sans from the fontpkg-noto-sans package (installed with requirements.txt)."""
    try:
        import fontpkg_noto_sans
    except ImportError:
        raise FontMissing("the font package fontpkg-noto-sans is not installed; run "
                          "`bash scripts/setup.sh` (or `pip install -r requirements.txt`)") from None
    path = Path(fontpkg_noto_sans.ROOT) / "files" / "NotoSans[wdth,wght].ttf"
    if not path.is_file():
        raise FontMissing(f"{path} is missing; reinstall fontpkg-noto-sans")
    return path


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> Path:
    """A font file with Chinese glyphs; raises FontMissing with the fix."""
    override = os.environ.get("STORYREEL_FONT")
    if override:
        if not Path(override).is_file():
            raise FontMissing(f"STORYREEL_FONT={override} does not exist; {INSTALL_HINT}")
        return Path(override)
    for candidate in CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontMissing(f"no font that can draw Chinese was found; {INSTALL_HINT}")


def check_fonts(texts: Iterable[str], cjk: bool = False) -> None:
    """Raise FontMissing (with the fix) if any of `texts` needs a font this machine lacks;
    `cjk=True`: the texts are not written yet but will be Chinese (a `--language zh` plan)."""
    latin_font_path()
    if cjk or any(needs_cjk(t) for t in texts):
        cjk_font_path()


def font(size: int, text: str = "") -> ImageFont.FreeTypeFont:
    """A font of `size` pixels that can draw `text` (the CJK font only when the text needs it)."""
    return _load(size, needs_cjk(text))


@functools.lru_cache(maxsize=64)
def _load(size: int, cjk: bool) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(cjk_font_path() if cjk else latin_font_path()), size)
