"""Subtitles: how a cue looks, laid out for the film's format.

    style = subtitle_style("boxed", size=1.2, colour="#ffe066", position="bottom")
    band = subtitle_band("A fox wakes up.", 576, 1024, style)   # (top row, RGB, alpha)

Named presets (SUBTITLE_STYLES) plus size, colour and position. Every band keeps its glyphs
inside the frame's safe box; a vertical (9:16) film gets larger text, placed in the safe area
above the bottom fifth (where phone apps draw their own buttons). The word-highlight style
draws the word being spoken in its highlight colour (`highlight` = that word's index).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageColor, ImageDraw

from pipeline.lettering import TextBlock, draw_block, fit_text, safe_box
from pipeline.video_io import put_rgb_rows, yuv_rows_to_rgb

POSITIONS = ("bottom", "middle", "top")

Band = tuple[int, np.ndarray, np.ndarray]  # (top row, RGB float32, alpha 0-1)


@dataclass(frozen=True)
class SubtitleStyle:
    name: str
    size: float = 1.0               # text size, times the format's own
    colour: str = "#ffffff"         # the text's colour
    position: str = "bottom"        # bottom, middle or top of the safe area
    outline: bool = True            # a dark outline around each letter
    box: bool = False               # a dark translucent box behind the lines
    bold: bool = False              # heavier letters (a thicker outline in the text's colour)
    highlight: str | None = None    # colour of the word being spoken; None = no highlight


SUBTITLE_STYLES = {
    "classic": SubtitleStyle("classic"),
    "boxed": SubtitleStyle("boxed", outline=False, box=True),
    "bold-centre": SubtitleStyle("bold-centre", size=1.3, position="middle", bold=True),
    "word-highlight": SubtitleStyle("word-highlight", highlight="#ffd23f"),
}


def subtitle_style(name: str = "classic", size: float | None = None, colour: str | None = None,
                   position: str | None = None) -> SubtitleStyle:
    """A preset with the person's changes; raises ValueError naming the bad setting."""
    if name not in SUBTITLE_STYLES:
        raise ValueError(f"subtitle style {name!r} is not one of: {', '.join(SUBTITLE_STYLES)}")
    style = SUBTITLE_STYLES[name]
    if size is not None:
        if not 0.5 <= size <= 2.0:
            raise ValueError(f"subtitle size {size:g} is outside 0.5-2 (times the style's size)")
        style = replace(style, size=style.size * float(size))
    if colour is not None:
        try:
            ImageColor.getrgb(colour)
        except ValueError:
            raise ValueError(f"subtitle colour {colour!r} is not a colour (try #ffffff or "
                             f"yellow)") from None
        style = replace(style, colour=colour)
    if position is not None:
        if position not in POSITIONS:
            raise ValueError(f"subtitle position {position!r} is not one of: "
                             f"{', '.join(POSITIONS)}")
        style = replace(style, position=position)
    return style


def _base_size(width: int, height: int) -> int:
    if height > width * 1.2:        # vertical: phones are read at arm's length
        return max(16, width // 13)
    return max(14, min(width, height) // 18)


def subtitle_band(text: str, width: int, height: int, style: SubtitleStyle,
                  highlight: int | None = None) -> Band:
    """The cue's lettering as a band across the frame: (top row, RGB, alpha)."""
    left, upper, right, lower = safe_box(width, height)
    size = max(10, int(_base_size(width, height) * style.size))
    outline = 1 / 12 if style.outline or style.bold else 0.0
    while True:  # a small frame takes smaller text: the band always fits inside the safe box
        room = right - left - (2 * (size // 3) if style.box else 0)  # the box's padding too
        block = fit_text(text, room, 3, size, max(6, size * 6 // 10), stroke_ratio=outline)
        pad = block.size // 3
        if block.height + 2 * pad <= lower - upper or size <= 6:
            break
        size = max(6, int(size * 0.8))
    band = Image.new("RGBA", (width, block.height + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    if style.box:
        half = block.width / 2 + pad
        draw.rounded_rectangle((width / 2 - half, 0, width / 2 + half, band.height - 1),
                               radius=pad, fill=(0, 0, 0, 170))
    fill = ImageColor.getrgb(style.colour)[:3] + (255,)
    edge = fill if style.bold and not style.outline else (0, 0, 0, 255)
    draw_block(draw, block, width / 2, pad, fill=fill, stroke_fill=edge)
    if highlight is not None and style.highlight:
        _draw_word(draw, block, text, highlight, width / 2, pad,
                   ImageColor.getrgb(style.highlight)[:3] + (255,))
    pixels = np.asarray(band).astype(np.float32)
    if style.position == "top":
        top = upper + height // 40
    elif style.position == "middle":
        top = (height - band.height) // 2
    else:
        floor = lower if height <= width * 1.2 else int(height * 0.8)  # 9:16: above the bottom fifth
        top = floor - band.height - height // 40
    top = min(max(top, upper), lower - band.height)
    return top, pixels[..., :3], pixels[..., 3:] / 255.0


def words_of(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the words a voice speaks, in order: Latin words, and
    each CJK character on its own (as the engines time them)."""
    return [m.span() for m in re.finditer(r"[\u3400-\u9fff]|[^\s\u3400-\u9fff]+", text)]


def _draw_word(draw: ImageDraw.ImageDraw, block: TextBlock, text: str, index: int,
               centre_x: float, top: float, fill: tuple[int, ...]) -> None:
    """Draw word `index` of `text` again, in `fill`, exactly over where the block drew it."""
    spans = words_of(" ".join(text.split()))
    if not 0 <= index < len(spans):
        return
    joined = " ".join(text.split())
    start, end = spans[index]
    cursor = 0
    ascent = block.face.getbbox("Hg", stroke_width=block.stroke)[1]
    for n, line in enumerate(block.lines):
        at = joined.find(line.rstrip("…"), cursor)
        if at < 0:
            return
        if at <= start < at + len(line):
            left, _, right, _ = block.face.getbbox(line or " ", stroke_width=block.stroke)
            x = centre_x - (right - left) / 2 - left
            x += block.face.getlength(line[:start - at])  # the advance of what comes before
            word = joined[start:min(end, at + len(line))]
            draw.text((x, top - ascent + n * block.line_height), word, font=block.face,
                      fill=fill, stroke_width=block.stroke, stroke_fill=(0, 0, 0, 255))
            return
        cursor = at + len(line)


def burn_in(frame: np.ndarray, band: Band | None) -> np.ndarray:
    """The RGB frame with the band's lettering blended into it (a copy; the frame as it is when
    there is no band)."""
    if band is None:
        return frame
    top, rgb, alpha = band
    frame = frame.copy()
    region = frame[top:top + rgb.shape[0]].astype(np.float32)
    frame[top:top + rgb.shape[0]] = (region * (1 - alpha) + rgb * alpha).astype(np.uint8)
    return frame


def burn_in_yuv(picture: np.ndarray, band: Band | None) -> np.ndarray:
    """`burn_in` for a yuv420p picture (pipeline/video_io.py's layout): the band's rows, from an
    even row to an even row, to RGB, lettered by `burn_in`, and back (a copy; the picture as
    it is when there is no band). The rest of the picture is not converted."""
    if band is None:
        return picture
    top, rgb, alpha = band
    height = picture.shape[0] * 2 // 3
    start, end = top - top % 2, min(height, top + rgb.shape[0] + (top + rgb.shape[0]) % 2)
    region = burn_in(yuv_rows_to_rgb(picture, start, end), (top - start, rgb, alpha))
    picture = picture.copy()
    put_rgb_rows(picture, start, region)
    return picture


def word_indices(text: str, spoken: list[str]) -> list[int | None]:
    """For each word an engine timed, the index of the word it is in `text` (`words_of`), found
    in order by its letters, so a number read as several words, or a word an engine splits,
    still lights the right one; None when it is not found."""
    joined = " ".join(text.split())
    spans, lowered, cursor, found = words_of(joined), joined.lower(), 0, []
    for word in spoken:
        at = lowered.find(word.lower().strip(), cursor) if word.strip() else -1
        if at < 0:
            found.append(None)
            continue
        cursor = at + len(word.strip())
        found.append(next((k for k, (a, b) in enumerate(spans) if a <= at < b), None))
    return found
