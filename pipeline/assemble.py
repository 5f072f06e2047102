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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw

from models.files import partial_name, sweep_partials
from pipeline.lettering import draw_block, fit_text, safe_box
from pipeline.render import RenderError, check_renderable, scene_paths
from pipeline.storyboard import Storyboard, StoryboardError
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
    try:  # the filter reads every text the film draws; each script needs its font
        check_renderable(board)
    except (RenderError, StoryboardError) as err:
        raise AssemblyError(str(err)) from None
    clips = _check_clips(board, clips_dir)
    fps = clips[0]["fps"]
    width, height = even_size(clips[0]["width"], clips[0]["height"])
    slots = _slots(board, fps)
    fades = [int(round(board.crossfade_into(n, settings.crossfade) * fps))
             for n in range(1, len(board.scenes) + 1)]
    total = sum(slots)
    cues = _cues(board, slots)
    out.parent.mkdir(parents=True, exist_ok=True)

    timings: dict[str, float] = {}
    mark = time.perf_counter()
    sweep_partials(out.parent)
    partial = partial_name(out)
    frames_written, samples = _encode(
        _film_frames(clips, slots, fades, cues if settings.subtitles else [], width, height),
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
        "asked_seconds": round(board.total_duration, 3), "film_seconds": round(duration, 3),
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


def _slots(board: Storyboard, fps: float) -> list[int]:
    """Frames each scene holds on the film's timeline: exactly its duration, rounded where the
    scene starts and ends (not per scene), so the film lasts the storyboard's total to a frame."""
    edges, elapsed = [0], 0.0
    for scene in board.scenes:
        elapsed += scene.duration
        edges.append(int(round(elapsed * fps)))
    return [b - a for a, b in zip(edges, edges[1:])]


def _cues(board: Storyboard, slots: list[int]) -> list[_Cue]:
    """One subtitle per scene, shown for exactly the scene's place on the timeline."""
    cues, start = [], 0
    for k, length in enumerate(slots):
        cues.append(_Cue(k + 1, start, start + length, board.scenes[k].description))
        start += length
    return cues


def _clip_frames(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """The clip's frames, then its last frame forever (a clip shorter than its slot, or with no
    crossfade tail, holds its last picture)."""
    last = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.width != width or frame.height != height:
                frame = frame.reformat(width=width, height=height)
            last = frame.to_ndarray(format="rgb24")
            yield last
    while last is not None:
        yield last


def _film_frames(clips: list[dict[str, Any]], slots: list[int], fades: list[int],
                 cues: list[_Cue], width: int, height: int) -> Iterator[np.ndarray]:
    """Every output frame in order: each scene for its slot, a crossfading scene blended over
    the previous clip's tail, subtitles drawn."""
    overlays = {cue.scene: _subtitle_overlay(cue.text, width, height) for cue in cues}
    tail: list[np.ndarray] = []  # the previous clip running on past its slot
    for k, clip in enumerate(clips):
        next_fade = fades[k + 1] if k + 1 < len(clips) else 0
        frames = _clip_frames(clip["clip"], width, height)
        for i in range(slots[k]):
            frame = next(frames)
            if i < fades[k]:
                weight = (i + 1) / (fades[k] + 1)
                frame = (tail[i].astype(np.float32) * (1 - weight) + frame * weight).astype(np.uint8)
            yield _with_subtitle(frame, overlays.get(k + 1)) if cues else frame
        tail = [next(frames) for _ in range(next_fade)]
        frames.close()


def _subtitle_overlay(text: str, width: int, height: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(top row, RGB, alpha) of a bottom-centred subtitle band, drawn once per scene: white with
    a dark outline, wrapped and shrunk to stay inside the safe box."""
    left, _, right, lower = safe_box(width, height)
    size = max(14, min(width, height) // 18)
    block = fit_text(text, right - left, 3, size, max(12, size * 6 // 10), stroke_ratio=1 / 12)
    pad = block.size // 4
    band = Image.new("RGBA", (width, block.height + 2 * pad), (0, 0, 0, 0))
    draw_block(ImageDraw.Draw(band), block, width / 2, pad)
    pixels = np.asarray(band).astype(np.float32)
    top = lower - band.height - height // 40
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
    left, upper, right, lower = safe_box(width, height)
    block = fit_text(board.title, right - left, 2, max(18, min(width, height) // 9),
                     max(14, min(width, height) // 24), stroke_ratio=1 / 14)
    draw_block(ImageDraw.Draw(image), block, width / 2, (height - block.height) / 2,
               fill=(255, 255, 255), stroke_fill=(0, 0, 0))
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
    heading = fit_text(board.title, sheet.width - 2 * pad, 1, 24, 14)
    draw_block(draw, heading, pad, pad, fill=(240, 240, 240), align="left")
    for n, thumb in enumerate(thumbs):
        x = pad + (n % columns) * (thumb_width + pad)
        y = 40 + pad + (n // columns) * (thumb_h + caption_h + pad)
        sheet.paste(thumb.resize((thumb_width, thumb_h)), (x, y))
        caption = fit_text(f"{n + 1}. {board.scenes[n].description}", thumb_width, 2, 16)
        draw_block(draw, caption, x, y + thumb_h + 6, fill=(220, 220, 220), align="left")
    return sheet
