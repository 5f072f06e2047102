"""Lettering: text laid out to stay whole and readable inside a frame.

    block = fit_text("A fox explores a snowy village", max_width=900, max_lines=3, size=48)
    draw_block(draw, block, centre_x=512, top=400)

Lines are measured in pixels with the font that will draw them, not counted in characters.
Latin text wraps between words, CJK text between characters; a word wider than the line on its
own (a 40-letter name, a URL) is broken between its letters. When the text still needs more
lines than allowed, the size steps down to `min_size`; at the floor, the last line ends in "…".
Every layout keeps its glyphs inside `safe_box(width, height)`: SAFE_MARGIN of the width on
each side, so no camera move, format or subtitle style puts text at a frame's edge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import ImageDraw, ImageFont

from pipeline.fonts import CJK_TEXT, font

SAFE_MARGIN = 0.05   # of the frame's width, on the left and the right (at least 4% is required)
LINE_SPACING = 1.3   # line height as a multiple of the font size
ELLIPSIS = "…"


@dataclass(frozen=True)
class TextBlock:
    lines: list[str]
    face: ImageFont.FreeTypeFont
    stroke: int          # outline width in pixels (0: none)
    line_height: int
    width: int           # the widest line's ink, outline included
    height: int          # from the first line's top to the last line's bottom

    @property
    def size(self) -> int:
        return int(self.face.size)


def safe_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the region text may occupy."""
    margin = int(round(width * SAFE_MARGIN))
    return margin, int(round(height * 0.04)), width - margin, height - int(round(height * 0.04))


def ink_width(text: str, face: ImageFont.FreeTypeFont, stroke: int = 0) -> int:
    if not text:
        return 0
    left, _, right, _ = face.getbbox(text, stroke_width=stroke)
    return int(right - left)


def _units(text: str) -> list[str]:
    """Wrapping units: words (with their trailing space) for Latin, single characters for CJK."""
    units: list[str] = []
    for piece in re.findall(r"\S+\s*", text):
        run = ""  # Latin letters inside CJK text stay together
        for char in piece:
            if CJK_TEXT.match(char):
                if run:
                    units.append(run)
                    run = ""
                units.append(char)
            elif char.isspace() and not run and units:
                units[-1] += char
            else:
                run += char
        if run:
            units.append(run)
    return units


def wrap(text: str, face: ImageFont.FreeTypeFont, max_width: int, stroke: int = 0) -> list[str]:
    """Greedy wrap of `text` into lines whose ink is at most `max_width` pixels wide."""
    lines: list[str] = []
    line = ""
    for unit in _units(" ".join(text.split())):
        if ink_width((line + unit).rstrip(), face, stroke) <= max_width:
            line += unit
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = ""
        if ink_width(unit.rstrip(), face, stroke) <= max_width:
            line = unit
            continue
        for char in unit:  # a word too wide for any line: break it between its letters
            if line and ink_width((line + char).rstrip(), face, stroke) > max_width:
                lines.append(line.rstrip())
                line = ""
            line += char
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _ellipsized(line: str, face: ImageFont.FreeTypeFont, max_width: int, stroke: int) -> str:
    while line and ink_width(line.rstrip() + ELLIPSIS, face, stroke) > max_width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


def fit_text(text: str, max_width: int, max_lines: int, size: int, min_size: int | None = None,
             stroke_ratio: float = 0.0) -> TextBlock:
    """The largest size from `size` down to `min_size` at which `text` fits `max_lines` lines of
    `max_width` pixels; at the floor, what does not fit is cut with an ellipsis."""
    min_size = max(6, min(min_size or size, size))
    current = size
    while True:
        face = font(current, text)
        stroke = max(1, round(current * stroke_ratio)) if stroke_ratio else 0
        lines = wrap(text, face, max_width, stroke) or [""]
        if len(lines) <= max_lines or current <= min_size:
            break
        current = max(min_size, int(current * 0.9))
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [_ellipsized(lines[max_lines - 1], face, max_width, stroke)]
    line_height = int(round(current * LINE_SPACING))
    width = max(ink_width(line, face, stroke) for line in lines)
    return TextBlock(lines, face, stroke, line_height, width,
                     line_height * (len(lines) - 1) + current + 2 * stroke)


def draw_block(draw: ImageDraw.ImageDraw, block: TextBlock, centre_x: float, top: float,
               fill: tuple[int, ...] = (255, 255, 255, 255),
               stroke_fill: tuple[int, ...] = (0, 0, 0, 255), align: str = "centre") -> None:
    """Draw the block's lines, each centred on `centre_x` (or starting at it, align="left"),
    the first line's ink starting at `top`."""
    ascent = block.face.getbbox("Hg", stroke_width=block.stroke)[1]
    for n, line in enumerate(block.lines):
        left, _, right, _ = block.face.getbbox(line or " ", stroke_width=block.stroke)
        x = centre_x - (right - left) / 2 - left if align == "centre" else centre_x - left
        draw.text((x, top - ascent + n * block.line_height), line, font=block.face, fill=fill,
                  stroke_width=block.stroke, stroke_fill=stroke_fill)
