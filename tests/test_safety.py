from pipeline.safety import ContentFilter
from pipeline.storyboard import Scene, Storyboard


def test_english_terms_match_whole_words_only():
    words = ContentFilter(("rape", "gore"))
    assert words.find("A RAPE scene") == "rape"
    assert words.find("grapes in a vineyard, Al Gore's speech") == "gore"
    assert words.find("grapes and gorges") is None


def test_chinese_terms_match_inside_sentences():
    words = ContentFilter.default()
    assert words.find("一段血腥的打斗") == "血腥"
    assert words.check_prompt("森林里的小动物") is None
    assert "prompt" in str(words.check_prompt("制作色情视频"))


def test_storyboard_problems_name_scene_and_field():
    good = Scene(description="A fox.", visual_prompt="fox")
    bad = Scene(description="A fox.", visual_prompt="nude fox")
    problems = ContentFilter.default().check_storyboard(
        Storyboard(title="t", style="s", scenes=[good, bad]))
    assert [(p.scene, p.field) for p in problems] == [(2, "visual_prompt")]


def test_word_list_is_configurable(tmp_path, monkeypatch):
    listing = tmp_path / "words.txt"
    listing.write_text("# mine\nbroccoli\n西兰花\n", encoding="utf-8")
    monkeypatch.setenv("STORYREEL_BLOCKLIST", str(listing))
    words = ContentFilter.default()
    assert words.find("a broccoli forest") == "broccoli" and words.find("西兰花") == "西兰花"
    assert words.find("nude") is None
