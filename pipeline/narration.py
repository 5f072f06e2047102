"""Narration sized to the film: the planner's last step.

    board = size_narration(board, notes)

A film asked to be S seconds still plays S seconds once it is narrated. Each scene needs at
least its narration's time (lead, sentences, breath: `Speech.seconds`). When the scenes' needs
fit in the film's length, time moves from scenes with room to spare to scenes that need it,
and the total stays the same. When they do not fit, narrations are cut to their scene's length:
whole sentences first, then whole clauses, then words (marked with an ellipsis); a scene with
no room for even a few words stays silent (its subtitle is its description), and a note says so.
A person's own edits are treated differently (`voice.fit_to_narration`): their scene grows.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace

from pipeline.storyboard import MIN_DURATION, Storyboard
from pipeline.voice import Speech, film_speech, split_sentences, spoken

SHORTEST_SCENE = MIN_DURATION * 1.5   # seconds; no planned scene is shorter (as the planner)
FEWEST_WORDS = {"en": 3, "zh": 4}     # shorter cuts say nothing: the scene stays silent


def size_narration(board: Storyboard, notes: list[str]) -> Storyboard:
    """The storyboard with durations moved between scenes, or narrations cut, so that every
    narration fits its scene and the film keeps its length."""
    speeches, voice_notes = film_speech(board)
    if not any(speeches):
        return board
    notes.extend(voice_notes)  # who speaks; how to get a better voice
    needs = [max(s.need() if s else 0.0, SHORTEST_SCENE) for s in speeches]
    durations = [s.duration for s in board.scenes]
    if sum(needs) <= sum(durations) + 1e-6:
        durations = _rebalanced(durations, needs)
    board = replace(board, scenes=[replace(s, duration=d) for s, d in zip(board.scenes, durations)])
    scenes = []
    for number, (scene, speech) in enumerate(zip(board.scenes, speeches), start=1):
        if speech is not None and speech.need() > scene.duration:
            cut = _cut_to(scene.narration, board.language, speech, scene.duration)
            notes.append(f"scene {number}: the narration was cut to fit its {scene.duration:g} s"
                         if cut else f"scene {number} is silent: its {scene.duration:g} s leave "
                         f"no room for its narration")
            scene = replace(scene, narration=cut)
        scenes.append(scene)
    return replace(board, scenes=scenes)


def _rebalanced(durations: list[float], needs: list[float]) -> list[float]:
    """Durations at least `needs`, the same total: scenes that grow take the time from scenes
    with room to spare, in proportion to their room, in tenths of a second."""
    total = sum(durations)
    grown = [max(d, n) for d, n in zip(durations, needs)]
    over = round(sum(grown) - total, 3)
    room = [g - n for g, n in zip(grown, needs)]
    spare = sum(room)
    result = [g - math.ceil(over * r / spare * 10) / 10 if spare else g for g, r in zip(grown, room)]
    result = [max(r, n) for r, n in zip(result, needs)]
    rest = round(total - sum(result), 3)  # rounding: give or take it where there is room
    k = max(range(len(result)), key=lambda i: result[i] - needs[i])
    result[k] = round(result[k] + rest, 3)
    return [round(r, 3) for r in result]


def _cut_to(narration: str, language: str, speech: Speech, seconds: float) -> str:
    """The longest cut of the narration (sentences, then clauses, then words) that the same
    voice says within `seconds` of scene; "" when even the fewest words are too long."""
    for candidate in _cuts(narration, language):
        if spoken(candidate, language, speech.engine, speech.voice).need() <= seconds:
            return candidate
    return ""


def _cuts(narration: str, language: str) -> list[str]:
    """Shorter and shorter versions of a narration, each ending cleanly."""
    joiner = "" if language == "zh" else " "
    sentences = split_sentences(narration, language)
    cuts = [joiner.join(sentences[:k]) for k in range(len(sentences) - 1, 0, -1)]
    first = sentences[0] if sentences else ""
    clauses = [c for c in re.split(r"(?<=[,，、;；:：])\s*", first) if c]
    stop = "。" if language == "zh" else "."
    for k in range(len(clauses) - 1, 0, -1):
        cuts.append(joiner.join(clauses[:k]).rstrip(",，、;；:： ") + stop)
    units = list(first.rstrip("。.!?！？")) if language == "zh" else first.rstrip(".!?").split()
    for k in range(len(units) - 1, FEWEST_WORDS.get(language, 3) - 1, -1):
        cuts.append(joiner.join(units[:k]).rstrip(",，、;；:： ") + "…")
    return cuts
