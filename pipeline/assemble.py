"""Assemble: the scene clips become one film, with transitions, subtitles and music.

    result = assemble_film(board, clips_dir, Path("film.mp4"), AssemblySettings(music=song))

Frames stream from each clip through the crossfades and the burned-in subtitles straight into
the encoder (PyAV: H.264 yuv420p, AAC, moov atom first), so memory stays flat whatever the
film's length. Beside the film: film.srt (the subtitles, timed to the scenes), film.json (the
storyboard as rendered, every clip's seed, models and timings), a poster and a contact sheet.
"""
from __future__ import annotations

import json
import math
import os
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw

from pipeline.fonts import FontMissing, cjk_font_path, font
from pipeline.render import scene_paths
from pipeline.storyboard import Storyboard
from pipeline.video_io import even_size, frame_at, probe

AUDIO_RATE = 44100
MUSIC_SUFFIXES = (".mp3", ".wav", ".m4a", ".ogg", ".aac", ".flac", ".opus")


class AssemblyError(RuntimeError):
    """The film cannot be assembled as asked; the message names the scene or file."""


@dataclass
class AssemblySettings:
    crossfade: float = 0.5          # seconds two scenes overlap when a scene's transition is crossfade
    subtitles: bool = True          # burn the descriptions into the picture (the .srt is always written)
    music: Path | None = None       # background music: trimmed or looped to the film
    music_volume: float = 0.5       # 0-1, applied to the music
    music_fade: float = 1.5         # seconds of fade in and fade out
    crf: int = 20                   # H.264 quality (lower is better and larger)
    preset: str = "veryfast"        # x264 speed preset


@dataclass
class FilmResult:
    film: Path
    srt: Path
    info: Path
    poster: Path
    contact_sheet: Path
    duration: float                 # seconds
    frames: int
    seconds: float                  # wall time to assemble
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Cue:
    scene: int
    start: int                      # first output frame
    end: int                        # one past the last output frame
    text: str


# ---- music ---------------------------------------------------------------------------------


def check_music(path: Path) -> float:
    """The music file's length in seconds; raises AssemblyError if it is not usable audio."""
    path = Path(path)
    if not path.is_file():
        raise AssemblyError(f"music file {path} does not exist")
    if path.stat().st_size == 0:
        raise AssemblyError(f"music file {path.name} is empty")
    try:
        samples = _decode_audio(path, max_seconds=2.0)
        with av.open(str(path)) as container:
            duration = float(container.duration or 0) / av.time_base
    except (av.error.FFmpegError, ValueError, OSError, UnicodeDecodeError) as err:
        raise AssemblyError(f"music file {path.name} is not audio Storyreel can read "
                            f"({type(err).__name__}: {str(err)[:120]})") from None
    if samples.shape[1] < AUDIO_RATE // 10:
        raise AssemblyError(f"music file {path.name} holds less than 0.1 s of sound")
    return duration or samples.shape[1] / AUDIO_RATE


def _decode_audio(path: Path, max_seconds: float | None = None) -> np.ndarray:
    """Stereo float32 samples at AUDIO_RATE, shape (2, n)."""
    chunks, total = [], 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("it has no audio stream")
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray()
                chunks.append(chunk)
                total += chunk.shape[1]
            if max_seconds and total >= max_seconds * AUDIO_RATE:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        raise ValueError("no audio could be decoded")
    return np.concatenate(chunks, axis=1).astype(np.float32)


def _music_track(path: Path, seconds: float, volume: float, fade: float) -> np.ndarray:
    music = _decode_audio(path)
    need = int(round(seconds * AUDIO_RATE))
    if music.shape[1] < need:  # loop
        music = np.tile(music, (1, math.ceil(need / music.shape[1])))
    music = music[:, :need] * volume
    ramp = min(int(fade * AUDIO_RATE), need // 2)
    if ramp:
        envelope = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        music[:, :ramp] *= envelope
        music[:, need - ramp:] *= envelope[::-1]
    return np.clip(music, -1.0, 1.0)


# ---- the film ------------------------------------------------------------------------------


def assemble_film(board: Storyboard, clips_dir: Path, out: Path,
                  settings: AssemblySettings | None = None) -> FilmResult:
    started = time.perf_counter()
    settings = settings or AssemblySettings()
    clips_dir, out = Path(clips_dir), Path(out)
    if out.suffix.lower() != ".mp4":
        raise AssemblyError(f"the film must be an .mp4 file (got {out.name})")
    if settings.crossfade < 0:
        raise AssemblyError(f"crossfade must be 0 seconds or more (got {settings.crossfade})")
    if settings.music is not None:
        check_music(settings.music)
    try:  # subtitles, poster and contact sheet all need a font that draws Chinese too
        cjk_font_path()
    except FontMissing as err:
        raise AssemblyError(str(err)) from None
    clips = _check_clips(board, clips_dir)
    fps = clips[0]["fps"]
    width, height = even_size(clips[0]["width"], clips[0]["height"])
    fades = _fade_frames(board, clips, settings.crossfade, fps)
    total = sum(c["frames"] for c in clips) - sum(fades)
    cues = _cues(board, clips, fades, total)
    out.parent.mkdir(parents=True, exist_ok=True)

    timings: dict[str, float] = {}
    mark = time.perf_counter()
    partial = out.with_name(f".{out.stem}.partial.mp4")
    frames_written, samples = _encode(
        _film_frames(clips, fades, cues if settings.subtitles else [], width, height),
        partial, fps, width, height, settings, total)
    os.replace(partial, out)
    timings["encode_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    srt = out.with_suffix(".srt")
    srt.write_text(_srt(cues, fps), encoding="utf-8")
    poster, sheet = out.with_name(f"{out.stem}_poster.png"), out.with_name(f"{out.stem}_contact.png")
    thumbs = [frame_at(c["clip"], c["frames"] // 2) for c in clips]  # one frame per scene
    _poster(board, thumbs[0], width, height).save(poster)
    _contact_sheet(board, thumbs).save(sheet)
    timings["extras_s"] = time.perf_counter() - mark
    duration = frames_written / fps
    info = out.with_suffix(".json")
    info.write_text(json.dumps({
        "film": out.name, "srt": srt.name, "poster": poster.name, "contact_sheet": sheet.name,
        "duration": round(duration, 3), "frames": frames_written, "fps": fps,
        "width": width, "height": height, "crossfade_seconds": settings.crossfade,
        "subtitles_burned_in": settings.subtitles,
        "music": {"file": str(settings.music), "volume": settings.music_volume,
                  "seconds": round(samples / AUDIO_RATE, 3)} if settings.music else None,
        "storyboard": board.to_dict(),
        "scenes": [{**c["meta"], "clip": str(c["clip"]), "start": round(cue.start / fps, 3),
                    "end": round(cue.end / fps, 3)} for c, cue in zip(clips, cues)],
    }, ensure_ascii=False, indent=2), encoding="utf-8")
    return FilmResult(out, srt, info, poster, sheet, duration, frames_written,
                      time.perf_counter() - started, timings)


def _check_clips(board: Storyboard, clips_dir: Path) -> list[dict[str, Any]]:
    clips = []
    for number, scene in enumerate(board.scenes, start=1):
        paths = scene_paths(clips_dir, number)
        if not paths["clip"].is_file():
            raise AssemblyError(f"scene {number}: its clip {paths['clip'].name} is missing from "
                                f"{clips_dir}; render that scene first")
        try:
            info = probe(paths["clip"])
        except (av.error.FFmpegError, IndexError, OSError) as err:
            raise AssemblyError(f"scene {number}: its clip {paths['clip'].name} cannot be read "
                                f"({type(err).__name__}); render that scene again") from None
        if not info["frames"]:
            raise AssemblyError(f"scene {number}: its clip {paths['clip'].name} has no frames")
        meta = {}
        if paths["info"].is_file():
            meta = json.loads(paths["info"].read_text(encoding="utf-8"))
        clips.append({**info, "clip": paths["clip"], "meta": meta, "scene": number})
    rates = {round(c["fps"], 3) for c in clips}
    if len(rates) > 1:
        raise AssemblyError(f"the clips have different frame rates ({sorted(rates)}); render them "
                            f"again with one --fps")
    return clips


def _fade_frames(board: Storyboard, clips: list[dict[str, Any]], crossfade: float,
                 fps: float) -> list[int]:
    """Overlap in frames at the start of each scene (0 for the first and for cuts)."""
    fades = [0]
    for k in range(1, len(clips)):
        if board.scenes[k].transition != "crossfade" or crossfade <= 0:
            fades.append(0)
            continue
        limit = min(clips[k - 1]["frames"], clips[k]["frames"]) // 2
        fades.append(min(int(round(crossfade * fps)), limit))
    return fades


def _cues(board: Storyboard, clips: list[dict[str, Any]], fades: list[int], total: int) -> list[_Cue]:
    starts, position = [], 0
    for clip, fade in zip(clips, fades):
        position -= fade
        starts.append(position)
        position += clip["frames"]
    ends = starts[1:] + [total]
    return [_Cue(k + 1, s, e, board.scenes[k].description)
            for k, (s, e) in enumerate(zip(starts, ends))]


def _clip_frames(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.width != width or frame.height != height:
                frame = frame.reformat(width=width, height=height)
            yield frame.to_ndarray(format="rgb24")


def _film_frames(clips: list[dict[str, Any]], fades: list[int], cues: list[_Cue], width: int,
                 height: int) -> Iterator[np.ndarray]:
    """Every output frame in order: crossfades blended, subtitles drawn."""
    overlays = {cue.scene: _subtitle_overlay(cue.text, width, height) for cue in cues}
    tail: list[np.ndarray] = []
    for k, clip in enumerate(clips):
        next_fade = fades[k + 1] if k + 1 < len(clips) else 0
        frames = _clip_frames(clip["clip"], width, height)
        held: list[np.ndarray] = []
        for i, frame in enumerate(frames):
            if i < fades[k]:  # blend with the previous clip's held-back tail
                weight = (i + 1) / (fades[k] + 1)
                frame = (tail[i].astype(np.float32) * (1 - weight) + frame * weight).astype(np.uint8)
            if i >= clip["frames"] - next_fade:
                held.append(frame)  # the next scene fades over these
                continue
            yield _with_subtitle(frame, overlays.get(k + 1)) if cues else frame
        tail = held


def _subtitle_overlay(text: str, width: int, height: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(top row, RGB, alpha) of a bottom-centred subtitle band, drawn once per scene."""
    size = max(14, height // 18)
    face = font(size)
    per_line = max(8, int(width * 0.9 / size * (1.9 if text.isascii() else 1.0)))
    lines = textwrap.wrap(text, width=per_line)[:3] or [""]
    line_h = int(size * 1.35)
    band_h = line_h * len(lines) + size // 2
    band = Image.new("RGBA", (width, band_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    for n, line in enumerate(lines):
        w = draw.textlength(line, font=face)
        draw.text(((width - w) / 2, size // 4 + n * line_h), line, font=face,
                  fill=(255, 255, 255, 255), stroke_width=max(1, size // 12),
                  stroke_fill=(0, 0, 0, 255))
    pixels = np.asarray(band).astype(np.float32)
    top = height - band_h - height // 20
    return top, pixels[..., :3], pixels[..., 3:] / 255.0


def _with_subtitle(frame: np.ndarray, overlay: tuple[int, np.ndarray, np.ndarray] | None,
                   ) -> np.ndarray:
    if overlay is None:
        return frame
    top, rgb, alpha = overlay
    frame = frame.copy()
    region = frame[top:top + rgb.shape[0]].astype(np.float32)
    frame[top:top + rgb.shape[0]] = (region * (1 - alpha) + rgb * alpha).astype(np.uint8)
    return frame


def _encode(frames: Iterator[np.ndarray], path: Path, fps: float, width: int, height: int,
            settings: AssemblySettings, total: int) -> tuple[int, int]:
    """Encode video and (optional) music into one mp4; returns (frames, audio samples)."""
    rate = Fraction(fps).limit_denominator(1001)
    count, samples = 0, 0
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(settings.crf), "preset": settings.preset}
        audio = None
        if settings.music is not None:
            audio = out.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "stereo"
            track = _music_track(settings.music, total / fps, settings.music_volume,
                                 settings.music_fade)
            samples = track.shape[1]
            for start in range(0, samples, 1024):
                chunk = np.ascontiguousarray(track[:, start:start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = AUDIO_RATE, start
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
            count += 1
        for packet in video.encode():
            out.mux(packet)
    return count, samples


def _srt(cues: list[_Cue], fps: float) -> str:
    def stamp(frame: int) -> str:
        ms = int(round(frame / fps * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "".join(f"{n}\n{stamp(c.start)} --> {stamp(c.end)}\n{c.text}\n\n"
                   for n, c in enumerate(cues, start=1))


def _poster(board: Storyboard, frame: Image.Image, width: int, height: int) -> Image.Image:
    image = frame.convert("RGB")
    draw = ImageDraw.Draw(image)
    size = max(18, height // 9)
    w = draw.textlength(board.title, font=font(size))
    draw.text(((width - w) / 2, height * 0.38), board.title, font=font(size),
              fill=(255, 255, 255), stroke_width=max(1, size // 14), stroke_fill=(0, 0, 0))
    return image


def _contact_sheet(board: Storyboard, thumbs: list[Image.Image], columns: int = 3,
                   thumb_width: int = 320) -> Image.Image:
    """One frame per scene in a grid, each with its number and description."""
    thumb_h = round(thumb_width * thumbs[0].height / thumbs[0].width)
    caption_h, pad = 54, 10
    rows = math.ceil(len(thumbs) / columns)
    sheet = Image.new("RGB", (columns * (thumb_width + pad) + pad,
                              rows * (thumb_h + caption_h + pad) + pad + 40), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, pad), board.title, font=font(24), fill=(240, 240, 240))
    for n, thumb in enumerate(thumbs):
        x = pad + (n % columns) * (thumb_width + pad)
        y = 40 + pad + (n // columns) * (thumb_h + caption_h + pad)
        sheet.paste(thumb.resize((thumb_width, thumb_h)), (x, y))
        text = board.scenes[n].description
        per_line = 40 if text.isascii() else 22
        lines = textwrap.wrap(f"{n + 1}. {text}", width=per_line)[:2]
        for m, line in enumerate(lines):
            draw.text((x, y + thumb_h + 4 + m * 22), line, font=font(16), fill=(220, 220, 220))
    return sheet
