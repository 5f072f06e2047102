"""Voice: a scene's narration spoken, sentence by sentence, with the engine's own timings.

    speech = narrate("A fox wakes up. It runs to the river.", "en", "espeak:en-us")
    for line in speech.lines:         # one per sentence, its audio trimmed to the voice
        print(line.text, line.seconds, [w.text for w in line.words])

Engines share one small interface (`VoiceEngine.speak` one sentence → `Line`):
- `espeak`: eSpeak NG from the `espeakng-loader` wheel (library and data ship inside it), driven
  through its C API. Robotic, always here, nothing to download. Its WORD events give each word's
  first sample, so English and Chinese both get word timings.

Sentences are split here, not by the engine: Chinese full stops (。！？；) as well as ASCII ones,
and a sentence too long for one subtitle is split again at its commas. Each sentence is spoken
on its own, so its cue starts exactly where its audio starts once the assembler places it.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import math
import re
import threading
import wave
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.fonts import CJK_TEXT
from pipeline.storyboard import MAX_DURATION, FieldProblem, Storyboard, StoryboardError

log = logging.getLogger(__name__)

LEAD = 0.25          # seconds from a scene's start to its first spoken word
GAP = 0.3            # seconds of silence between two sentences of one scene
BREATH = 0.5         # seconds after the last word before the scene may end
LONGEST_LINE = {"en": 90, "zh": 32}  # characters; a longer sentence is split at its commas
SAMPLE_TEXT = {"en": "Welcome to Storyreel. This is how your film will sound.",
               "zh": "欢迎来到故事卷轴。你的电影听起来会是这样。"}
SILENT = "none"      # the voice choice that keeps every film silent


class VoiceError(RuntimeError):
    """A voice that cannot speak as asked; the message names the voice and what to do."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float     # seconds from the start of its line's audio
    end: float


@dataclass
class Line:
    """One spoken sentence: mono samples trimmed so the voice starts at sample 0."""
    text: str
    samples: np.ndarray          # float32, -1..1
    rate: int                    # samples per second
    words: list[Word] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


@dataclass
class Speech:
    """A scene's narration: its sentences in order, and who spoke them."""
    engine: str
    voice: str
    lines: list[Line]

    def seconds(self, fps: float | None = None) -> float:
        """How long the scene must be to hold this narration: the lead, every sentence with
        the gaps between them, and a breath after. With `fps`, each sentence also waits up to a
        frame so it starts on a frame (the film's cues change on frames)."""
        wait = 1 / fps if fps else 0.1
        spoken = sum(line.seconds + wait for line in self.lines)
        return LEAD + spoken + GAP * max(0, len(self.lines) - 1) + BREATH

    def need(self, fps: float | None = None) -> float:
        """`seconds`, rounded up to tenths (the table's precision)."""
        return math.ceil(self.seconds(fps) * 10) / 10


class VoiceEngine(Protocol):
    name: str

    def speak(self, text: str, voice: str) -> Line: ...


# ---- sentences ----------------------------------------------------------------------------


def split_sentences(text: str, language: str) -> list[str]:
    """The narration's sentences, each short enough for one subtitle."""
    text = " ".join(text.split())
    if not text:
        return []
    ends = r"[。！？；!?]+[”」』\"']?|(?<=[^\d\s])\.+[”\"']?(?=\s|$)"
    pieces, start = [], 0
    for match in re.finditer(ends, text):
        if _ABBREVIATION.search(text[start:match.end()]):
            continue  # "Mr." ends no sentence
        pieces.append(text[start:match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    sentences = []
    for piece in filter(None, pieces):
        sentences.extend(_split_long(piece, LONGEST_LINE.get(language, 90)))
    return sentences


_ABBREVIATION = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Prof|Mt|Jr|Sr|vs|etc|e\.g|i\.e)\.$",
                          re.IGNORECASE)


def _split_long(sentence: str, limit: int) -> list[str]:
    """A sentence longer than `limit` characters, split after its commas into nearly equal
    parts (never inside a clause)."""
    if len(sentence) <= limit:
        return [sentence]
    clauses = [c.strip() for c in re.findall(r"[^,，、;:：]+[,，、;:：]?\s*", sentence)]
    parts, current = [], ""
    for clause in filter(None, clauses):
        if current and len(current) + len(clause) > limit:
            parts.append(current)
            current = ""
        joiner = "" if CJK_TEXT.match(clause) else " "
        current = f"{current}{joiner}{clause}".strip() if current else clause
    if current:
        parts.append(current)
    return parts


# ---- eSpeak NG ------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8, _ENDPAUSE = 1, 0x1000
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1


class _EspeakEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_EspeakEvent))


class Espeak:
    """eSpeak NG through its C API, from the library inside the `espeakng-loader` wheel."""

    name = "espeak"
    VOICES = {"en": ("en-us", "en-gb-x-rp", "en-us+f3", "en+m3"), "zh": ("cmn", "cmn+f3")}
    _lock = threading.Lock()   # the library keeps one global state

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise VoiceError("the offline voice needs the espeakng-loader package: "
                             "pip install -r requirements.txt") from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        self.rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
            _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise VoiceError("eSpeak NG could not start (its data folder inside espeakng-loader "
                             "is missing or unreadable)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []  # (type, text position, length, sample)
        self._callback = _SynthCallback(self._collect)  # kept: the library holds a pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int,
                 events: ctypes.POINTER(_EspeakEvent)) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample))
            i += 1
        return 0

    def speak(self, text: str, voice: str) -> Line:
        encoded = text.encode("utf-8")
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise VoiceError(f"eSpeak NG has no voice {voice!r} (voices: "
                                 f"{', '.join(v for vs in self.VOICES.values() for v in vs)})")
            self._chunks, self._events = [], []
            status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                           _CHARS_UTF8 | _ENDPAUSE, None, None)
            if status != 0:
                raise VoiceError(f"eSpeak NG could not speak {text[:40]!r} (error {status})")
            chunks, events = self._chunks, self._events
        samples = (np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks
                   else np.zeros(0, np.float32))
        starts = [(text[pos - 1:pos - 1 + length], sample)  # positions count from 1
                  for kind, pos, length, sample in events if kind == _EVENT_WORD]
        words = [(word, sample, starts[k + 1][1] if k + 1 < len(starts) else len(samples))
                 for k, (word, sample) in enumerate(starts)]
        return _trimmed_line(text, samples, self.rate, words)


def _trimmed_line(text: str, samples: np.ndarray, rate: int,
                  words: list[tuple[str, int, int]]) -> Line:
    """A line from an engine's samples and its words' (text, first sample, end sample): cut to
    begin at the first word (or the first sound) and end where the voice falls silent."""
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    if not len(loud):
        raise VoiceError(f"the voice made no sound for {text[:40]!r}")
    words = [w for w in words if w[0].strip()]
    first = words[0][1] if words else int(loud[0])
    last = int(loud[-1]) + 1
    timed = [Word(word, max(0, start - first) / rate, max(0, min(end, last) - first) / rate)
             for word, start, end in words]
    samples = samples[first:last]
    peak = float(np.abs(samples).max())
    if peak > 0.99:  # a voice louder than full scale would clip in the film's mix
        samples = samples * (0.95 / peak)
    return Line(text, samples.astype(np.float32), rate, timed)


# ---- Kokoro ---------------------------------------------------------------------------------


class Kokoro:
    """Kokoro-82M (models/speech.py): natural voices, 24 kHz. English lines get word timings
    from the model's predicted phoneme durations; Mandarin lines are timed as a whole."""

    name = "kokoro"

    def __init__(self, language: str):
        from models.speech import VoiceModelMissing, load_kokoro

        try:
            self.model = load_kokoro(language)
        except VoiceModelMissing as err:
            raise VoiceError(str(err)) from None
        self.language = language

    def speak(self, text: str, voice: str) -> Line:
        from models.speech import RATE, chinese_g2p, english_g2p

        if self.language == "zh":
            phonemes, tokens = chinese_g2p()(text)[0], []
        else:
            phonemes, tokens = english_g2p()(text)
        if not phonemes.strip():
            raise VoiceError(f"Kokoro found nothing to say in {text[:40]!r}")
        audio, durations = self.model.synthesize(phonemes, voice)
        samples = audio.numpy().astype(np.float32)
        return _trimmed_line(text, samples, RATE, _token_samples(tokens, durations, RATE))


def _token_samples(tokens: list, durations: Any, rate: int) -> list[tuple[str, int, int]]:
    """Each English token's (text, first sample, end sample) from the predicted durations, as
    kokoro's own KPipeline.join_timestamps computes them (in seconds)."""
    if not tokens:
        return []
    from kokoro.pipeline import KPipeline

    KPipeline.join_timestamps(tokens, durations)
    return [(t.text, int(t.start_ts * rate), int(t.end_ts * rate)) for t in tokens
            if t.start_ts is not None and t.end_ts is not None and any(c.isalnum() for c in t.text)]


# ---- choosing a voice ----------------------------------------------------------------------


@functools.cache
def _espeak() -> Espeak:
    return Espeak()


@functools.cache
def _kokoro(language: str) -> Kokoro:
    return Kokoro(language)


ENGINES = ("kokoro", "espeak")


def engine(name: str, language: str) -> VoiceEngine:
    if name == "espeak":
        return _espeak()
    if name == "kokoro":
        return _kokoro(language)
    raise VoiceError(f"voice engine {name!r} is not one of: {', '.join(ENGINES)}")


def voice_choices(language: str) -> list[str]:
    """Every voice a film in `language` can use here, as engine:voice, plus "auto" and "none"
    (Kokoro's voices only when its weights are on this machine)."""
    from models.speech import kokoro_available, kokoro_voices

    quality = [f"kokoro:{v}" for v in kokoro_voices(language)] if kokoro_available(language) \
        else []
    return ["auto", *quality, *(f"espeak:{v}" for v in Espeak.VOICES[language]), SILENT]


def resolve_voice(choice: str, language: str) -> tuple[str, str, list[str]]:
    """(engine, voice, notes) for a film's voice choice; raises VoiceError naming a bad one.
    "auto" is Kokoro when its weights are here, else the offline voice, with a note saying how
    to get Kokoro."""
    from models.registry import VOICE_MODELS, how_to_get
    from models.speech import DEFAULT_VOICES, kokoro_available, kokoro_voices

    choice = (choice or "auto").strip()
    notes: list[str] = []
    if choice == "auto":
        voices = kokoro_voices(language) if kokoro_available(language) else []
        if voices:
            return "kokoro", DEFAULT_VOICES[language] if DEFAULT_VOICES[language] in voices \
                else voices[0], notes
        notes.append(f"narrated with the offline eSpeak NG voice (robotic); for a natural voice "
                     f"get Kokoro: {how_to_get(VOICE_MODELS[language])}")
        return "espeak", Espeak.VOICES[language][0], notes
    name, _, voice = choice.partition(":")
    if name not in ENGINES:
        raise VoiceError(f"voice {choice!r}: engine {name!r} is not one of: "
                         f"{', '.join(ENGINES)} (or auto, {SILENT})")
    known = kokoro_voices(language) if name == "kokoro" else Espeak.VOICES[language]
    if name == "kokoro" and not known:
        raise VoiceError(f"voice {choice!r}: Kokoro is not on this machine for {language!r}: "
                         f"{how_to_get(VOICE_MODELS[language])}")
    voice = voice or known[0]
    if voice not in known:
        raise VoiceError(f"voice {choice!r} does not speak {language!r}; voices for it: "
                         f"{', '.join(known)}")
    return name, voice, notes


def voice_language(choice: str | None) -> str | None:
    """The language a named voice speaks (None for "auto", "none" and unknown names)."""
    from models.speech import PREFIXES

    name, _, voice = (choice or "").partition(":")
    for language in ("en", "zh"):
        if (name == "espeak" and voice in Espeak.VOICES[language]) or \
                (name == "kokoro" and voice.startswith(PREFIXES[language])):
            return language
    return None


def narrate(text: str, language: str, choice: str) -> Speech:
    """The narration spoken by the chosen voice, one Line per sentence."""
    name, voice, _ = resolve_voice(choice, language)
    return spoken(text, language, name, voice)


@functools.lru_cache(maxsize=128)
def spoken(text: str, language: str, name: str, voice: str) -> Speech:
    """Cached: the planner's duration check and the assembler hear the same speech."""
    speaker = engine(name, language)
    lines = [speaker.speak(sentence, voice) for sentence in split_sentences(text, language)]
    return Speech(name, voice, lines)


def board_speech(board: Storyboard, choice: str | None = None) -> list[Speech | None]:
    """Each scene's narration as speech (None for a silent scene or a silent film)."""
    return film_speech(board, choice)[0]


def film_speech(board: Storyboard, choice: str | None = None,
                ) -> tuple[list[Speech | None], list[str]]:
    """(each scene's speech, the voice's notes), the voice resolved once for the whole film."""
    choice = choice or board.voice
    if choice == SILENT or not any(s.narration.strip() for s in board.scenes):
        return [None] * len(board.scenes), []
    name, voice, notes = resolve_voice(choice, board.language)
    return [spoken(s.narration, board.language, name, voice) if s.narration.strip() else None
            for s in board.scenes], notes


def fit_to_narration(board: Storyboard, choice: str | None = None,
                     fps: float | None = None) -> tuple[Storyboard, list[str]]:
    """A copy whose scenes last at least as long as their narration (plus lead and breath),
    and notes naming the scenes that grew; raises StoryboardError naming each scene whose
    narration is too long for any scene."""
    speeches, notes = film_speech(board, choice)  # notes: which voice, how to get a better
    scenes, problems = [], []
    for number, (scene, speech) in enumerate(zip(board.scenes, speeches), start=1):
        if speech is None:
            scenes.append(scene)
            continue
        need = speech.need(fps)
        if need > MAX_DURATION:
            problems.append(FieldProblem(number, "narration", f"takes {need:g} s to say; a scene "
                                         f"lasts at most {MAX_DURATION:g} s: shorten it or split "
                                         f"the scene"))
        elif need > scene.duration:
            notes.append(f"scene {number} lasts {need:g} s (was {scene.duration:g} s) so its "
                         f"narration fits")
            scene = replace(scene, duration=need)
        scenes.append(scene)
    if problems:
        raise StoryboardError(problems)
    return replace(board, scenes=scenes), notes


def write_wav(speech: Speech, path: Path) -> float:
    """The speech as a 16-bit mono WAV file, its sentences GAP apart; returns its seconds."""
    rate = speech.lines[0].rate if speech.lines else 22050
    pause = np.zeros(int(GAP * rate), np.float32)
    parts = [p for line in speech.lines for p in (line.samples, pause)][:-1]
    samples = np.concatenate(parts) if parts else np.zeros(rate // 10, np.float32)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return len(samples) / rate
