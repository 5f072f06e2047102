"""The storyboard: what the film is, scene by scene.

A `Storyboard` is the contract between every stage: the planner writes one, the person edits it
(as JSON or as table rows in the studio), the renderer reads it. Every field is validated here,
and every problem names its scene and field, so the CLI, the table and the API all report bad
input the same way.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

CAMERAS = (
    "wide shot", "medium shot", "close up", "aerial view", "tracking", "pan", "zoom in",
    "zoom out", "static",
)
MOTIONS = ("low", "medium", "high")
TRANSITIONS = ("cut", "crossfade")
CONTINUE = "continue"  # keyframe value: start from the previous scene's last frame

MAX_SCENES = 12          # the most scenes one film may have
MIN_DURATION = 1.0       # seconds; shorter scenes are unreadable as subtitles
MAX_DURATION = 30.0      # seconds per scene; longer ones belong split into scenes
MAX_DESCRIPTION = 300    # characters of subtitle text per scene
MAX_NARRATION = 300      # characters the voice says in one scene
MAX_VISUAL_PROMPT = 600  # characters; image models read ~77 tokens anyway
MAX_TITLE = 120
MAX_SEED = 2**32 - 1

ASPECTS = {"16:9": (1024, 576), "9:16": (576, 1024), "1:1": (768, 768)}  # SVD-XT's sizes

TABLE_COLUMNS = (
    "description", "narration", "visual_prompt", "camera", "motion", "duration", "transition", "keyframe",
    "seed",
)


@dataclass(frozen=True)
class FieldProblem:
    """One bad value: `scene` is 1-based, or None for a storyboard-level field."""

    scene: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"scene {self.scene}, {self.field}" if self.scene else self.field
        return f"{where}: {self.message}"


class StoryboardError(ValueError):
    """A storyboard that cannot be used as it is; `problems` lists every bad field."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass
class Scene:
    description: str          # what happens, in the user's language; the subtitle when silent
    visual_prompt: str        # English, for the image and video models
    narration: str = ""       # what the voice says, in the film's language ("" = silent scene)
    camera: str = "static"    # one of CAMERAS
    motion: str = "medium"    # low / medium / high: how much moves on screen
    duration: float = 4.0     # seconds this scene lasts in the film
    transition: str = "cut"   # how this scene starts: cut or crossfade from the previous one
    keyframe: str | None = None  # an image path, "continue", or None (generate one)
    seed: int = 0             # seeds the keyframe and the video model for this scene


@dataclass
class Storyboard:
    title: str
    style: str
    scenes: list[Scene]
    language: str = "en"      # language of the descriptions (subtitles): "en" or "zh"
    aspect: str = "16:9"      # the film's shape: one of ASPECTS
    voice: str = "auto"       # who narrates: "auto", "none", or engine:voice (pipeline.voice)
    planner: str = ""         # which planner wrote it (model id, or "rule-based")
    provenance: dict[str, str] = field(default_factory=dict)  # field -> where its text came from
    notes: list[str] = field(default_factory=list)  # what the user should know about how it was made

    # ---- conversion ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Storyboard:
        """Build and validate a storyboard from parsed JSON; raises StoryboardError."""
        if not isinstance(data, dict):
            raise StoryboardError([FieldProblem(None, "storyboard", "must be a JSON object")])
        problems: list[FieldProblem] = []
        title = _text(data.get("title", ""), None, "title", MAX_TITLE, problems, required=False)
        style = _text(data.get("style", ""), None, "style", MAX_TITLE, problems, required=False)
        raw_scenes = data.get("scenes")
        if not isinstance(raw_scenes, list) or not raw_scenes:
            problems.append(FieldProblem(None, "scenes", "must be a non-empty list of scenes"))
            raw_scenes = []
        elif len(raw_scenes) > MAX_SCENES:
            problems.append(FieldProblem(
                None, "scenes", f"has {len(raw_scenes)} scenes; the most a film may have is "
                f"{MAX_SCENES}"))
        scenes = []
        for number, raw in enumerate(raw_scenes[:MAX_SCENES], start=1):
            scene = parse_scene(raw, number, problems)
            if scene is not None:
                scenes.append(scene)
        language = data.get("language", "en")
        if language not in ("en", "zh"):
            problems.append(FieldProblem(None, "language", f"must be 'en' or 'zh' (got {language!r})"))
        aspect = str(data.get("aspect") or "16:9").strip()
        if aspect not in ASPECTS:
            problems.append(FieldProblem(None, "aspect", f"{aspect!r} is not one of: "
                                         f"{', '.join(ASPECTS)}"))
        voice = data.get("voice") or "auto"
        if not isinstance(voice, str) or len(voice) > 80:
            problems.append(FieldProblem(None, "voice", "must be a voice name such as 'auto', "
                                         "'none' or 'espeak:en-us'"))
            voice = "auto"
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, dict):
            problems.append(FieldProblem(None, "provenance", "must be an object"))
            provenance = {}
        if problems:
            raise StoryboardError(problems)
        return cls(title=title, style=style, scenes=scenes, language=language, aspect=aspect,
                   voice=voice.strip(),
                   planner=str(data.get("planner", "")),
                   provenance={str(k): str(v) for k, v in provenance.items()},
                   notes=[str(n) for n in data.get("notes") or []])

    @classmethod
    def from_json(cls, text: str) -> Storyboard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise StoryboardError([FieldProblem(
                None, "storyboard", f"is not valid JSON (line {err.lineno}, column {err.colno}: "
                f"{err.msg})")]) from None
        return cls.from_dict(data)

    def to_rows(self) -> list[list[Any]]:
        """One row per scene, columns as TABLE_COLUMNS (the studio's editable table)."""
        return [[_cell(getattr(s, c)) for c in TABLE_COLUMNS] for s in self.scenes]

    def with_rows(self, rows: list[list[Any]]) -> Storyboard:
        """A copy with its scenes replaced by edited table rows; raises StoryboardError.

        Empty rows (every cell blank) are dropped: that is how a table deletes a row.
        """
        raw_scenes = []
        for row in rows:
            cells = list(row) + [""] * (len(TABLE_COLUMNS) - len(row))
            if all(_blank(c) for c in cells):
                continue
            raw_scenes.append(dict(zip(TABLE_COLUMNS, cells)))
        data = self.to_dict()
        data["scenes"] = raw_scenes
        return Storyboard.from_dict(data)

    @property
    def total_duration(self) -> float:
        """The film's length: scenes follow each other on the timeline, crossfades included."""
        return sum(s.duration for s in self.scenes)

    def crossfade_into(self, number: int, crossfade: float) -> float:
        """Seconds scene `number` (1-based) fades in over the scene before it: `crossfade` for a
        crossfade transition, never more than half of either scene; 0 for a cut or the first."""
        if not 1 < number <= len(self.scenes) or crossfade <= 0:
            return 0.0
        scene, before = self.scenes[number - 1], self.scenes[number - 2]
        if scene.transition != "crossfade":
            return 0.0
        return min(crossfade, scene.duration / 2, before.duration / 2)

    def drawn_texts(self) -> list[str]:
        """Every text the film draws: title (poster, headers), descriptions and narrations
        (subtitles)."""
        return [self.title, *(s.description for s in self.scenes),
                *(s.narration for s in self.scenes if s.narration)]

    @property
    def size(self) -> tuple[int, int]:
        """The film's native frame size for its aspect (width, height)."""
        return ASPECTS[self.aspect]


def parse_scene(raw: Any, number: int, problems: list[FieldProblem]) -> Scene | None:
    """Validate one scene's fields, appending a FieldProblem for each bad one."""
    if not isinstance(raw, dict):
        problems.append(FieldProblem(number, "scene", "must be an object with the scene's fields"))
        return None
    before = len(problems)
    unknown = sorted(set(raw) - set(TABLE_COLUMNS))
    if unknown:
        problems.append(FieldProblem(number, unknown[0], f"is not a scene field (fields: "
                                     f"{', '.join(TABLE_COLUMNS)})"))
    description = _text(raw.get("description"), number, "description", MAX_DESCRIPTION, problems)
    narration = _text(raw.get("narration", ""), number, "narration", MAX_NARRATION, problems,
                      required=False)
    visual_prompt = _text(raw.get("visual_prompt"), number, "visual_prompt", MAX_VISUAL_PROMPT,
                          problems)
    camera = _choice(raw.get("camera", "static"), number, "camera", CAMERAS, problems)
    motion = _choice(raw.get("motion", "medium"), number, "motion", MOTIONS, problems)
    transition = _choice(raw.get("transition", "cut"), number, "transition", TRANSITIONS, problems)
    duration = _duration(raw.get("duration", 4.0), number, problems)
    seed = _seed(raw.get("seed", 0), number, problems)
    keyframe = _keyframe(raw.get("keyframe"), number, problems)
    if len(problems) > before:
        return None
    return Scene(description=description, visual_prompt=visual_prompt, narration=narration,
                 camera=camera,
                 motion=motion, duration=duration, transition=transition, keyframe=keyframe,
                 seed=seed)


def validate_scene(scene: Scene, number: int) -> None:
    """Raise StoryboardError if an already-built Scene holds a bad value."""
    problems: list[FieldProblem] = []
    parse_scene(asdict(scene), number, problems)
    if problems:
        raise StoryboardError(problems)


def with_scene(board: Storyboard, number: int, **changes: Any) -> Storyboard:
    """A copy of the storyboard with scene `number` (1-based) changed and re-validated."""
    scenes = list(board.scenes)
    scenes[number - 1] = replace(scenes[number - 1], **changes)
    validate_scene(scenes[number - 1], number)
    return replace(board, scenes=scenes)


# ---- field parsers ------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _text(value: Any, scene: int | None, name: str, limit: int,
          problems: list[FieldProblem], required: bool = True) -> str:
    if _blank(value):
        if required:
            problems.append(FieldProblem(scene, name, "is empty; write a short sentence"))
        return ""
    if not isinstance(value, str):
        problems.append(FieldProblem(scene, name, f"must be text (got {type(value).__name__})"))
        return ""
    text = " ".join(value.split())
    if len(text) > limit:
        problems.append(FieldProblem(scene, name, f"is {len(text)} characters long; the limit is "
                                     f"{limit}"))
    return text


def _choice(value: Any, scene: int, name: str, allowed: tuple[str, ...],
            problems: list[FieldProblem]) -> str:
    text = str(value).strip().lower().replace("_", " ").replace("-", " ") if not _blank(value) else ""
    text = " ".join(text.split())
    if text == "closeup":
        text = "close up"
    if text not in allowed:
        problems.append(FieldProblem(scene, name, f"{value!r} is not one of: {', '.join(allowed)}"))
    return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("s").strip()
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _duration(value: Any, scene: int, problems: list[FieldProblem]) -> float:
    seconds = _number(value)
    if seconds is None or not math.isfinite(seconds):
        problems.append(FieldProblem(scene, "duration", f"must be a number of seconds (got "
                                     f"{value!r})"))
        return MIN_DURATION
    if not MIN_DURATION <= seconds <= MAX_DURATION:
        problems.append(FieldProblem(scene, "duration", f"{seconds:g} s is outside "
                                     f"{MIN_DURATION:g}-{MAX_DURATION:g} seconds"))
    return round(seconds, 3)


def _seed(value: Any, scene: int, problems: list[FieldProblem]) -> int:
    number = _number(value)
    if number is None or not math.isfinite(number) or number != int(number):
        problems.append(FieldProblem(scene, "seed", f"must be a whole number (got {value!r})"))
        return 0
    if not 0 <= number <= MAX_SEED:
        problems.append(FieldProblem(scene, "seed", f"must be between 0 and {MAX_SEED}"))
    return int(number)


def _keyframe(value: Any, scene: int, problems: list[FieldProblem]) -> str | None:
    if _blank(value):
        return None
    if not isinstance(value, str):
        problems.append(FieldProblem(scene, "keyframe", "must be an image path or 'continue'"))
        return None
    text = value.strip()
    if text.lower() == CONTINUE:
        if scene == 1:
            problems.append(FieldProblem(scene, "keyframe", "'continue' needs a previous scene; "
                                         "the first scene cannot continue"))
        return CONTINUE
    if len(text) > 1024 or "\x00" in text:
        problems.append(FieldProblem(scene, "keyframe", "is not a usable file path"))
    return text
