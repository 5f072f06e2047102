"""The quality voice, Kokoro-82M, as a tiny random model through the model store: known to the
store, chosen by auto when present, English word timings, Chinese split before it speaks."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.assemble import assemble_film
from pipeline.voice import fit_to_narration, narrate, resolve_voice
from tests.test_voice import FPS, narrated, srt_cues  # noqa: F401 (narrated is a fixture)

@pytest.fixture(scope="module")
def kokoro_here(tmp_path_factory):
    """Tiny random Kokoro models for English and Mandarin, registered like downloaded ones."""
    from models.random_init import build_kokoro
    from models.store import register
    from pipeline import voice

    root = tmp_path_factory.mktemp("kokoro")  # one random model serves both languages here
    english = chinese = build_kokoro(root / "model", voices=("af_heart", "am_adam", "zf_001"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYREEL_CACHE", str(root / "cache"))
        patch.setenv("HF_HOME", str(root / "hf"))  # nothing in the hub cache
        register("kokoro-82m", english)
        register("kokoro-82m-zh", chinese)
        yield english, chinese
    voice._kokoro.cache_clear()


def test_kokoro_is_a_known_model_checked_whole_by_the_store(tmp_path, kokoro_here):
    from models.download import integrity_problem
    from models.registry import KOKORO, KOKORO_ZH, find_spec
    from models.store import StoreError, check_folder

    assert find_spec("kokoro-82m").licence == "apache-2.0" and KOKORO_ZH.role == "voice"
    assert integrity_problem(KOKORO) is None and integrity_problem(KOKORO_ZH) is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((kokoro_here[0] / "config.json").read_text())
    (broken / "kokoro-v1_0.pth").write_bytes((kokoro_here[0] / "kokoro-v1_0.pth").read_bytes())
    with pytest.raises(StoreError, match="voices holds no voice"):
        check_folder(broken, "voice")


def test_auto_picks_kokoro_when_it_is_here_with_english_word_timings(kokoro_here):
    assert resolve_voice("auto", "en")[:2] == ("kokoro", "af_heart")
    assert resolve_voice("auto", "zh")[:2] == ("kokoro", "zf_001")
    from pipeline.voice import voice_choices
    assert "kokoro:am_adam" in voice_choices("en") and "kokoro:am_adam" not in voice_choices("zh")
    speech = narrate("The fox wakes up. It runs home!", "en", "kokoro:am_adam")
    assert speech.engine == "kokoro" and [ln.text for ln in speech.lines] == \
        ["The fox wakes up.", "It runs home!"]
    for line, words in zip(speech.lines, (["The", "fox", "wakes", "up"], ["It", "runs", "home"])):
        assert line.rate == 24000 and [w.text for w in line.words] == words
        starts = [w.start for w in line.words]
        assert starts == sorted(starts) and starts[0] == 0 and line.words[-1].end <= line.seconds


def test_kokoro_speaks_chinese_split_into_sentences_here(kokoro_here):
    """Kokoro's own splitter knows only ASCII stops, so Chinese is split before it speaks."""
    speech = narrate("小狐狸醒了。它跑回家！", "zh", "auto")
    assert speech.engine == "kokoro" and [ln.text for ln in speech.lines] == ["小狐狸醒了。", "它跑回家！"]
    assert all(ln.seconds > 0.2 and not ln.words for ln in speech.lines)  # no word timings in zh


def test_a_film_narrated_by_kokoro_records_its_voice(narrated, kokoro_here, tmp_path):  # noqa: F811
    board, clips = narrated
    board = replace(board, voice="kokoro:af_heart")
    board, _ = fit_to_narration(board, fps=FPS)
    result = assemble_film(board, clips, tmp_path / "film.mp4")
    info = json.loads(result.info.read_text(encoding="utf-8"))
    assert info["narration"]["engine"] == "kokoro" and info["narration"]["voice"] == "af_heart"
    assert [c[2] for c in srt_cues(result.srt) if c[2] != "A quiet village under the snow."] == \
        [line["text"] for line in info["narration"]["lines"]]
