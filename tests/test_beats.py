from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.beats import detect_language, plan_beats, subjects, to_english
from pipeline.premise import find_premise


def test_language_detection():
    assert detect_language("制作一段关于森林探险的短视频，包含河流和小动物") == "zh"
    assert detect_language("A forest adventure with a river") == "en"
    assert detect_language("一个 robot 在厨房里做饭") == "zh"


def test_chinese_prompt_is_split_into_its_own_subjects():
    assert subjects("制作一段关于森林探险的短视频，包含河流和小动物", "zh") == ["森林探险", "河流", "小动物"]
    assert subjects("A forest adventure with a river and small animals", "en") == [
        "forest adventure", "river", "small animals"]
    assert to_english("森林探险") == "forest adventure"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["制作一段关于森林探险的短视频，包含河流和小动物", "熊猫", "一只小猫在雨夜的城市里寻找回家的路",
                        "宇航员在火星上种花"]), st.integers(1, 12))
def test_chinese_subtitles_are_distinct_and_chinese(prompt, count):
    premise = find_premise(prompt, "zh")
    beats = plan_beats(prompt, "zh", count, premise)
    subtitles = [b.subtitle_zh for b in beats]
    assert len(beats) == count and len(set(subtitles)) == count
    assert all(detect_language(s) == "zh" for s in subtitles)
    assert all(b.subject_en == premise.subject for b in beats)  # every scene keeps the subject
