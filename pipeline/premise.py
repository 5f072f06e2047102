"""The premise of a prompt: what the film is about (its subject), where (its setting), in what
light or weather, and what kind of film was asked for — found by a tagger, not by guessing.

    premise = find_premise("30 second product teaser for a handmade ceramic coffee mug")
    premise.subject  # "handmade ceramic coffee mug"; premise.genre == "product"

English prompts are parsed by spaCy (parts of speech, dependencies, entities); Chinese prompts
are segmented and tagged by jieba and translated word by word (the glossary in beats.py, then
CC-CEDICT). Words that ask for a film rather than describe one ("30 second", "5 scenes",
"make a short video about", 制作一段…的短视频) are requests to the planner, never subjects.
Every scene's visual prompt then names the subject (or, for an establishing shot, the setting).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.language import (add_chinese_nouns, cedict_gloss, chinese_subwords, chinese_words,
                             english_parser)
from pipeline.beats import NOT_SUBJECTS, GLOSSARY

# Words that name the film, its format or its length, not what it shows.
FORMAT_WORDS = {
    "video", "film", "movie", "clip", "short", "teaser", "trailer", "ad", "advert",
    "advertisement", "commercial", "promo", "explainer", "documentary", "vlog", "reel",
    "montage", "animation", "cartoon", "lapse", "timelapse", "time-lapse", "scene", "shot",
    "second", "minute", "frame", "sequence", "storyboard", "version", "style", "step",
    "piece", "way", "kid", "child", "audience", "viewer", "product", "series", "episode",
    "part", "moment", "detail", "look", "feel", "mood", "tone", "thing",
    # quantities: "a pair of red running shoes" is about the shoes
    "pair", "couple", "bunch", "group", "set", "handful", "kind", "type", "sort", "lot",
}
ABSTRACT_COMPOUNDS = {"road", "day", "night", "life", "time", "summer", "winter", "weekend"}
# Heads that are about the film's arc, not a thing to film: "a forest adventure" -> "forest".
ABSTRACT_HEADS = {
    "adventure", "journey", "trip", "story", "tale", "quest", "life", "day", "night",
    "evening", "morning", "time", "experience", "tour", "visit", "expedition", "process",
    "cycle", "history", "memory", "dream", "idea", "lesson", "return", "search", "walk",
}
LIGHT_WORDS = {
    "light", "dawn", "dusk", "night", "morning", "evening", "sunset", "sunrise", "twilight",
    "noon", "midnight", "rain", "snow", "fog", "mist", "storm", "sun", "moonlight", "sunlight",
}
# Nouns that name where a film happens rather than who is in it.
PLACES = {
    "village", "city", "town", "forest", "street", "beach", "sea", "ocean", "lake", "river",
    "mountain", "desert", "island", "park", "garden", "kitchen", "room", "house", "greenhouse",
    "castle", "harbor", "harbour", "market", "road", "track", "field", "valley", "cave",
    "station", "temple", "grove", "alley", "shop", "cafe", "bakery", "studio", "sky", "space",
    "windowsill", "square", "bridge", "farm", "jungle", "meadow", "hill", "shore", "coast",
}
PLACE_PREPOSITIONS = {"in", "at", "on", "inside", "through", "across", "near", "along",
                      "over", "under", "by", "into", "around", "among", "beside", "within"}
GENRES = (  # (words in the prompt, genre, look words added to every visual prompt)
    ({"teaser", "ad", "advert", "advertisement", "commercial", "promo", "product"}, "product",
     "product photography, clean composition"),
    ({"lapse", "timelapse", "time-lapse"}, "time-lapse", "time-lapse photography"),
    ({"explainer", "explain", "documentary", "show", "how", "tutorial"}, "explainer",
     "clear documentary shot"),
    ({"travel", "trip", "tour", "road"}, "travel", "travel photography"),
)

ZH_FORMAT = {"视频", "短视频", "短片", "影片", "电影", "动画", "故事", "片子", "镜头", "场景", "宣传片",
             "广告", "预告片", "延时", "延时摄影", "摄影", "纪录片", "秒", "分钟", "个", "幕", "过程",
             "科普", "讲解", "产品", "一款", "三日游", "日游", "介绍", "风格", "画面", "部分"}
ZH_ABSTRACT = {"探险", "冒险", "旅行", "旅程", "故事", "回家", "路", "生活", "一天", "一夜", "最后",
               "之前", "之后", "时候", "世界", "梦", "成长", "友谊", "冒险记", "人", "东西",
               "事情", "样子"}
ZH_GENRES = (({"宣传片", "广告", "预告片", "产品"}, "product"), ({"延时", "延时摄影"}, "time-lapse"),
             ({"科普", "讲解", "介绍", "过程"}, "explainer"), ({"游", "旅行", "旅程", "三日游", "日游"},
                                                            "travel"))
ZH_NOUNS = {"n", "nr", "nz", "nrt", "ng", "nl", "nrfg"}
ZH_INSTRUCTIONS = {"制作", "生成", "创作", "拍摄", "拍", "做", "展示", "讲解", "介绍", "包含", "包括", "请",
                   "帮我", "关于", "一段", "一个", "一部", "一支", "一条", "为"}
ZH_PLACES = {"ns", "s", "nt"}
ZH_TIMES = {"t", "tg"}


@dataclass
class Premise:
    subject: str                    # English noun phrase every scene names ("orange cat")
    setting: str = ""               # English, where it happens ("Tokyo street"); "" if unnamed
    details: list[str] = field(default_factory=list)  # other things the prompt names, English
    atmosphere: str = ""            # light, time of day, weather ("warm morning light")
    genre: str = "story"            # story, product, time-lapse, explainer or travel
    method: str = ""                # how it was found (for the storyboard's provenance)
    chinese: dict[str, str] = field(default_factory=dict)  # English phrase -> the prompt's words

    @property
    def look(self) -> str:
        """Words that keep every visual prompt in the genre asked for ('' for a story)."""
        return next((look for _, genre, look in GENRES if genre == self.genre), "")

    def things(self) -> list[str]:
        """Subject, then the setting and the details, without repeats."""
        seen: list[str] = []
        for thing in (self.subject, self.setting, *self.details):
            if thing and thing.lower() not in (s.lower() for s in seen):
                seen.append(thing)
        return seen


def find_premise(prompt: str, language: str) -> Premise:
    return _chinese_premise(prompt) if language == "zh" else _english_premise(prompt)


# ---- English ---------------------------------------------------------------------------------


def _english_premise(prompt: str) -> Premise:
    doc = english_parser()(prompt)
    timed = {t.i for ent in doc.ents if ent.label_ in ("TIME", "DATE", "CARDINAL", "QUANTITY",
                                                       "ORDINAL") for t in ent}
    lemmas = {t.lemma_.lower() for t in doc} | {t.text.lower() for t in doc}
    phrases: list[tuple[str, str, bool]] = []  # (phrase, head lemma, is a place)
    light: list[str] = []
    for token in doc:
        if token.pos_ not in ("NOUN", "PROPN") or token.dep_ == "compound":
            continue
        head = token.lemma_.lower()
        if any(child.dep_ == "nsubj" for child in token.children):
            continue  # a verb the tagger took for a noun ("a robot learns")
        modifiers = [t for t in _modifiers(token) if not t.like_num and t.i not in timed
                     and t.lemma_.lower() not in FORMAT_WORDS and t.pos_ != "VERB"]
        words = [t.text for t in modifiers] + [token.text]
        if head in LIGHT_WORDS or token.i in timed:
            if head in LIGHT_WORDS:
                light.append(" ".join(w.lower() for w in words))
            continue
        if head in FORMAT_WORDS or token.like_num:
            continue
        if head in ABSTRACT_HEADS:  # keep what it is about: "forest adventure" -> "forest"
            nouns = [t.text for t in modifiers if t.pos_ in ("NOUN", "PROPN")
                     and t.lemma_.lower() not in ABSTRACT_COMPOUNDS]
            if not nouns:
                continue
            words = nouns
        phrase = " ".join(words).strip(" -'")
        place = (token.dep_ == "pobj" and token.head.lower_ in PLACE_PREPOSITIONS) or \
            token.ent_type_ in ("GPE", "LOC", "FAC") or head in PLACES
        if phrase and phrase.lower() not in (p.lower() for p, _, _ in phrases):
            phrases.append((phrase, head, place))
    genre = _genre(lemmas)
    if not phrases:  # nothing but instructions: the prompt's own words are the subject
        return Premise(_fallback_subject(prompt), genre=genre, atmosphere=", ".join(light),
                       method="spaCy en_core_web_sm (no noun found)")
    things = [p for p in phrases if not p[2]] or phrases
    subject = things[0][0]
    setting = next((p for p, _, place in phrases if place and p != subject), "")
    details = [p for p, _, _ in phrases if p not in (subject, setting)]
    return Premise(_lower_common(subject, doc), _lower_common(setting, doc),
                   [_lower_common(d, doc) for d in details], ", ".join(light), genre,
                   "spaCy en_core_web_sm: parts of speech and dependencies")


def _modifiers(token) -> list:  # noqa: ANN001
    """The words that make a noun a phrase ("handmade ceramic coffee" mug), in order: its
    compounds and adjectives, and theirs; not a possessor's or a clause's words."""
    found = []
    for child in token.lefts:
        if child.dep_ in ("compound", "amod", "nmod"):
            found.extend([*_modifiers(child), child])
    return sorted(found, key=lambda t: t.i)


def _lower_common(phrase: str, doc) -> str:  # noqa: ANN001
    """Lower-case the common nouns ("A Fox" at a sentence start), keep names ("Kyoto")."""
    names = {t.text for t in doc if t.pos_ == "PROPN" and t.i > 0}
    return " ".join(w if w in names else w.lower() for w in phrase.split())


def _genre(words: set[str]) -> str:
    return next((genre for keys, genre, _ in GENRES if keys & words), "story")


def _fallback_subject(prompt: str) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", prompt)
    kept = [w for w in words if w.lower() not in FORMAT_WORDS][:4]
    return " ".join(kept).lower() or "the scene"



# ---- Chinese ---------------------------------------------------------------------------------

ZH_MEASURE = re.compile(r"^[一二三四五六七八九十两几这那每某]+[个只条朵杯碗辆位件张匹头座棵本支块片粒颗把双对群段部款]")
ZH_QUALITIES = {"老式", "古老", "复古", "手工", "小小", "巨大", "可爱", "温暖", "安静", "古老的"}
ZH_LIGHT = {"晨光", "清晨", "早晨", "黎明", "日出", "黄昏", "傍晚", "日落", "夜晚", "深夜", "夜里", "午夜",
            "雨天", "雨夜", "雪天", "阳光", "月光", "星光", "灯光", "夜", "晚上", "白天", "雾"}


def _chinese_premise(prompt: str) -> Premise:
    phrases: list[tuple[str, str]] = []  # (English phrase, "thing" or "place")
    chinese: dict[str, str] = {}
    light: list[str] = []
    run: list[str] = []
    run_kind = ""
    modifiers: list[str] = []  # 红色的 / 老式: kept for the next noun

    def close_run() -> None:
        nonlocal run_kind
        words = [w for w in run if w not in ZH_ABSTRACT]
        if words:
            phrase_zh = ZH_MEASURE.sub("", "".join(words)) or "".join(words)
            english = _zh_phrase(phrase_zh, run_kind == "place")
            if english and english.isascii():
                kind = "place" if run_kind == "place" or english.split()[-1].lower() in PLACES \
                    else "thing"
                phrases.append((english, kind))
                chinese.setdefault(english, phrase_zh)
        run.clear()
        run_kind = ""

    _teach_glossary()
    for word, flag in chinese_words(prompt):
        if word.endswith("色") and len(word) > 1 or word in ZH_QUALITIES:  # 红色的, 老式
            close_run()
            modifiers.append(word)
        elif word in ZH_LIGHT:
            close_run()
            light.append(_zh_word(word))
        elif word in ZH_FORMAT or word in ZH_INSTRUCTIONS:
            close_run()
            modifiers.clear()
        elif flag in ZH_TIMES:  # 春节: a detail worth showing; 三日: not a thing
            close_run()
            english = _zh_word(word, proper=True)
            if english.isascii() and english[:1].isupper():
                phrases.append((english, "thing"))
                chinese.setdefault(english, word)
        elif flag in ZH_NOUNS or flag in ZH_PLACES:
            kind = "place" if flag in ZH_PLACES else "thing"
            if run and kind != run_kind:
                close_run()
            run.extend([*modifiers, word])
            modifiers.clear()
            run_kind = run_kind or kind
        elif flag in ("a", "b") or word.endswith("色"):
            close_run()
            modifiers.append(word)
        elif not (word == "的" and modifiers):
            close_run()
            modifiers.clear()
    close_run()
    genre = next((g for keys, g in ZH_GENRES if any(k in prompt for k in keys)), "story")
    if not phrases:
        return Premise("the scene", genre=genre, atmosphere=", ".join(light),
                       method="jieba + CC-CEDICT (no noun found)")
    things = [e for e, k in phrases if k == "thing"] or [phrases[0][0]]
    subject = things[0]
    setting = next((e for e, k in phrases if k == "place" and e != subject), "")
    details = _unique([e for e, _ in phrases if e not in (subject, setting)])
    return Premise(subject, setting, details, ", ".join(_unique(light)), genre,
                   "jieba parts of speech, glossary and CC-CEDICT", chinese)


def _teach_glossary() -> None:
    add_chinese_nouns(tuple(sorted(w for w in GLOSSARY if w not in NOT_SUBJECTS and len(w) > 1)))


def _zh_word(word: str, proper: bool = False) -> str:
    """One Chinese word in English: the glossary, CC-CEDICT, then its parts."""
    if word in GLOSSARY:
        return GLOSSARY[word]
    gloss = cedict_gloss(word, proper)
    if gloss:
        return gloss
    parts = [w for w in chinese_subwords(word) if len(w) > 1]
    if not parts:
        parts = list(word)
    return " ".join(filter(None, (GLOSSARY.get(w) or cedict_gloss(w) for w in parts)))


def _zh_phrase(chinese: str, proper: bool) -> str:
    """A Chinese noun phrase in English: whole if the glossary or CC-CEDICT has it, else word
    by word in jieba's cut ("红色老式火车" -> "red old-fashioned train")."""
    whole = GLOSSARY.get(chinese) or cedict_gloss(chinese, proper)
    if whole:
        return whole
    return " ".join(filter(None, (_zh_word(w, proper) for w, _ in chinese_words(chinese))))


def _unique(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item.lower() not in (s.lower() for s in seen):
            seen.append(item)
    return seen
