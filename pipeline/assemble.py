"""Assemble: the scene clips become one film, with transitions, subtitles and music.

    result = assemble_film(board, clips_dir, Path("film.mp4"), AssemblySettings(music=song))

or, while the scenes are still being rendered (the film is then ready moments after the last):

    assembler = FilmAssembler(board, clips_dir, Path("film.mp4"), settings)
    for event in render_storyboard(...):
        if isinstance(event, SceneDone):
            assembler.scene_ready(event.scene)
    result = assembler.finish()

Each scene's place on the film's timeline is encoded as a segment of its own as soon as its clip
(and the clip before it, whose tail it crossfades over) is ready: frames stream from the clips
through the crossfade and the burned-in subtitle into the encoder (PyAV: H.264 yuv420p), so memory
stays flat. `finish` joins the segments packet by packet (no second decode and encode) and adds
the music (AAC), moov atom first. Beside the film: film.srt (the subtitles, timed to the scenes), film.json (the
storyboard as rendered, every clip's seed, models and timings), a poster and a contact sheet.
"""
from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw

from models.files import partial_name, sweep_partials
from pipeline.keyframes import fit as fit_image, title_card
from pipeline.lettering import draw_block, fit_text, safe_box
from pipeline.render import (RenderError, check_renderable, drawn_picture, picture_path,
                             scene_paths, unfinished_scenes)
from pipeline.scene_render import png_bytes
from pipeline.soundtrack import AUDIO_RATE, NarrationTooLong, PlacedLine, mix, place_narration
from pipeline.storyboard import Storyboard, StoryboardError
from pipeline.subtitles import (Band, SubtitleStyle, burn_in_yuv, subtitle_band, subtitle_style,
                                word_indices)
from pipeline.video_io import encode_h264, even_size, frame_at, probe, yuv_rows_to_rgb
from pipeline.voice import Speech, VoiceError, board_speech

log = logging.getLogger(__name__)

MUSIC_SUFFIXES = (".mp3", ".wav", ".m4a", ".ogg", ".aac", ".flac", ".opus")


class AssemblyError(RuntimeError):
    """The film cannot be assembled as asked; the message names the scene or file."""


@dataclass
class AssemblySettings:
    crossfade: float = 0.5          # seconds two scenes overlap when a scene's transition is crossfade
    subtitles: bool = True          # burn the subtitles into the picture (the .srt is always written)
    subtitle_style: SubtitleStyle = field(default_factory=subtitle_style)  # look and place
    voice: str | None = None        # who narrates: None = the storyboard's voice; "none" = silent
    duck_db: float = 12.0           # how far the music drops under the voice
    music: Path | None = None       # background music: trimmed or looped to the film
    music_volume: float = 0.5       # 0-1, applied to the music
    music_fade: float = 1.5         # seconds of fade in and fade out
    crf: int = 20                   # H.264 quality (lower is better and larger)
    preset: str = "veryfast"        # x264 speed preset

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssemblySettings:
        """Settings as `dataclasses.asdict` wrote them (a job's record)."""
        style = data.get("subtitle_style")
        data = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        return cls(**{**data, "music": Path(data["music"]) if data.get("music") else None,
                      "subtitle_style": SubtitleStyle(**style) if style else subtitle_style()})


@dataclass
class FilmResult:
    film: Path
    srt: Path
    info: Path
    poster: Path
    contact_sheet: Path
    duration: float                 # seconds
    frames: int
    seconds: float                  # wall time of `finish`: after the last scene, the film took this
    timings: dict[str, float] = field(default_factory=dict)
    cast_sheet: Path | None = None  # every scene's keyframe beside its cast's pictures


@dataclass(frozen=True)
class _Cue:
    scene: int
    start: int                      # first output frame
    end: int                        # one past the last output frame
    text: str
    line: PlacedLine | None = None  # the spoken sentence it shows (None: a silent scene's)


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
                  settings: AssemblySettings | None = None,
                  base_dir: Path | None = None) -> FilmResult:
    """The film from clips that are all rendered already."""
    return FilmAssembler(board, clips_dir, out, settings, base_dir).finish()


class FilmAssembler:
    """A film assembled segment by segment as its scenes' clips arrive, joined at `finish`."""

    def __init__(self, board: Storyboard, clips_dir: Path, out: Path,
                 settings: AssemblySettings | None = None, base_dir: Path | None = None):
        self.board, self.settings = board, settings or AssemblySettings()
        self.clips_dir, self.out = Path(clips_dir), Path(out)
        # where the storyboard's relative picture paths start (its folder; a studio job's folder)
        self.base_dir = Path(base_dir) if base_dir else self.clips_dir.parent
        if self.out.suffix.lower() != ".mp4":
            raise AssemblyError(f"the film must be an .mp4 file (got {self.out.name})")
        if self.settings.crossfade < 0:
            raise AssemblyError(f"crossfade must be 0 seconds or more (got "
                                f"{self.settings.crossfade})")
        if self.settings.music is not None:
            check_music(self.settings.music)
        try:  # the filter reads every text the film draws; each script needs its font
            check_renderable(board)
            self.speeches = board_speech(board, self.settings.voice)  # before any frame is made
        except (RenderError, StoryboardError, VoiceError) as err:
            raise AssemblyError(str(err)) from None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.segments_dir = self.out.with_name(f".{self.out.stem}_segments")
        self.ready: set[int] = set()
        self.encoded: dict[int, Path] = {}   # scene -> its segment, in timeline order
        self.clips: dict[int, dict[str, Any]] = {}  # scene -> its clip, probed for its segment
        self.tail: list[np.ndarray] = []     # the last encoded scene's clip past its slot
        self.layout: _Layout | None = None
        self.streaming = True                # False after a segment failed: finish redoes all
        self.segment_s = 0.0                 # seconds spent encoding segments
        self.thumbs: dict[int, Image.Image] = {}  # scene -> its clip's middle frame
        # the film's sound (narration over the music), encoded once the layout is known, while
        # later scenes render: (the layout it was made for, its file or None if silent, samples)
        self.sound: tuple[_Layout, Path | None, int] | None = None
        self.sound_s = 0.0                   # seconds spent encoding it
        self.cast_sheet: Path | None = None  # written with the film when the cast has pictures
        # segments are encoded in a thread of their own, so whoever reports the scenes (a UI
        # showing previews) is not held up; only that thread changes the state above (`finish`
        # reads it beside the last segments, to make the poster and the cast sheet)
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="storyreel-assemble")

    def scene_ready(self, number: int) -> None:
        """Scene `number`'s clip is finished: encode, in the background, every segment that
        can be made now."""
        self.worker.submit(self._advance, number)

    def scenes_kept(self, rendering: set[int]) -> None:
        """Before a render of the scenes in `rendering`: every other scene whose clip is already
        finished is ready now (a re-render or a resume joins them to the new ones)."""
        count = len(self.board.scenes)
        unfinished = set(unfinished_scenes(self.clips_dir, count))
        for number in range(1, count + 1):
            if number not in rendering and number not in unfinished:
                self.scene_ready(number)

    def close(self) -> None:
        """Stop without a film (the render was cancelled): drop the segments made so far."""
        self.worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.segments_dir, ignore_errors=True)

    def _advance(self, number: int) -> None:
        """A problem here is not raised: `finish` assembles from the clips again and names it."""
        self.ready.add(number)
        if not self.streaming:
            return
        try:
            while len(self.encoded) + 1 in self.ready:
                self._encode_segment(len(self.encoded) + 1)
            if self.layout is not None:
                self._sound_track()
        except (AssemblyError, av.error.FFmpegError, OSError, ValueError) as err:
            log.warning("assembling while rendering stopped at scene %d (%s); the film is "
                        "assembled at the end instead", len(self.encoded) + 1, err)
            self.streaming = False

    def finish(self) -> FilmResult:
        """Encode the segments still missing, join them with the music, write the extras."""
        finishing = time.perf_counter()
        with ThreadPoolExecutor(1, thread_name_prefix="storyreel-front") as beside:
            front = beside.submit(self._front_matter)  # while the last segments are encoded
            self.worker.shutdown(wait=True)
        try:  # the segments go, whether the film is made or refused
            clips = _check_clips(self.board, self.clips_dir, self.clips)
            if not self.streaming or (self.layout and self.layout.size != _film_size(clips)):
                self._restart()
            for number in range(len(self.encoded) + 1, len(self.board.scenes) + 1):
                self._encode_segment(number)
            layout = self.layout
            assert layout is not None  # set by the first segment; a storyboard has a scene
            mark = time.perf_counter()
            sound, samples = self._sound_track()
            timings = {"segments_s": round(self.segment_s, 3), "sound_s": round(self.sound_s, 3),
                       "sound_at_finish_s": round(time.perf_counter() - mark, 3)}
            mark = time.perf_counter()
            sweep_partials(self.out.parent)
            partial = partial_name(self.out)
            frames_written = _join(list(self.encoded.values()), sound, partial)
            os.replace(partial, self.out)
        finally:
            shutil.rmtree(self.segments_dir, ignore_errors=True)
        timings["join_s"] = round(time.perf_counter() - mark, 3)
        mark = time.perf_counter()
        extras = self._extras(clips, layout, front.result())
        timings["extras_s"] = round(time.perf_counter() - mark, 3)
        seconds = time.perf_counter() - finishing  # after the last scene
        timings["finish_s"] = round(seconds, 3)
        return self._record(extras, layout, clips, frames_written, samples, timings, seconds)

    # ---- segments ------------------------------------------------------------------------

    def _restart(self) -> None:
        shutil.rmtree(self.segments_dir, ignore_errors=True)
        self.encoded, self.tail, self.layout, self.streaming = {}, [], None, True
        self.thumbs, self.clips, self.sound = {}, {}, None

    def _sound_track(self) -> tuple[Path | None, int]:
        """The film's sound as an encoded track (None when the film is silent) and its length
        in samples; made once per layout, so normally while the later scenes render."""
        layout = self.layout
        assert layout is not None
        if self.sound is None or self.sound[0] is not layout:
            began = time.perf_counter()
            self.segments_dir.mkdir(parents=True, exist_ok=True)
            track, samples = _encode_sound(layout, self.settings, self.segments_dir / "sound.mp4")
            self.sound = (layout, track, samples)
            self.sound_s += time.perf_counter() - began
        return self.sound[1], self.sound[2]

    def _encode_segment(self, number: int) -> None:
        began = time.perf_counter()
        clip = self.clips[number] = _check_clip(self.clips_dir, number)
        if self.layout is None:  # the film takes the first clip's frame rate and size
            self.layout = _Layout.of(self.board, clip, self.settings, self.speeches)
        layout = self.layout
        if round(clip["fps"], 3) != round(layout.fps, 3):
            raise AssemblyError(f"the clips have different frame rates ({layout.fps:g} and "
                                f"{clip['fps']:g} in scene {number}); render them again with "
                                f"one --fps")
        k = number - 1
        next_fade = layout.fades[k + 1] if k + 1 < len(layout.fades) else 0
        frames = _clip_pictures(clip["clip"], layout.width, layout.height)
        first = layout.spans[k][0]  # this scene's first frame on the film's timeline
        tail = self.tail
        middle = clip["frames"] // 2  # the contact sheet's and poster's frame of this scene

        def timeline() -> Iterator[np.ndarray]:  # yuv420p all the way: a blend of two pictures
            for i in range(layout.slots[k]):      # is the same in YUV as in RGB (an affine map)
                frame = next(frames)
                if i == middle:
                    self.thumbs[number] = Image.fromarray(
                        yuv_rows_to_rgb(frame, 0, layout.height))
                if i < layout.fades[k]:
                    weight = (i + 1) / (layout.fades[k] + 1)
                    frame = (tail[i].astype(np.float32) * (1 - weight)
                             + frame * weight).astype(np.uint8)
                yield burn_in_yuv(frame, layout.band_at(first + i))

        self.segments_dir.mkdir(parents=True, exist_ok=True)
        path = self.segments_dir / f"segment_{number:02d}.mp4"
        _encode_video(timeline(), path, layout, self.settings)
        self.tail = [next(frames) for _ in range(next_fade)]
        frames.close()
        self.encoded[number] = path
        seconds = time.perf_counter() - began
        self.segment_s += seconds
        log.info("segment %d encoded in %.2f s", number, seconds)

    # ---- beside the film -------------------------------------------------------------------

    def _front_matter(self) -> tuple[_Layout, bytes, bytes | None] | None:
        """The poster and the cast sheet (None without cast pictures) as PNG files' bytes, for
        the layout of the segments made so far; None before the first. Neither needs the last
        scene's clip (only scene 1's frame and the keyframes), so they are made while the last
        segments are encoded."""
        layout, first = self.layout, self.clips.get(1)
        if layout is None or first is None or not self.streaming:
            return None
        thumb = self.thumbs.get(1) or frame_at(first["clip"], first["frames"] // 2)
        poster = _poster(self.board, self._clean_frame(1, thumb, layout), layout.width,
                         layout.height)
        cast = _cast_sheet(self.board, self.clips_dir, self.base_dir)
        return layout, png_bytes(poster), None if cast is None else png_bytes(cast)

    def _extras(self, clips: list[dict[str, Any]], layout: _Layout,
                front: tuple[_Layout, bytes, bytes | None] | None) -> tuple[Path, Path, Path]:
        """(subtitles, poster, contact sheet) beside the film, and the cast sheet; the poster
        and the cast sheet as `front` made them, unless the film was assembled anew since."""
        out, board = self.out, self.board
        srt = out.with_suffix(".srt")
        srt.write_text(_srt(layout.cues, layout.fps), encoding="utf-8")
        poster = out.with_name(f"{out.stem}_poster.png")
        sheet = out.with_name(f"{out.stem}_contact.png")
        thumbs = [self.thumbs.get(c["scene"]) or frame_at(c["clip"], c["frames"] // 2)
                  for c in clips]  # one frame per scene, kept while its segment was made
        if front is None or front[0] is not layout:
            front = self._front_matter()
        assert front is not None  # every segment is made by now
        poster.write_bytes(front[1])
        _contact_sheet(board, thumbs).save(sheet)
        self.cast_sheet = out.with_name(f"{out.stem}_cast.png") if front[2] else None
        if self.cast_sheet is not None:
            self.cast_sheet.write_bytes(front[2])
        return srt, poster, sheet

    def _clean_frame(self, number: int, frame: Image.Image, layout: _Layout) -> Image.Image:
        """The poster's picture: the scene's frame, or, for a title card (whose frames carry
        the scene's text), the card's plain colour field, so the title is the only text."""
        info = scene_paths(self.clips_dir, number)["info"]
        try:
            source = json.loads(info.read_text(encoding="utf-8")).get("keyframe")
        except (OSError, ValueError):
            source = None
        if source != "title card":
            return frame
        return title_card(self.board.scenes[number - 1], number, self.board.title,
                          layout.width, layout.height).background

    def _record(self, extras: tuple[Path, Path, Path], layout: _Layout,
                clips: list[dict[str, Any]], frames_written: int, samples: int,
                timings: dict[str, float], seconds: float) -> FilmResult:
        """film.json: the storyboard as rendered, each clip's record, the assembly's timings."""
        (srt, poster, sheet), out, board, settings = extras, self.out, self.board, self.settings
        fps = layout.fps
        duration = frames_written / fps
        info = out.with_suffix(".json")
        info.write_text(json.dumps({
            "film": out.name, "srt": srt.name, "poster": poster.name, "contact_sheet": sheet.name,
            "cast_sheet": self.cast_sheet.name if self.cast_sheet else None,
            "duration": round(duration, 3), "frames": frames_written, "fps": fps,
            "asked_seconds": round(board.total_duration, 3), "film_seconds": round(duration, 3),
            "width": layout.width, "height": layout.height,
            "crossfade_seconds": settings.crossfade,
            "subtitles_burned_in": settings.subtitles, "quality": _quality(clips),
            "aspect": board.aspect, "subtitle_style": asdict(settings.subtitle_style),
            "narration": _narration_record(self.speeches, layout.lines, settings),
            "music": {"file": str(settings.music), "volume": settings.music_volume,
                      "seconds": round(samples / AUDIO_RATE, 3)} if settings.music else None,
            "storyboard": board.to_dict(),
            "scenes": [{**c["meta"], "clip": str(c["clip"]), "start": round(start / fps, 3),
                        "end": round(end / fps, 3)} for c, (start, end) in zip(clips, layout.spans)],
            "subtitles": [{"scene": cue.scene, "start": round(cue.start / fps, 3),
                           "end": round(cue.end / fps, 3), "text": cue.text}
                          for cue in layout.cues],
            "assembly_timings": timings,
        }, ensure_ascii=False, indent=2), encoding="utf-8")
        return FilmResult(out, srt, info, poster, sheet, duration, frames_written, seconds,
                          timings, self.cast_sheet)


@dataclass
class _Layout:
    """The film's frame rate, size and timeline, fixed by its first clip."""
    fps: float
    width: int
    height: int
    slots: list[int]                 # frames each scene holds on the timeline
    fades: list[int]                 # frames each scene crossfades over the previous clip
    cues: list[_Cue]
    lines: list[PlacedLine]          # the narration's sentences, placed on the timeline
    bands: list[tuple[int, int, Band]]  # (first frame, one past the last, lettering), in order

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Each scene's (first frame, one past its last) on the film's timeline."""
        edges = [0, *itertools.accumulate(self.slots)]
        return list(zip(edges, edges[1:]))

    def band_at(self, frame: int) -> Band | None:
        """The lettering burned into the film's frame `frame`, if any."""
        k = bisect.bisect_right(self.bands, frame, key=lambda b: b[0]) - 1
        return self.bands[k][2] if k >= 0 and frame < self.bands[k][1] else None

    @classmethod
    def of(cls, board: Storyboard, clip: dict[str, Any], settings: AssemblySettings,
           speeches: list[Speech | None]) -> _Layout:
        fps = clip["fps"]
        width, height = even_size(clip["width"], clip["height"])
        slots = _slots(board, fps)
        fades = [int(round(board.crossfade_into(n, settings.crossfade) * fps))
                 for n in range(1, len(board.scenes) + 1)]
        try:
            lines = place_narration(speeches, slots, fps)
        except NarrationTooLong as err:
            raise AssemblyError(str(err)) from None
        cues = _cues(board, slots, lines)
        bands = _bands(cues, width, height, settings.subtitle_style) \
            if settings.subtitles else []
        return cls(fps, width, height, slots, fades, cues, lines, bands)


def _narration_record(speeches: list[Speech | None], lines: list[PlacedLine],
                      settings: AssemblySettings) -> dict[str, Any] | None:
    """film.json's account of the voice: who spoke, and each sentence's place in seconds."""
    spoken = [s for s in speeches if s is not None]
    if not spoken:
        return None
    return {"engine": spoken[0].engine, "voice": spoken[0].voice, "duck_db": settings.duck_db,
            "lines": [{"scene": line.scene, "text": line.text,
                       "start": round(line.start / AUDIO_RATE, 3),
                       "end": round(line.end / AUDIO_RATE, 3)} for line in lines]}


def _film_size(clips: list[dict[str, Any]]) -> tuple[int, int]:
    return even_size(clips[0]["width"], clips[0]["height"])


def _quality(clips: list[dict[str, Any]]) -> str | None:
    """The film's video quality: "turbo" or "full" (None for animatics; "mixed" after scenes
    were re-rendered in the other one)."""
    found = {c["meta"].get("quality") for c in clips} - {None}
    return found.pop() if len(found) == 1 else ("mixed" if found else None)


def _check_clips(board: Storyboard, clips_dir: Path,
                 probed: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every scene's clip, probed (or as `probed` already has it), all at one frame rate."""
    probed = probed or {}
    clips = [probed.get(n) or _check_clip(clips_dir, n) for n in range(1, len(board.scenes) + 1)]
    rates = {round(c["fps"], 3) for c in clips}
    if len(rates) > 1:
        raise AssemblyError(f"the clips have different frame rates ({sorted(rates)}); render them "
                            f"again with one --fps")
    return clips


def _check_clip(clips_dir: Path, number: int) -> dict[str, Any]:
    """Scene `number`'s clip, probed, with its info file's contents as "meta"."""
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
    return {**info, "clip": paths["clip"], "meta": meta, "scene": number}


def _slots(board: Storyboard, fps: float) -> list[int]:
    """Frames each scene holds on the film's timeline: exactly its duration, rounded where the
    scene starts and ends (not per scene), so the film lasts the storyboard's total to a frame."""
    edges, elapsed = [0], 0.0
    for scene in board.scenes:
        elapsed += scene.duration
        edges.append(int(round(elapsed * fps)))
    return [b - a for a, b in zip(edges, edges[1:])]


def _cues(board: Storyboard, slots: list[int], lines: list[PlacedLine]) -> list[_Cue]:
    """The subtitles: a narrated scene's sentences, each from the frame its voice starts until
    just after it ends; a silent scene's description, for exactly its place on the timeline."""
    cues, start = [], 0
    for k, length in enumerate(slots):
        spoken = [line for line in lines if line.scene == k + 1]
        cues.extend(_Cue(k + 1, line.first_frame, line.last_frame, line.text, line)
                    for line in spoken)
        if not spoken:
            cues.append(_Cue(k + 1, start, start + length, board.scenes[k].description))
        start += length
    return cues


def _bands(cues: list[_Cue], width: int, height: int,
           style: SubtitleStyle) -> list[tuple[int, int, Band]]:
    """Each cue's lettering and the frames it covers; with a highlight style, one band per
    spoken word (the word in its highlight colour) while that word is said."""
    bands = []
    for cue in cues:
        line = cue.line
        if style.highlight and line and line.words:
            edges = [cue.start] + [w[0] for w in line.words[1:]] + [cue.end]
            shown = word_indices(cue.text, [w[2] for w in line.words])
            for index, a, b in zip(shown, edges, edges[1:]):
                if b > a:
                    bands.append((a, b, subtitle_band(cue.text, width, height, style, index)))
        else:
            bands.append((cue.start, cue.end, subtitle_band(cue.text, width, height, style)))
    return bands


def _clip_pictures(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """The clip's frames as yuv420p pictures (pipeline/video_io.py's layout, as decoded: no
    conversion to RGB), then its last frame forever (a clip shorter than its slot, or with no
    crossfade tail, holds its last picture)."""
    last = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if (frame.width, frame.height, frame.format.name) != (width, height, "yuv420p"):
                frame = frame.reformat(width=width, height=height, format="yuv420p")
            last = frame.to_ndarray()
            yield last
    while last is not None:
        yield last


def _encode_video(pictures: Iterator[np.ndarray], path: Path, layout: _Layout,
                  settings: AssemblySettings) -> int:
    """Encode yuv420p pictures into a video-only mp4 (one segment); returns how many."""
    with av.open(str(path), mode="w", format="mp4") as out:
        return encode_h264(out, pictures, layout.fps, settings.crf, settings.preset,
                           (layout.width, layout.height), layout="yuv420p")


def _encode_sound(layout: _Layout, settings: AssemblySettings,
                  path: Path) -> tuple[Path | None, int]:
    """The film's narration over its music, encoded (AAC) into an audio-only mp4 at `path`;
    returns (path, samples), or (None, 0) for a film with neither."""
    if settings.music is None and not layout.lines:
        return None, 0
    seconds = sum(layout.slots) / layout.fps
    total = int(round(seconds * AUDIO_RATE))
    music = None if settings.music is None else _music_track(
        settings.music, seconds, settings.music_volume, settings.music_fade)
    with av.open(str(path), mode="w", format="mp4") as out:
        samples = _mux_audio(out, mix(layout.lines, total, music, settings.duck_db))
    return path, samples


def _join(segments: list[Path], sound: Path | None, path: Path) -> int:
    """The segments one after another and the sound beside them, packets copied (nothing is
    encoded again), into one mp4; returns how many frames."""
    count = 0
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        with av.open(str(segments[0])) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        if sound is not None:
            with av.open(str(sound)) as track:
                audio = out.add_stream_from_template(track.streams.audio[0])
                for packet in track.demux(track.streams.audio[0]):
                    if packet.dts is not None:
                        packet.stream = audio
                        out.mux(packet)
        offset = 0  # where the next segment starts, in the segments' time base
        for segment in segments:
            with av.open(str(segment)) as source:
                stream = source.streams.video[0]
                packets = [p for p in source.demux(stream) if p.dts is not None]
                start, end = min(p.pts for p in packets), 0
                for packet in packets:
                    end = max(end, packet.pts + packet.duration)
                    packet.pts += offset - start
                    packet.dts += offset - start
                    packet.stream = video
                    out.mux(packet)
                    count += 1
                offset += end - start
    return count


def _mux_audio(out: Any, track: np.ndarray) -> int:
    audio = out.add_stream("aac", rate=AUDIO_RATE)
    audio.layout = "stereo"
    for start in range(0, track.shape[1], 1024):
        chunk = np.ascontiguousarray(track[:, start:start + 1024])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode(None):
        out.mux(packet)
    return track.shape[1]


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


def cast_picture(board: Storyboard, index: int, clips_dir: Path, base_dir: Path,
                 drawn: bool = True) -> Path | None:
    """Cast member `index`'s (1-based) picture on disk: the storyboard's (relative to its
    folder, `base_dir`), else (`drawn`) the one drawn beside the clips by the render (this
    storyboard may predate it)."""
    reference = board.cast[index - 1].reference
    candidates = [picture_path(reference, base_dir)] if reference else []
    if drawn:
        candidates.append(drawn_picture(clips_dir, index))
    return next((p for p in candidates if p.is_file()), None)


def _cast_sheet(board: Storyboard, clips_dir: Path, base_dir: Path, thumb_width: int = 320,
                face: int = 160) -> Image.Image | None:
    """Every scene's keyframe beside the pictures of its cast: how a person checks that each
    character looks the same from scene to scene."""
    pictures = {m.name: cast_picture(board, k, clips_dir, base_dir)
                for k, m in enumerate(board.cast, 1)}
    if not any(pictures.values()):
        return None  # nothing to compare the keyframes with
    caption_h, pad = 22, 10
    columns = 1 + max(len(s.cast) for s in board.scenes) if any(s.cast for s in board.scenes) \
        else 1
    keyframes = [clips_dir / f"scene_{n:02d}_keyframe.png" for n in range(1, len(board.scenes) + 1)]
    first = next((k for k in keyframes if k.is_file()), None)
    ratio = 9 / 16
    if first is not None:
        with Image.open(first) as image:
            ratio = image.height / image.width
    thumb_h = round(thumb_width * ratio)
    row_h = max(thumb_h, face) + caption_h + pad
    width = pad + thumb_width + pad + (columns - 1) * (face + pad)
    width = max(width, pad + len(board.cast) * (face + pad))
    sheet = Image.new("RGB", (width, 40 + (face + caption_h + pad) + len(board.scenes) * row_h
                              + pad), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    heading = fit_text(f"{board.title} · cast", width - 2 * pad, 1, 24, 14)
    draw_block(draw, heading, pad, pad, fill=(240, 240, 240), align="left")

    def tile(path: Path | None, x: int, y: int, w: int, h: int, caption: str) -> None:
        if path is not None and path.is_file():
            with Image.open(path) as image:
                sheet.paste(fit_image(image, w, h), (x, y))
        else:
            draw.rectangle((x, y, x + w - 1, y + h - 1), outline=(90, 90, 96))
        text = fit_text(caption, w, 1, 14, 10)
        draw_block(draw, text, x, y + h + 4, fill=(220, 220, 220), align="left")

    y = 40 + pad
    for k, member in enumerate(board.cast):  # the references, once, at the top
        tile(pictures[member.name], pad + k * (face + pad), y, face, face, member.name)
    y += face + caption_h + pad
    for number, scene in enumerate(board.scenes, start=1):
        tile(keyframes[number - 1], pad, y, thumb_width, thumb_h, f"{number}. {scene.description}")
        for k, name in enumerate(scene.cast):
            tile(pictures.get(name), pad + thumb_width + pad + k * (face + pad), y, face, face,
                 name)
        y += row_h
    return sheet
