"""Soundtrack: the narration placed on the film's timeline, and the music ducked under it.

    lines = place_narration(speeches, slots, fps)        # where each sentence is spoken
    audio = mix(lines, total_samples, music)              # stereo float32 at AUDIO_RATE

Placement is sample-accurate and frame-aligned: each sentence starts on the first frame at or
after LEAD (scene start) or GAP (the previous sentence's end), so its subtitle cue, which can
only change on a frame, starts on the sample where the voice does. A crossfading scene's
narration starts at the scene's own start on the timeline (where its slot begins), like its cue.
The music's gain drops by `duck_db` under each run of speech, with a smooth attack before the
first word and a slow release after the last, and returns between lines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import av
import numpy as np

from pipeline.voice import GAP, LEAD, Speech, Word

AUDIO_RATE = 44100
MERGE_GAP = 0.6       # seconds: speech runs closer than this are ducked as one


class NarrationTooLong(ValueError):
    """A scene's narration runs past its end; the message names the scene."""


@dataclass
class PlacedLine:
    scene: int
    text: str
    samples: np.ndarray              # mono float32 at AUDIO_RATE
    start: int                       # first sample on the film's timeline
    first_frame: int                 # the frame its cue starts on (start == its first sample)
    last_frame: int                  # one past the cue's last frame
    words: list[tuple[int, int, str]]  # each word's (first frame, one past its last, text)

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


def resample(samples: np.ndarray, rate: int, to: int = AUDIO_RATE) -> np.ndarray:
    """Mono float32 samples at `rate` resampled to `to` (libswresample, delay compensated)."""
    if rate == to:
        return samples.astype(np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to)
    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="flt",
                                       layout="mono")
    frame.sample_rate = rate
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    out += [f.to_ndarray()[0] for f in resampler.resample(None)]
    audio = np.concatenate(out) if out else np.zeros(0, np.float32)
    return audio[:int(round(len(samples) * to / rate))]


def place_narration(speeches: list[Speech | None], slots: list[int], fps: float,
                    rate: int = AUDIO_RATE) -> list[PlacedLine]:
    """Every sentence of every scene at its place on the timeline; raises NarrationTooLong."""
    placed: list[PlacedLine] = []
    scene_start = 0
    for number, (speech, slot) in enumerate(zip(speeches, slots), start=1):
        scene_end = scene_start + slot
        if speech is not None:
            at = scene_start / fps + LEAD   # seconds on the timeline the next line may start
            for line in speech.lines:
                first = math.ceil(at * fps - 1e-9)
                samples = resample(line.samples, line.rate, rate)
                start = int(round(first / fps * rate))
                ends = (start + len(samples)) / rate
                if ends > scene_end / fps:
                    raise NarrationTooLong(
                        f"scene {number}: its narration runs {ends - scene_end / fps:.2f} s past "
                        f"the scene's end; lengthen the scene or shorten the narration")
                placed.append(PlacedLine(number, line.text, samples, start, first,
                                         math.ceil(ends * fps - 1e-9),
                                         _word_frames(line.words, first, fps)))
                at = ends + GAP
        scene_start = scene_end
    return placed


def _word_frames(words: list[Word], first: int, fps: float) -> list[tuple[int, int, str]]:
    return [(first + int(round(w.start * fps)),
             first + max(int(round(w.end * fps)), int(round(w.start * fps)) + 1), w.text)
            for w in words]


def voice_track(lines: list[PlacedLine], total: int) -> np.ndarray:
    """Every placed sentence summed into one mono track `total` samples long."""
    track = np.zeros(total, np.float32)
    for line in lines:
        end = min(line.end, total)
        track[line.start:end] += line.samples[:end - line.start]
    return track


def duck_envelope(lines: list[PlacedLine], total: int, duck_db: float, attack: float = 0.12,
                  release: float = 0.4, rate: int = AUDIO_RATE) -> np.ndarray:
    """The music's gain per sample: 1 between lines, 10^(-duck_db/20) under speech, reached
    over `attack` seconds before the first word and left over `release` after the last."""
    gain = np.ones(total, np.float32)
    if not lines or duck_db <= 0:
        return gain
    low = 10 ** (-duck_db / 20)
    runs: list[list[int]] = []
    for line in sorted(lines, key=lambda x: x.start):
        if runs and line.start - runs[-1][1] < MERGE_GAP * rate:
            runs[-1][1] = max(runs[-1][1], line.end)
        else:
            runs.append([line.start, line.end])
    fall, rise = max(1, int(attack * rate)), max(1, int(release * rate))
    for start, end in runs:
        a = max(0, start - fall)
        gain[a:start] = np.minimum(gain[a:start], _ramp(1.0, low, fall)[fall - (start - a):])
        gain[start:min(end, total)] = low
        b = min(total, end + rise)
        if b > end:
            gain[end:b] = np.minimum(gain[end:b], _ramp(low, 1.0, rise)[:b - end])
    return gain


def _ramp(begin: float, end: float, count: int) -> np.ndarray:
    """A raised-cosine ramp: smooth at both ends, no click."""
    t = (1 - np.cos(np.linspace(0, np.pi, count, dtype=np.float32))) / 2
    return (begin + (end - begin) * t).astype(np.float32)


def mix(lines: list[PlacedLine], total: int, music: np.ndarray | None,
        duck_db: float = 12.0) -> np.ndarray:
    """Stereo float32 (2, total): the voice in the centre over the ducked music."""
    voice = voice_track(lines, total)
    out = np.zeros((2, total), np.float32)
    if music is not None:
        out += music[:, :total] * duck_envelope(lines, total, duck_db)
    out += voice
    return np.clip(out, -1.0, 1.0)
