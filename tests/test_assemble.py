"""Film assembly: order, transitions, exact length, subtitles (Chinese too), music, refusals."""
from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.assemble import AssemblyError, AssemblySettings, assemble_film, check_music
from pipeline.fonts import font
from pipeline.render import RenderSettings, render_storyboard
from pipeline.video_io import moov_before_mdat, probe, read_frames
from tests.conftest import ROOT, make_board

FPS = 12


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Three animatic clips: 1 s (cut), 1.5 s (crossfade), 1 s (crossfade), with colour cards."""
    folder = tmp_path_factory.mktemp("clips")
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    scenes = []
    for k, colour in enumerate(colours):
        still = folder / f"still{k}.png"
        Image.new("RGB", (128, 72), colour).save(still)
        scenes.append({"keyframe": str(still), "duration": (1.0, 1.5, 1.0)[k],
                       "transition": "cut" if k == 0 else "crossfade",
                       "description": ("森林探险的故事从这里开始", "A river runs through the woods.",
                                       "小动物们出现了")[k]})
    board = make_board(*scenes)
    list(render_storyboard(board, folder, RenderSettings(backend="animatic", width=128,
                                                         height=72, fps=FPS)))
    return board, folder


def sine_wav(path: Path, seconds: float, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def test_film_is_browser_playable_and_exactly_as_long_as_planned(rendered, tmp_path):
    board, clips = rendered
    result = assemble_film(board, clips, tmp_path / "film.mp4", AssemblySettings(crossfade=0.5))
    info = probe(result.film)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    expected = 1.0 + 1.5 + 1.0  # crossfades overlap scenes; they do not shorten the film
    assert abs(info["duration"] - expected) <= 1 / FPS
    assert moov_before_mdat(result.film)
    details = json.loads(result.info.read_text(encoding="utf-8"))
    assert details["asked_seconds"] == expected
    assert abs(details["film_seconds"] - expected) <= 1 / FPS
    assert details["crossfade_seconds"] == 0.5 and len(details["scenes"]) == 3
    assert details["storyboard"]["scenes"][1]["description"] == "A river runs through the woods."
    assert all(s["seed"] == 3 and s["backend"] == "animatic" for s in details["scenes"])


def test_scenes_are_in_order_and_crossfades_blend(rendered, tmp_path):
    board, clips = rendered
    result = assemble_film(board, clips, tmp_path / "film.mp4",
                           AssemblySettings(crossfade=0.5, subtitles=False))
    frames = read_frames(result.film)
    centre = [f[20:40, 20:60].reshape(-1, 3).mean(axis=0) for f in frames]
    dominant = [int(np.argmax(c)) for c in centre]
    assert dominant[0] == 0 and dominant[len(frames) // 2] == 1 and dominant[-1] == 2
    # Scene 2 starts at frame 12 and fades in over scene 1's tail for 0.5 s (6 frames):
    # red gives way to green gradually.
    assert dominant[11] == 0
    fade = [c[1] - c[0] for c in centre[12:18]]
    assert fade == sorted(fade) and fade[0] < 0 < fade[-1]


def test_cuts_do_not_overlap(rendered, tmp_path):
    board, clips = rendered
    result = assemble_film(board, clips, tmp_path / "film.mp4",
                           AssemblySettings(crossfade=0.0, subtitles=False))
    assert probe(result.film)["frames"] == (1.0 + 1.5 + 1.0) * FPS


def test_srt_is_timed_to_the_scenes(rendered, tmp_path):
    board, clips = rendered
    result = assemble_film(board, clips, tmp_path / "film.mp4", AssemblySettings(crossfade=0.5))
    blocks = result.srt.read_text(encoding="utf-8").strip().split("\n\n")
    assert [b.splitlines()[2] for b in blocks] == [s.description for s in board.scenes]
    assert blocks[0].splitlines()[1] == "00:00:00,000 --> 00:00:01,000"
    assert blocks[1].splitlines()[1] == "00:00:01,000 --> 00:00:02,500"
    assert blocks[2].splitlines()[1] == "00:00:02,500 --> 00:00:03,500"


def test_chinese_glyphs_render_as_chinese_not_boxes():
    def glyph(char: str) -> np.ndarray:
        canvas = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(canvas).text((4, 4), char, font=font(48, char), fill=255)
        return np.asarray(canvas) > 128

    forest, river, animal = glyph("森"), glyph("河"), glyph("物")
    assert forest.sum() > 100 and river.sum() > 100
    # A font without Chinese draws the same "tofu" box for every character.
    assert (forest != river).sum() > 100 and (river != animal).sum() > 100
    assert font(20, "森").getmask("森").getbbox() is not None


def test_subtitles_are_burned_in_the_bottom_band(rendered, tmp_path):
    board, clips = rendered
    plain = read_frames(assemble_film(board, clips, tmp_path / "a.mp4",
                                      AssemblySettings(subtitles=False)).film)
    titled = read_frames(assemble_film(board, clips, tmp_path / "b.mp4").film)
    bottom = np.abs(titled[3][50:70].astype(int) - plain[3][50:70]).mean()
    top = np.abs(titled[3][0:20].astype(int) - plain[3][0:20]).mean()
    assert bottom > 10 and top < 2


def test_segments_keep_the_clips_pictures_outside_the_subtitles(rendered, tmp_path,
                                                                monkeypatch):
    """A segment goes from the clip's decoder to the encoder in YUV, as decoded: only the
    subtitle band's rows go to RGB to be lettered and back. Every other row reaches the encoder
    exactly as the clip holds it (converting whole frames to RGB and back cost the bench film
    1.3 pixel levels on average against its clips, above the subtitles; now 0.3)."""
    from pipeline import assemble

    real, pictures = assemble.encode_h264, []

    def encode(container, frames, *args, **kwargs):
        def seen():
            for frame in frames:
                pictures.append(frame.copy())
                yield frame
        return real(container, seen(), *args, **kwargs)

    monkeypatch.setattr(assemble, "encode_h264", encode)
    board, clips = rendered
    assemble_film(board, clips, tmp_path / "film.mp4")
    with av.open(str(clips / "scene_01.mp4")) as clip:
        decoded = [frame.to_ndarray() for frame in clip.decode(video=0)]
    assert len(pictures) == probe(tmp_path / "film.mp4")["frames"]
    for made, held in zip(pictures[:FPS], decoded):  # scene 1 (1 s): a cut, nothing faded in
        assert made.shape == held.shape == (72 * 3 // 2, 128)
        assert np.array_equal(made[:20], held[:20])  # above the subtitles: the clip's own
    assert np.abs(pictures[3][50:70].astype(int) - decoded[3][50:70]).mean() > 10  # lettered


def test_music_is_looped_to_the_film_and_encoded_as_aac(rendered, tmp_path):
    board, clips = rendered
    song = sine_wav(tmp_path / "song.wav", 1.0)
    result = assemble_film(board, clips, tmp_path / "film.mp4",
                           AssemblySettings(music=song, music_volume=0.8))
    assert probe(result.film)["audio"] == ["aac"]
    with av.open(str(result.film)) as container:
        audio = container.streams.audio[0]
        seconds = sum(f.samples for f in container.decode(audio=0)) / audio.rate
    assert abs(seconds - result.duration) < 0.1
    details = json.loads(result.info.read_text())
    assert details["music"]["volume"] == 0.8


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (b"this is not a song at all" * 50, "not audio"),
    (b"ID3\x03\x00\x00\x00" + bytes(range(256)) * 20, "not audio"),
])
def test_bad_music_is_refused_with_its_name(tmp_path, content, words):
    bad = tmp_path / "song.mp3"
    bad.write_bytes(content)
    with pytest.raises(AssemblyError, match=f"song.mp3 .*{words}|song.mp3 {words}"):
        check_music(bad)
    with pytest.raises(AssemblyError, match="does not exist"):
        check_music(tmp_path / "missing.ogg")


def test_a_missing_clip_names_its_scene(rendered, tmp_path):
    board, clips = rendered
    partial = tmp_path / "clips"
    partial.mkdir()
    for name in ("scene_01.mp4", "scene_03.mp4"):
        (partial / name).write_bytes((clips / name).read_bytes())
    with pytest.raises(AssemblyError, match="scene 2: its clip scene_02.mp4 is missing"):
        assemble_film(board, partial, tmp_path / "film.mp4")
    assert not (tmp_path / "film.mp4").exists()
    from pipeline.assemble import FilmAssembler

    assembler = FilmAssembler(board, partial, tmp_path / "film2.mp4")
    assembler.scene_ready(1)  # scene 1's segment is made while scene 2 is awaited...
    with pytest.raises(AssemblyError, match="scene 2: its clip scene_02.mp4 is missing"):
        assembler.finish()
    assert not any(tmp_path.glob(".film2_segments*"))  # ...and goes with the refusal


def test_poster_and_contact_sheet(rendered, tmp_path):
    board, clips = rendered
    result = assemble_film(board, clips, tmp_path / "film.mp4")
    poster, sheet = Image.open(result.poster), Image.open(result.contact_sheet)
    assert poster.size == (128, 72)
    assert sheet.width > 3 * 300 and sheet.height > 200


def test_make_refuses_bad_music_before_any_work(tmp_path):
    bad = tmp_path / "song.mp3"
    bad.write_text("nope")
    done = subprocess.run([sys.executable, "-m", "pipeline", "make", "a fox in the snow", "--out",
                           str(tmp_path / "film.mp4"), "--music", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "song.mp3" in done.stderr and "not audio" in done.stderr
    assert not (tmp_path / "film_scenes").exists()


def test_make_goes_from_prompt_to_a_narrated_chinese_film(tmp_path, embedded_chat):
    """The whole chain with the offline voice: each scene at least its asked length and long
    enough for its narration, each subtitle starting where its sentence is heard."""
    from tests.test_voice import film_audio, speech_spans, srt_cues

    done = subprocess.run([sys.executable, "-m", "pipeline", "make",
                           "制作一段关于森林探险的短视频，包含河流和小动物", "--scenes", "3",
                           "--seconds", "9", "--seed", "4", "--out", str(tmp_path / "film.mp4"),
                           "--backend", "animatic", "--width", "256", "--height", "144",
                           "--fps", "12"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    film = tmp_path / "film.mp4"
    info = probe(film)
    details = json.loads((tmp_path / "film.json").read_text(encoding="utf-8"))
    board = details["storyboard"]
    assert board["language"] == "zh" and "SmolLM2" in board["planner"]
    total = sum(s["duration"] for s in board["scenes"])
    assert total >= 9 and abs(info["duration"] - total) <= 1 / 12 and info["audio"] == ["aac"]
    assert details["narration"]["engine"] == "espeak" and details["narration"]["voice"] == "cmn"
    cues = srt_cues(tmp_path / "film.srt")
    assert [c[2] for c in cues] == [line["text"] for line in details["narration"]["lines"]]
    onsets = [s[0] for s in speech_spans(film_audio(film))]
    for start, _, text in cues:
        assert min(abs(o - start) for o in onsets) <= 0.1, f"{text}: no voice starts at {start}"
    assert (tmp_path / "film_poster.png").is_file() and (tmp_path / "film_contact.png").is_file()


def test_no_chinese_font_is_a_clear_message_not_a_traceback(rendered, tmp_path, monkeypatch):
    from pipeline import fonts

    board, clips = rendered
    monkeypatch.setenv("STORYREEL_FONT", str(tmp_path / "missing.ttf"))
    fonts.cjk_font_path.cache_clear()
    try:
        with pytest.raises(AssemblyError, match="install a CJK font"):
            assemble_film(board, clips, tmp_path / "film.mp4")
    finally:
        fonts.cjk_font_path.cache_clear()


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def test_the_film_is_assembled_while_scenes_render_and_joined_without_encoding_again(tmp_path):
    """Each scene's segment is encoded once its clip (and the clip it crossfades from) is
    done, and the film's sound once the first is, while later scenes render; the film is then
    those packets, unchanged."""
    from pipeline.assemble import FilmAssembler
    from pipeline.events import SceneDone, SceneStarted

    board = make_board(*({"duration": 1.0, "transition": t} for t in ("cut", "crossfade", "cut")))
    assembler = FilmAssembler(board, tmp_path / "clips", tmp_path / "film.mp4",
                              AssemblySettings(crossfade=0.5,
                                               music=sine_wav(tmp_path / "song.wav", 1.0)))
    encoded_when_started: dict[int, list[int]] = {}
    for event in render_storyboard(board, tmp_path / "clips",
                                   RenderSettings(backend="animatic", width=128, height=72,
                                                  fps=FPS)):
        if isinstance(event, SceneStarted):
            assembler.worker.submit(lambda: None).result()  # let queued segments finish
            encoded_when_started[event.scene] = sorted(assembler.encoded)
        if isinstance(event, SceneDone):
            assembler.scene_ready(event.scene)
    assembler.worker.submit(lambda: None).result()
    assert encoded_when_started[3][:1] == [1]  # scene 1's segment was made before scene 3 began
    assert sorted(assembler.encoded) == [1, 2, 3] and not (tmp_path / "film.mp4").exists()
    segments = [packet for n in (1, 2, 3) for packet in video_packets(assembler.encoded[n])]
    sound = assembler.sound[1]  # the music, encoded before the film is finished
    assert sound is not None and sound.is_file()
    music = audio_packets(sound)
    result = assembler.finish()
    assert video_packets(result.film) == segments  # a join: not one frame encoded again
    assert audio_packets(result.film) == music  # nor the sound
    timings = json.loads(result.info.read_text())["assembly_timings"]
    assert timings["sound_at_finish_s"] == 0.0  # nothing of it was left for the finish
    assert probe(result.film)["frames"] == 3 * FPS
    assert not any(tmp_path.glob(".film_segments*"))  # the segments are cleaned up
    assert json.loads(result.info.read_text())["film_seconds"] == 3.0
