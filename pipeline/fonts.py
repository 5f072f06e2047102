"""Finding a font that draws Chinese as well as Latin text (subtitles, title cards).

Order: STORYREEL_FONT, then the usual CJK fonts of Linux, macOS and Windows. setup installs
none by itself (it needs root): `sudo apt install fonts-noto-cjk` (or fonts-wqy-microhei) on
Debian/Ubuntu; macOS and Windows ship one.
"""
from __future__ import annotations

import functools
import os
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


class FontMissing(RuntimeError):
    pass


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


@functools.lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(cjk_font_path()), size)
