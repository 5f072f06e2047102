"""Plan: one sentence becomes a `Storyboard`, written by a local chat model.

    board = plan_storyboard(PlanRequest("a forest adventure with a river and small animals"))

How it works:
1. The prompt is checked (blank, too long, content filter); its premise (subject, setting,
   light, genre: premise.py) is read, and each scene gets a beat (beats.py).
2. A chat model writes each scene's sentence, which the grammar starts on the film's subject
   (a small model fills one short slot and picks the camera; a multilingual one also writes
   motion, duration, title and Chinese text). Decoding is constrained by xgrammar to a JSON
   schema built for the request, so the output always parses.
3. Scenes that come back empty, repeated, about the film instead of the picture, or with a
   blocked term are asked for again, then written by rule.
4. Durations are scaled to the requested film length; the visual prompts get the scene's
   focus, light, genre look, camera and style; seeds, transitions and (for English-only
   models) the Chinese subtitles are filled in by rule.
Which model or rule wrote each field is recorded in `Storyboard.provenance`; anything the user
should know (a model that could not load, a scene count that was capped) goes to `notes`.
"""
from __future__ import annotations

import json
import math
import re
import logging
import random
import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from models.language import LanguageDataMissing
from pipeline.beats import Beat, detect_language, plan_beats, subjects, to_english
from pipeline.premise import PLACES, Premise, find_premise
from pipeline.safety import ContentFilter
from pipeline.storyboard import (ASPECTS, MAX_DURATION, MAX_LOOK, MAX_NAME, MAX_SCENES, MAX_SEED,
                                 MIN_DURATION, MOTIONS, NAME_SEPARATORS, CastMember, Scene,
                                 Storyboard, StoryboardError)
from pipeline.narration import size_narration
from pipeline.voice import VoiceError

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 500        # a prompt is one or two sentences; longer ones are refused
DEFAULT_SCENE_SECONDS = 4.0   # film length per scene when --seconds is not given
SHORTEST_PLANNED = MIN_DURATION * 1.5  # seconds; the planner writes no shorter scene
RULE_BASED = "rule-based"

OnText = Callable[[str], None]


class PromptRejected(ValueError):
    """The prompt cannot be planned; the message names the problem in one line."""


@dataclass
class PlanRequest:
    prompt: str
    scenes: int = 5               # how many scenes (capped at MAX_SCENES)
    seconds: float | None = None  # target film length; default DEFAULT_SCENE_SECONDS per scene
    style: str = "cinematic, soft natural light"  # style words shared by every scene
    language: str = "auto"        # language of the descriptions: "zh", "en" or "auto"
    model: str | None = None      # chat model id, folder or GGUF file; None = default
    seed: int | None = None       # one seed shared by every scene; None = random
    use_model: bool = True        # False = rule-based planner only
    aspect: str = "16:9"          # the film's shape: 16:9, 9:16 or 1:1
    voice: str = "auto"           # who narrates (pipeline.voice); "none" = a silent film


@dataclass
class PlanTimings:
    load_s: float = 0.0
    generate_s: float = 0.0
    tokens: int = 0
    reasks: int = 0


@dataclass
class _Draft:
    """What the model wrote for one scene, before rules fill the rest."""

    description: str = ""
    visual_prompt: str = ""
    camera: str = "static"
    motion: str = "medium"
    duration: float = DEFAULT_SCENE_SECONDS
    source: dict[str, str] = field(default_factory=dict)


def check_prompt(prompt: str, content_filter: ContentFilter | None = None) -> str:
    """The prompt, stripped; raises PromptRejected naming what is wrong."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptRejected("prompt is empty: describe the film in a sentence")
    text = " ".join(prompt.split())
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptRejected(f"prompt is {len(text)} characters long; the limit is "
                             f"{MAX_PROMPT_CHARS}: describe the film in a sentence or two")
    problem = (content_filter or ContentFilter.default()).check_prompt(text)
    if problem:
        raise PromptRejected(str(problem))
    return text


def plan_storyboard(request: PlanRequest, on_text: OnText | None = None,
                    timings: PlanTimings | None = None) -> Storyboard:
    """Write a storyboard for `request`; raises PromptRejected for a prompt it cannot use."""
    prompt = check_prompt(request.prompt)
    notes: list[str] = []
    count = max(1, int(request.scenes))
    if count > MAX_SCENES:
        notes.append(f"{count} scenes asked for; a film has at most {MAX_SCENES}, so it has "
                     f"{MAX_SCENES}")
        count = MAX_SCENES
    if request.aspect not in ASPECTS:
        raise PromptRejected(f"aspect {request.aspect!r} is not one of: {', '.join(ASPECTS)}")
    language = detect_language(prompt) if request.language == "auto" else request.language
    if language not in ("en", "zh"):
        raise PromptRejected(f"language {request.language!r} is not one of: zh, en, auto")
    target = _target_seconds(request.seconds, count, notes)
    seed = request.seed if request.seed is not None else random.randint(0, MAX_SEED)
    premise = _premise(prompt, language, notes)
    beats = plan_beats(prompt, language, count, premise)
    timings = timings or PlanTimings()

    drafts, title, planner = None, "", RULE_BASED
    if request.use_model:
        drafts, title, planner = _drafts_from_model(prompt, beats, language, request, seed,
                                                    notes, on_text, timings)
    if drafts is None:
        drafts = [_rule_draft(beat, language, k, count) for k, beat in enumerate(beats)]
        notes.append("the rule-based planner wrote this storyboard (no model was used)")
    board = _assemble(prompt, drafts, title, beats, language, request.style, target, seed,
                      premise)
    board.planner, board.notes = planner, notes
    board = _with_cast(board, premise, seed)
    board = _voiced(board, request, notes)
    board.provenance = _provenance(drafts, planner, language)
    board.provenance["title"] = planner if title else "rule: the prompt's subject"
    board.provenance["subject"] = f"{premise.subject!r}, setting {premise.setting or 'none'!r}: " \
                                  f"{premise.method}"
    if board.cast:
        board.provenance["cast"] = "rule: the prompt's subject, in every scene that shows it"
    return board


def _with_cast(board: Storyboard, premise: Premise, seed: int) -> Storyboard:
    """The storyboard with its cast proposed: the prompt's subject (unless it is a place), in
    every scene whose visual prompt shows it, so it looks the same in each of them."""
    subject = premise.subject.strip()
    if not subject or subject.split()[-1].lower() in PLACES or subject == premise.setting:
        return board
    name = premise.chinese.get(subject, subject) if board.language == "zh" else subject
    name = "".join(c for c in name if c not in NAME_SEPARATORS)[:MAX_NAME].strip()
    if not name:
        return board
    name = name[0].upper() + name[1:]
    scenes = [s for s in board.scenes if subject.lower() in s.visual_prompt.lower()] \
        or board.scenes
    for scene in scenes:
        scene.cast = [name]
    return dataclasses.replace(board, cast=[CastMember(name, subject[:MAX_LOOK], seed=seed)])


def _voiced(board: Storyboard, request: PlanRequest, notes: list[str]) -> Storyboard:
    """The storyboard in the asked shape and voice, each narration sized to its scene."""
    board = dataclasses.replace(board, aspect=request.aspect, voice=request.voice)
    try:
        return size_narration(board, notes)
    except VoiceError as err:
        raise PromptRejected(str(err)) from None


def _premise(prompt: str, language: str, notes: list[str]) -> Premise:
    """The prompt's subject and setting; without the language data, a rough guess, and a note."""
    try:
        return find_premise(prompt, language)
    except LanguageDataMissing as err:
        notes.append(f"{err}; the subject was guessed from the prompt's words")
        first = subjects(prompt, language)[0]
        return Premise((to_english(first) or "the scene") if language == "zh" else first,
                       method="rule: the prompt's first phrase")


# ---- the model -----------------------------------------------------------------------------


def _drafts_from_model(prompt: str, beats: list[Beat], language: str, request: PlanRequest,
                       seed: int, notes: list[str], on_text: OnText | None,
                       timings: PlanTimings) -> tuple[list[_Draft] | None, str, str]:
    from models.llm import EMBEDDED, ModelUnavailable, default_llm_id, load_chat_model
    from models.registry import EMBEDDED_LLM

    started = time.perf_counter()
    wanted = request.model or default_llm_id()
    try:
        chat = load_chat_model(wanted)
    except ModelUnavailable as err:
        notes.append(str(err))
        if wanted == EMBEDDED:
            return None, "", RULE_BASED
        try:
            chat = load_chat_model(EMBEDDED)
        except ModelUnavailable as err2:
            notes.append(str(err2))
            return None, "", RULE_BASED
        notes.append(f"the embedded {EMBEDDED_LLM.repo_id} wrote this storyboard instead")
    timings.load_s = time.perf_counter() - started
    writer = _SceneWriter(chat, language, seed, on_text, timings)
    drafts, title = writer.write_all(prompt, beats)
    _ask_again_or_write_by_rule(prompt, drafts, beats, language, writer, notes)
    if title and ContentFilter.default().find_written(title, prompt):
        notes.append("the model's title held a blocked term; the title comes from the prompt")
        title = ""
    return drafts, title, chat.model_id


def _flagged(draft: _Draft, prompt: str, words: ContentFilter) -> tuple[str, str] | None:
    """(field, term) of the first text in a draft that the content filter refuses, or None."""
    for name in ("description", "visual_prompt"):
        term = words.find_written(getattr(draft, name), prompt)
        if term:
            return name, term
    return None


def _problem(draft: _Draft, others: list[_Draft], text_field: str, prompt: str,
             words: ContentFilter) -> tuple[str, bool] | None:
    """What makes a scene the model wrote unusable, and whether the person should be told
    when asking again mends it (a blocked term: yes; a repeat: no); None when it is usable."""
    flagged = _flagged(draft, prompt, words)
    if flagged is not None:
        return f"a blocked term ({flagged[1]!r}) in its {flagged[0]}", True
    if _is_bad(draft, others, text_field):
        return "a repeat of another scene or text about the film instead of the picture", False
    return None


def _ask_again_or_write_by_rule(prompt: str, drafts: list[_Draft], beats: list[Beat],
                                language: str, writer: _SceneWriter, notes: list[str]) -> None:
    """Each unusable scene (too short, a repeat, text about the film, or a term the content
    filter refuses) is asked for once more, then written by rule; the notes say which and why."""
    words = ContentFilter.default()
    for k in range(len(drafts)):
        problem = _problem(drafts[k], drafts[:k], writer.text_field, prompt, words)
        if problem is None:
            continue
        reason, tell = problem
        others = drafts[:k] + drafts[k + 1:]
        redo = writer.rewrite(prompt, beats[k], k, len(beats), others)
        if redo is not None and _problem(redo, others, writer.text_field, prompt, words) is None:
            drafts[k] = redo
            if tell:
                notes.append(f"scene {k + 1}: the model wrote {reason}; it was asked again")
        else:
            drafts[k] = _rule_draft(beats[k], language, k, len(beats))
            notes.append(f"scene {k + 1}: the model wrote {reason} twice, so its text comes "
                         f"from the rule-based planner")


class _SceneWriter:
    """Asks one chat model for scenes, constrained to a JSON schema."""

    def __init__(self, chat: Any, language: str, seed: int, on_text: OnText | None,
                 timings: PlanTimings):
        self.chat, self.seed, self.on_text, self.timings = chat, seed, on_text, timings
        # An English-only model cannot write Chinese subtitles: it writes the English visual
        # prompt and the subtitle comes from the prompt's own words (beats.py).
        self.writes_subtitles = language == "en" or chat.multilingual
        self.writes_visuals = chat.multilingual or language == "zh"
        self.text_field = "description" if self.writes_subtitles else "visual_prompt"
        self.language = language

    def write_all(self, prompt: str, beats: list[Beat]) -> tuple[list[_Draft], str]:
        # The embedded model's titles wander off the topic: it gets one by rule instead.
        schema = _schema(beats, self.writes_subtitles, self.writes_visuals,
                         title=self.chat.multilingual)
        request = _scene_request(prompt, beats, self.language, self.writes_subtitles)
        data = self._generate(request, schema)
        drafts = [self._draft(raw, beat) for raw, beat in zip(data["scenes"], beats)]
        return drafts, _clean(data.get("title", ""))

    def rewrite(self, prompt: str, beat: Beat, index: int, count: int,
                others: list[_Draft]) -> _Draft | None:
        schema = _schema([beat], self.writes_subtitles, self.writes_visuals, title=False)
        avoid = "; ".join(getattr(d, self.text_field) for d in others if getattr(d, self.text_field))
        request = (f"Film idea: {prompt}\nWrite scene {index + 1} of {count}, about: "
                   f"{_beat_line(beat)}.\nIt must be different from these scenes: {avoid}")
        self.timings.reasks += 1
        data = self._generate(request, schema, temperature=0.9, seed_offset=index * 7 + 1)
        return self._draft(data["scenes"][0], beat) if data.get("scenes") else None

    def _draft(self, raw: dict[str, Any], beat: Beat) -> _Draft:
        directs = "motion" in raw
        source = {"camera": "model", "motion": "model" if directs else "rule",
                  "duration": "model" if directs else "rule"}
        draft = _Draft(camera=raw["camera"], motion=raw.get("motion", BEAT_MOTION[beat.role]),
                       duration=float(raw.get("duration", DEFAULT_SCENE_SECONDS)))
        if self.writes_subtitles:  # an English subtitle is the sentence itself
            text = _clean(raw["description"])
            draft.description = text if self.writes_visuals else _tidy_sentence(text, beat)
            source["description"] = "model"
        if self.writes_visuals:
            draft.visual_prompt = _tidy_sentence(_clean(raw["visual_prompt"]), beat)
            source["visual_prompt"] = "model"
        draft.source = source
        return draft

    def _generate(self, request: str, schema: dict[str, Any], temperature: float = 0.7,
                  seed_offset: int = 0) -> dict[str, Any]:
        import torch
        from transformers import StoppingCriteriaList

        from pipeline.constrained import GrammarGuide

        tokenizer, model = self.chat.tokenizer, self.chat.model
        grammar = _grammar_compiler(self.chat).compile_json_schema(json.dumps(schema),
                                                                   any_whitespace=False)
        messages = _messages(request, self.text_field,
                             directs=self.writes_subtitles and self.writes_visuals)
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True,
                                               **_template_kwargs(tokenizer))
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        guide = GrammarGuide(grammar, model.device)
        torch.manual_seed(self.seed + seed_offset)
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=_token_budget(schema),
                logits_processor=[guide.processor],
                stopping_criteria=StoppingCriteriaList([guide.stopper]), do_sample=True,
                temperature=temperature, top_p=0.9, repetition_penalty=1.15,
                streamer=_Streamer(tokenizer, self.on_text) if self.on_text else None,
                pad_token_id=tokenizer.eos_token_id)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        self.timings.generate_s += time.perf_counter() - started
        self.timings.tokens += int(new_tokens.shape[0])
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        try:  # strict=False: the grammar's plain strings may hold raw tabs and other controls
            return json.loads(text, strict=False)
        except json.JSONDecodeError as err:  # only when max_new_tokens cut the JSON short
            raise RuntimeError(f"the planner model's output was cut short ({err.msg} at "
                               f"{text[max(0, err.pos - 40):err.pos + 10]!r}); this is a bug in "
                               f"the token budget") from err


_compilers: dict[int, Any] = {}


def _grammar_compiler(chat: Any) -> Any:
    """One xgrammar compiler per loaded model: building its vocabulary table takes seconds."""
    import xgrammar as xgr

    key = id(chat.tokenizer)
    if key not in _compilers:
        info = xgr.TokenizerInfo.from_huggingface(chat.tokenizer,
                                                  vocab_size=chat.model.config.vocab_size)
        _compilers[key] = xgr.GrammarCompiler(info)
    return _compilers[key]


class _Streamer:
    """transformers streamer protocol (put/end) that hands decoded text to a callback."""

    def __init__(self, tokenizer: Any, on_text: OnText):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.prompt_seen, self.ids, self.sent = False, [], ""

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.sent) and not text.endswith("\ufffd"):
            self.on_text(text[len(self.sent):])
            self.sent = text

    def end(self) -> None:
        pass


EXAMPLE_IDEA = "a potter shapes a vase in her studio"
EXAMPLE_BEATS = ("opening: potter, with studio", "potter, with vase", "ending: potter, with studio")
EXAMPLE_SCENES = (  # one short clause after the subject: what the subject does in the shot
    ("The potter opens the studio shutters to the morning sun.", "wide shot", "low", 4),
    ("The potter presses wet clay into a tall vase on the wheel.", "close up", "medium", 5),
    ("At last, the potter sets the finished vase on a sunny shelf.", "wide shot", "low", 4),
)


def _messages(request: str, text_field: str, directs: bool = True) -> list[dict[str, str]]:
    """A system prompt, one worked example (small models copy the form), then the request."""
    example = {"title": "The Message", "scenes": [
        {text_field: text, "camera": cam, **({"motion": mot, "duration": dur} if directs else {})}
        for text, cam, mot, dur in EXAMPLE_SCENES]}
    example_request = f"Film idea: {EXAMPLE_IDEA}\nScenes:\n" + "\n".join(
        f"{k}. {b}" for k, b in enumerate(EXAMPLE_BEATS, start=1))
    system = ("You are a film director. You write storyboards as JSON. Each scene is one short "
              "sentence: what the subject does in the shot, what the camera sees, different from "
              "every other scene.")
    return [{"role": "system", "content": system},
            {"role": "user", "content": example_request},
            {"role": "assistant", "content": json.dumps(example, ensure_ascii=False)},
            {"role": "user", "content": request}]


def _scene_request(prompt: str, beats: list[Beat], language: str, writes_subtitles: bool) -> str:
    lines = [f"Film idea: {prompt}", "Scenes:"]
    for k, beat in enumerate(beats, start=1):
        role = f"{beat.role}: " if beat.role != "middle" else ""
        lines.append(f"{k}. {role}{_beat_line(beat)}")
    if language == "zh" and writes_subtitles:
        lines.append("Write title and description in Chinese, visual_prompt in English.")
    return "\n".join(lines)


ROLE_CAMERAS = {  # which shots suit which part of the film
    "opening": ["wide shot", "aerial view", "pan", "zoom in"],
    "middle": ["medium shot", "close up", "tracking", "pan", "static", "zoom in"],
    "ending": ["wide shot", "zoom out", "aerial view", "static"],
}
MAX_PREFIX_WORDS = 5  # the subject's last words start every scene's sentence
MAX_SLOT_CHARS = 60   # what the model writes after the subject: one short clause


def _beat_line(beat: Beat) -> str:
    return f"{beat.subject_en}, with {beat.focus}" if beat.focus else beat.subject_en


def _scene_prefix(beat: Beat) -> str:
    """The words a scene's sentence must start with (the film's subject), so a small model
    writes only what the subject does in this shot."""
    words = beat.subject_en.split()[-MAX_PREFIX_WORDS:]
    if not words or not beat.subject_en.isascii():
        return ""
    name = " ".join(words)
    subject = name if words[0].lower() in ("the", "a", "an") or words[0][0].isupper() \
        else f"the {name}"
    lead = "At last, " if beat.role == "ending" else "Later, " if beat.repeat else ""
    text = f"{lead}{subject}"
    return text[:1].upper() + text[1:]


def _scene_schema(beat: Beat, subtitles: bool, visuals: bool, directs: bool) -> dict[str, Any]:
    """One scene's JSON schema. `directs`: the model also picks motion and duration (a model
    that writes Chinese too); a small one writes only its sentence and the camera."""
    prefix = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", _scene_prefix(beat))  # regex-safe
    # After the prefix a word must end (no "Mars" -> "Marston"); then one short clause, the slot
    # a small model fills well (what the subject does in this shot), ending with a period.
    after = "[ ,;:'’]" if prefix else ""
    text = "[A-Za-z0-9 ,;:'’!?&()-]"  # plain words: no full stop, quote, bracket or markup
    sentence = {"type": "string", "pattern": f"^{prefix}{after}{text}{{8,{MAX_SLOT_CHARS}}}\\.$"}
    scene: dict[str, Any] = {}
    if subtitles:  # the subtitle; English ones also become the visual prompt
        scene["description"] = sentence if not visuals else \
            {"type": "string", "minLength": 4, "maxLength": 60}
    if visuals:
        scene["visual_prompt"] = sentence
    scene["camera"] = {"enum": ROLE_CAMERAS[beat.role]}
    if directs:
        scene["motion"] = {"enum": list(MOTIONS)}
        scene["duration"] = {"type": "integer", "minimum": 2, "maximum": 8}
    return {"type": "object", "properties": scene, "required": list(scene),
            "additionalProperties": False}


def _schema(beats: list[Beat], subtitles: bool, visuals: bool, title: bool) -> dict[str, Any]:
    """The storyboard's JSON schema for this request: one item schema per scene's beat."""
    items = [_scene_schema(beat, subtitles, visuals, directs=subtitles and visuals)
             for beat in beats]
    properties: dict[str, Any] = {}
    if title:
        properties["title"] = {"type": "string", "minLength": 2, "maxLength": 40}
    properties["scenes"] = {"type": "array", "prefixItems": items, "items": False,
                            "minItems": len(items), "maxItems": len(items)}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _token_budget(schema: dict[str, Any]) -> int:
    """An upper bound on the tokens the schema allows (string limits are in characters)."""
    scenes = schema["properties"]["scenes"]["prefixItems"]
    return 60 + sum(40 + sum(p.get("maxLength", 110) for p in item["properties"].values()
                             if p.get("type") == "string") for item in scenes)


def _template_kwargs(tokenizer: Any) -> dict[str, Any]:
    template = getattr(tokenizer, "chat_template", "") or ""
    return {"enable_thinking": False} if "enable_thinking" in template else {}


# ---- rules ---------------------------------------------------------------------------------

RULE_CAMERAS = ("medium shot", "tracking", "close up", "pan")
BEAT_MOTION = {"opening": "low", "middle": "medium", "ending": "low"}  # calm in, calm out
EN_MIDDLE = ("{S} and {f}, seen up close.", "{S} moves past {f}.", "{S} beside {f} in soft light.",
             "{S} turns toward {f}.")
EN_MIDDLE_ALONE = ("{S}, seen up close.", "{S} moves slowly through the frame.",
                   "{S} in soft light.", "{S} turns toward the camera.")


def _rule_draft(beat: Beat, language: str, index: int, count: int) -> _Draft:
    """A scene written by rule: the subject, what else is in the shot, and a camera."""
    subject = beat.subject_en
    name = subject[:1].upper() + subject[1:]
    if beat.role == "opening":
        camera = "wide shot"
        text = f"{name} in {beat.focus}, seen from afar." if beat.focus else \
            f"{name}, seen from afar."
    elif beat.role == "ending":
        camera, text = "zoom out", f"{name} at rest as the light fades."
    else:
        camera = RULE_CAMERAS[(index - 1) % len(RULE_CAMERAS)]
        templates = EN_MIDDLE if beat.focus else EN_MIDDLE_ALONE
        template = templates[((index - 1) // max(1, count - 2) + index - 1) % len(templates)]
        text = template.format(S=name, f=beat.focus)
    source = {"camera": "rule", "motion": "rule", "duration": "rule",
              "description": "rule", "visual_prompt": "rule"}
    return _Draft(description=text if language == "en" else "", visual_prompt=text,
                  camera=camera, motion="medium", duration=DEFAULT_SCENE_SECONDS, source=source)


def _rule_title(prompt: str, beats: list[Beat], language: str) -> str:
    if language == "zh":
        topic = beats[0].subtitle_zh if beats[0].role == "opening" and len(beats) == 1 else \
            subjects(prompt, "zh")[0]
        return topic if len(topic) <= 16 else topic[:15] + "…"
    topic = beats[0].subject_en
    topic = topic[:1].upper() + topic[1:]
    return topic if len(topic) <= 40 else topic[:39] + "…"


# Text about the film or its teller, not about what the camera sees.
META = re.compile(r"\b(i|i'm|me|my|we|we're|us|our|you|your|story|stories|scene|scenes|film|films|"
                  r"video|videos|movie|viewer|viewers|audience|chapter|episode)\b", re.I)


def _is_bad(draft: _Draft, others: list[_Draft], text_field: str) -> bool:
    """Too short, a repeat of another scene, or talking about the film instead of showing."""
    raw = getattr(draft, text_field)
    text = _normal(raw)
    return len(text) < 8 or META.search(raw) is not None or \
        any(_similar(text, _normal(getattr(o, text_field))) for o in others)


# Words a clause cannot end on: what is left when the slot's length limit cut it short.
DANGLING = {"a", "an", "the", "and", "or", "but", "so", "that", "which", "who", "when", "while",
            "where", "until", "before", "after", "as", "of", "to", "for", "from", "with", "at",
            "in", "on", "into", "onto", "by", "his", "her", "its", "their", "he", "she", "it",
            "they", "there", "then", "than", "is", "are", "was", "were", "will", "has", "have",
            "some", "this", "these", "those", "over", "through", "across", "about"}


def _tidy_sentence(text: str, beat: Beat) -> str:
    """A sentence whose slot ran out of room ends on a whole word that can end it:
    "... stumbles across a small island that." -> "... stumbles across a small island." """
    body = text.rstrip(".").rstrip()
    words = body.split()
    slot = len(body) - len(_scene_prefix(beat)) - 1
    if slot >= MAX_SLOT_CHARS and len(words) > 3:
        words = words[:-1]  # the last word may be cut in half
    while len(words) > 3 and (words[-1].lower().strip(",;:'’") in DANGLING
                              or words[-1].endswith(("'", "’"))):
        words = words[:-1]
    return " ".join(words).rstrip(",;:-—") + "."


def _clean(text: Any) -> str:
    """One line of text: control characters dropped, runs of white space folded."""
    return " ".join(CONTROL.sub(" ", str(text)).split())


CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _normal(text: str) -> str:
    return " ".join("".join(c.lower() if c.isalnum() else " " for c in text).split())


def _similar(a: str, b: str) -> bool:
    """Same text, or mostly the same words (a small model's favourite way to repeat itself).
    The words both start with (every scene starts on the film's subject) do not count."""
    if a == b:
        return True
    words_a, words_b = a.split(), b.split()
    shared = 0
    while shared < min(len(words_a), len(words_b)) and words_a[shared] == words_b[shared]:
        shared += 1
    wa, wb = set(words_a[shared:]), set(words_b[shared:])
    return not (wa and wb) or len(wa & wb) / len(wa | wb) > 0.7


def _target_seconds(seconds: float | None, count: int, notes: list[str]) -> float:
    if seconds is None:
        return DEFAULT_SCENE_SECONDS * count
    low, high = SHORTEST_PLANNED * count, MAX_DURATION * count
    if not low <= seconds <= high:
        clipped = min(max(seconds, low), high)
        notes.append(f"a {seconds:g}-second film cannot have {count} scenes of "
                     f"{SHORTEST_PLANNED:g}-{MAX_DURATION:g} s; it lasts {clipped:g} s")
        return clipped
    return float(seconds)


def _scaled_durations(drafts: list[_Draft], target: float) -> list[float]:
    """The model's relative durations, scaled to the film's length, in half seconds.

    Each scene first gets its share rounded down; the half seconds left over then go one at a
    time to the scenes that lost most in the rounding (largest remainder). So six equal scenes
    of a 25-second film last 4, 4, 4, 4, 4.5 and 4.5 s, not 4, 4, 4, 4, 4 and 5 s: no scene
    grows by more than half a second, and none passes the 4.8 s one SVD run covers."""
    total = sum(d.duration for d in drafts)
    halves = [d.duration * target / total * 2 for d in drafts]
    low, high = round(SHORTEST_PLANNED * 2), round(MAX_DURATION * 2)  # in half seconds
    units = [min(max(math.floor(h), low), high) for h in halves]
    by_loss = sorted(range(len(units)), key=lambda i: halves[i] - units[i], reverse=True)
    left = math.floor(target * 2) - sum(units)
    while left:  # negative only when the minimum length lifted some scenes
        step = 1 if left > 0 else -1
        movable = [i for i in (by_loss if step > 0 else by_loss[::-1])
                   if low <= units[i] + step <= high]
        if not movable:
            break
        for i in movable[:abs(left)]:
            units[i] += step
            left -= step
    durations = [u / 2 for u in units]
    longest = max(range(len(durations)), key=durations.__getitem__)
    rest = round(target - sum(durations), 3)  # a target that is no whole number of half seconds
    durations[longest] = min(max(durations[longest] + rest, MIN_DURATION), MAX_DURATION)
    return durations


def _visual_prompt(sentence: str, beat: Beat, premise: Premise, camera: str, style: str) -> str:
    """The shot for the image model: what the subject does, then where, in what light, in the
    genre asked for, the camera and the film's style words."""
    parts = [sentence.rstrip(".")]
    lowered = sentence.lower()
    for extra in (beat.focus, premise.atmosphere, premise.look, camera, style):
        if extra and extra.lower() not in lowered:
            parts.append(extra)
            lowered += " " + extra.lower()
    return ", ".join(parts)


def _assemble(prompt: str, drafts: list[_Draft], title: str, beats: list[Beat], language: str,
              style: str, target: float, seed: int, premise: Premise) -> Storyboard:
    scenes = []
    for k, (draft, beat, seconds) in enumerate(zip(drafts, beats,
                                                   _scaled_durations(drafts, target))):
        description = draft.description
        if language == "zh" and not description:
            description = beat.subtitle_zh
            draft.source["description"] = "prompt"
        visual = draft.visual_prompt
        if not visual:
            visual = draft.description
            draft.source["visual_prompt"] = "description"
        visual = _visual_prompt(visual, beat, premise, draft.camera, style)
        scenes.append(Scene(description=description, visual_prompt=visual, camera=draft.camera,
                            narration=description,
                            motion=draft.motion, duration=seconds,
                            transition="cut" if k == 0 else "crossfade", seed=seed))
    if not title:
        title = _rule_title(prompt, beats, language)
    board = Storyboard(title=title, style=style, scenes=scenes, language=language)
    try:  # the planner must never hand out a storyboard the renderer would refuse
        return Storyboard.from_dict(board.to_dict())
    except StoryboardError as err:
        raise RuntimeError(f"the planner produced an invalid storyboard: {err}") from err


def _provenance(drafts: list[_Draft], planner: str, language: str) -> dict[str, str]:
    """For each field, who wrote it, per scene when scenes differ."""
    names = {"model": planner, "rule": RULE_BASED,
             "prompt": "the prompt's own clauses (the model writes English only)",
             "description": "the description plus camera and style words"}
    result: dict[str, str] = {}
    for name in ("description", "visual_prompt", "camera", "motion", "duration"):
        sources = [names.get(d.source.get(name, "rule"), d.source.get(name, "rule")) for d in drafts]
        if len(set(sources)) == 1:
            result[name] = sources[0]
        else:
            result[name] = "; ".join(f"scene {k}: {s}" for k, s in enumerate(sources, start=1))
    if planner != RULE_BASED and "duration" in result:
        result["duration"] = f"{result['duration']}, scaled to the film's length"
    result["narration"] = "the description, spoken"
    result["transition"] = "rule: cut into the first scene, crossfade after"
    result["seed"] = "rule: one seed shared by every scene"
    if language == "zh":
        result["language"] = "zh"
    return result
