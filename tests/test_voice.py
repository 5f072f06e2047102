"""Voice-over: narration spoken by the offline voice, placed in the film, subtitles in time with
it (measured on the film's own audio track), music ducked under it, and every format."""
from __future__ import annotations

import json
import wave
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pipeline.assemble import AssemblyError, AssemblySettings, assemble_film
from pipeline.render import RenderSettings, render_storyboard
from pipeline.storyboard import MAX_DURATION, StoryboardError, with_scene
from pipeline.subtitles import subtitle_style
from pipeline.voice import (BREATH, LEAD, VoiceError, fit_to_narration, narrate, resolve_voice,
                            split_sentences)
from tests.conftest import make_board

FPS = 24
RATE = 44100
TONE = 60.0  # Hz: the test music; the voices have next to no energy this low


# ---- measuring a film ------------------------------------------------------------------------


def film_audio(path: Path) -> np.ndarray:
    """The film's audio track, mono float32 at RATE."""
    chunks = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    return np.concatenate(chunks)


def speech_spans(audio: np.ndarray, quiet: float = 0.25) -> list[tuple[float, float]]:
    """(onset, offset) seconds of each stretch of sound, found from the audio's energy in 5 ms
    windows: sound is anything within 30 dB of the loudest window; a stretch ends after
    `quiet` seconds below that."""
    window = RATE // 200
    energy = (audio[:len(audio) // window * window].reshape(-1, window) ** 2).mean(axis=1)
    loud = energy > energy.max() * 10 ** (-30 / 10)
    spans, start, silent = [], None, 0
    for k, is_loud in enumerate(loud):
        if is_loud:
            if start is None:
                start = k
            silent, last = 0, k
        elif start is not None:
            silent += 1
            if silent * window / RATE >= quiet:
                spans.append((start * window / RATE, (last + 1) * window / RATE))
                start = None
    if start is not None:
        spans.append((start * window / RATE, (last + 1) * window / RATE))
    return spans


def srt_cues(path: Path) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((seconds(start), seconds(end), "\n".join(lines[2:])))
    return cues


def burned_in_spans(film: Path, plain: Path, fps: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of frames where `film` differs from the same film
    assembled without subtitles: what a viewer sees as burned-in subtitles."""
    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(video=0)]

    shown = [np.abs(a - b).mean() > 8 for a, b in zip(frames(film), frames(plain))]
    spans, start = [], None
    for k, on in enumerate(shown + [False]):
        if on and start is None:
            start = k
        elif not on and start is not None:
            spans.append((start / fps, k / fps))
            start = None
    return spans


def tone_level(audio: np.ndarray, start: float, end: float) -> float:
    """The music tone's amplitude (dB) in [start, end) seconds, from its FFT bin (normalised by
    the window, so windows of any length compare)."""
    piece = audio[int(start * RATE):int(end * RATE)]
    window = np.hanning(len(piece))
    spectrum = np.abs(np.fft.rfft(piece * window)) * 2 / window.sum()
    bins = np.fft.rfftfreq(len(piece), 1 / RATE)
    near = np.abs(bins - TONE) < 3
    return 20 * np.log10(spectrum[near].max() + 1e-12)


def tone_wav(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * 22050)) / 22050
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes((np.sin(2 * np.pi * TONE * t) * 16000).astype(np.int16).tobytes())
    return path


# ---- the voice -------------------------------------------------------------------------------


def test_sentences_are_split_for_both_languages():
    assert split_sentences("Mr. Fox wakes up. He runs 3.5 miles! Home?", "en") == \
        ["Mr. Fox wakes up.", "He runs 3.5 miles!", "Home?"]
    assert split_sentences("小猫醒了。它跑到河边！真开心", "zh") == ["小猫醒了。", "它跑到河边！", "真开心"]
    long = "小猫在雪地里慢慢地走着，它看见远处有一座红色的小房子，房子的窗户里透出温暖的灯光。"
    parts = split_sentences(long, "zh")
    assert len(parts) > 1 and "".join(parts) == long and all(len(p) <= 32 for p in parts)


@pytest.mark.parametrize("language, text", [("en", "The fox wakes up. It runs home."),
                                            ("zh", "小狐狸醒了。它跑回家。")])
def test_the_offline_voice_speaks_each_sentence_with_its_word_timings(language, text):
    speech = narrate(text, language, "auto")
    assert speech.engine == "espeak" and len(speech.lines) == 2
    for line in speech.lines:
        assert 0.4 < line.seconds < 4 and np.abs(line.samples).max() > 0.1
        assert line.words and line.words[0].start == 0.0
        assert [w.start for w in line.words] == sorted(w.start for w in line.words)
        assert line.words[-1].end <= line.seconds + 1e-6
    assert resolve_voice("auto", language)[2]  # the notes say which voice was used


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_listed_offline_voice_speaks(language):
    from pipeline.voice import voice_choices

    for choice in voice_choices(language)[1:-1]:
        line = narrate("Hello." if language == "en" else "你好。", language, choice).lines[0]
        assert line.seconds > 0.2 and np.abs(line.samples).max() > 0.1, choice


def test_a_voice_that_does_not_exist_is_refused_by_name():
    with pytest.raises(VoiceError, match="robot"):
        resolve_voice("robot:x", "en")
    with pytest.raises(VoiceError, match="does not speak 'zh'"):
        resolve_voice("espeak:en-us", "zh")


def test_scenes_grow_to_hold_their_narration_and_one_too_long_is_named():
    board = make_board({"duration": 1.0, "narration": "The fox wakes up and looks around."},
                       {"duration": 6.0, "narration": "It runs."})
    fitted, notes = fit_to_narration(board, fps=FPS)
    spoken = narrate("The fox wakes up and looks around.", "en", "auto")
    assert fitted.scenes[0].duration >= LEAD + spoken.lines[0].seconds + BREATH
    assert fitted.scenes[1].duration == 6.0 and any("scene 1 lasts" in n for n in notes)
    assert any("eSpeak NG" in n and "models download kokoro-82m" in n for n in notes)
    endless = "小狐狸在白雪覆盖的山坡上慢慢地走着。" * 12  # about 50 s of speech
    with pytest.raises(StoryboardError, match="scene 2, narration") as err:
        fit_to_narration(replace(make_board({}, {"narration": endless}), language="zh"))
    assert f"{MAX_DURATION:g}" in str(err.value)


# ---- the film --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    """Three scenes: two narrated (the third crossfades in), the middle one silent."""
    folder = tmp_path_factory.mktemp("narrated")
    board = make_board(
        {"narration": "A small fox wakes up in the snow. It stretches and yawns.",
         "description": "The fox wakes."},
        {"description": "A quiet village under the snow.", "duration": 2.5},
        {"narration": "The fox runs to the frozen river.", "transition": "crossfade",
         "description": "The fox runs."})
    board, _ = fit_to_narration(board, fps=FPS)
    list(render_storyboard(board, folder, RenderSettings(backend="animatic", width=128,
                                                         height=72, fps=FPS)))
    return board, folder


def test_subtitles_start_with_the_voice_measured_on_the_film_audio(narrated, tmp_path):
    board, clips = narrated
    result = assemble_film(board, clips, tmp_path / "film.mp4")
    cues = srt_cues(result.srt)
    spoken = [c for c in cues if c[2] != "A quiet village under the snow."]
    assert [c[2] for c in spoken] == ["A small fox wakes up in the snow.",
                                      "It stretches and yawns.", "The fox runs to the frozen river."]
    spans = speech_spans(film_audio(result.film))
    for start, end, text in spoken:
        onset = min(spans, key=lambda s: abs(s[0] - start))
        assert abs(onset[0] - start) <= 0.1, f"{text!r}: cue at {start:.3f} s, voice at {onset[0]:.3f} s"
        assert start <= onset[1] and abs(onset[1] - end) <= 0.15, f"{text!r} ends off its voice"
    assert spans[0][0] >= spoken[0][0] - 0.1  # nothing is heard before the first cue
    silent = cues[2] if cues[2][2].startswith("A quiet") else None
    assert silent and not any(silent[0] + 0.05 < s[0] < silent[1] - 0.05 for s in spans)
    assert abs(result.duration - board.total_duration) <= 1 / FPS  # the voice never drifts
    info = json.loads(result.info.read_text(encoding="utf-8"))
    assert info["narration"]["engine"] == "espeak" and len(info["narration"]["lines"]) == 3


def test_srt_cues_equal_the_burned_in_subtitles(narrated, tmp_path):
    board, clips = narrated
    film = assemble_film(board, clips, tmp_path / "film.mp4",
                         AssemblySettings(subtitle_style=subtitle_style("boxed")))
    plain = assemble_film(board, clips, tmp_path / "plain.mp4", AssemblySettings(subtitles=False))
    cues = [(round(a, 3), round(b, 3)) for a, b, _ in srt_cues(film.srt)]
    seen = [(round(a, 3), round(b, 3)) for a, b in burned_in_spans(film.film, plain.film, FPS)]
    assert len(seen) == len(cues)
    for (a, b), (c, d) in zip(cues, seen):
        assert abs(a - c) <= 0.5 / FPS and abs(b - d) <= 0.5 / FPS, (cues, seen)


def test_music_ducks_under_the_voice_and_comes_back_between_lines(narrated, tmp_path):
    board, clips = narrated
    result = assemble_film(board, clips, tmp_path / "film.mp4",
                           AssemblySettings(music=tone_wav(tmp_path / "tone.wav", 3.0),
                                            music_fade=0.0, music_volume=0.5))
    audio = film_audio(result.film)
    lines = json.loads(result.info.read_text(encoding="utf-8"))["narration"]["lines"]
    between = next(c for c in srt_cues(result.srt) if c[2].startswith("A quiet"))
    open_level = tone_level(audio, between[0] + 0.3, between[1] - 0.3)
    for line in lines:
        middle = (line["start"] + line["end"]) / 2
        under = tone_level(audio, middle - 0.25, middle + 0.25)
        assert open_level - under >= 8, f"{line['text']!r}: music only {open_level - under:.1f} dB lower"


def test_a_narration_too_long_for_its_scene_is_named_at_assembly(narrated, tmp_path):
    board, clips = narrated
    longer = board.scenes[2].narration + " Then it runs all the way back home again."
    with pytest.raises(AssemblyError, match="scene 3: its narration runs"):
        assemble_film(with_scene(board, 3, narration=longer), clips, tmp_path / "film.mp4")
    assert not (tmp_path / "film.mp4").exists()


@pytest.mark.parametrize("aspect", ["9:16", "1:1"])
def test_vertical_and_square_films_have_their_size_and_subtitles_inside(tmp_path, aspect):
    board = make_board({"narration": "A fox in the snow looks up at the falling flakes.",
                        "duration": 1.0})
    board, _ = fit_to_narration(replace(board, aspect=aspect), fps=8)
    list(render_storyboard(board, tmp_path, RenderSettings(backend="animatic", fps=8)))
    width, height = {"9:16": (576, 1024), "1:1": (768, 768)}[aspect]
    film = assemble_film(board, tmp_path, tmp_path / "film.mp4")
    plain = assemble_film(board, tmp_path, tmp_path / "plain.mp4", AssemblySettings(subtitles=False))
    with av.open(str(film.film)) as a, av.open(str(plain.film)) as b:
        assert (a.streams.video[0].width, a.streams.video[0].height) == (width, height)
        one = next(f for k, f in enumerate(a.decode(video=0)) if k == 8).to_ndarray(format="gray")
        two = next(f for k, f in enumerate(b.decode(video=0)) if k == 8).to_ndarray(format="gray")
    ink = np.abs(one.astype(int) - two.astype(int)) > 40
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert len(rows), "no subtitle is burned in"
    assert columns[0] >= 0.04 * width and columns[-1] <= 0.96 * width
    assert rows[0] >= 0.04 * height and rows[-1] <= (0.8 if aspect == "9:16" else 0.96) * height
    keyframe = Image.open(tmp_path / "scene_01_keyframe.png")
    assert keyframe.size == (width, height)


def test_a_resumed_job_keeps_its_voice_format_and_subtitle_style(tmp_path):
    from pipeline import manifest
    from pipeline.history import History

    board = replace(make_board({"narration": "A fox wakes."}), aspect="1:1", voice="espeak:cmn")
    style = subtitle_style("boxed", size=1.4, colour="yellow", position="top")
    history = History(tmp_path / "outputs")
    started = manifest.start(history, board, tmp_path / "job", RenderSettings(), tmp_path,
                             film=tmp_path / "film.mp4",
                             assembly=AssemblySettings(subtitle_style=style, duck_db=18))
    resumed = manifest.load(history, started.job_id)
    assert resumed.board.aspect == "1:1" and resumed.board.voice == "espeak:cmn"
    assert resumed.assembly.subtitle_style == style and resumed.assembly.duck_db == 18


def test_the_planner_sizes_narration_so_the_film_keeps_its_length():
    from pipeline.planner import PlanRequest, plan_storyboard

    for scenes, seconds in ((3, 12), (6, 12), (8, 12)):
        board = plan_storyboard(PlanRequest("a lighthouse keeper on a stormy island",
                                            scenes=scenes, seconds=seconds, use_model=False))
        assert abs(board.total_duration - seconds) < 1e-6
        for scene in board.scenes:
            if scene.narration:
                assert narrate(scene.narration, "en", "auto").seconds() <= scene.duration + 0.1
        assert any("eSpeak NG" in n and "kokoro-82m" in n for n in board.notes)
    assert all(s.narration == s.description for s in plan_storyboard(PlanRequest(
        "a lighthouse keeper on a stormy island", scenes=3, seconds=12, use_model=False)).scenes)
    assert any("cut to fit" in n or "is silent" in n for n in board.notes)  # 8 scenes in 12 s
