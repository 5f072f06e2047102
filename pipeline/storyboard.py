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
MAX_CAST = 4             # characters one film may keep the same from scene to scene
MAX_NAME = 40            # characters of a cast member's name
MAX_LOOK = 200           # characters of a cast member's one-line look
DEFAULT_STRENGTH = 0.6   # how strongly a cast member's picture steers their keyframes (0-1)
DEFAULT_LOOK_STRENGTH = 0.5  # how strongly the film's style picture steers every keyframe
NAME_SEPARATORS = ",，、;；"  # what separates the names in a scene's cast cell

ASPECTS = {"16:9": (1024, 576), "9:16": (576, 1024), "1:1": (768, 768)}  # SVD-XT's sizes

TABLE_COLUMNS = (
    "description", "narration", "visual_prompt", "cast", "camera", "motion", "duration",
    "transition", "keyframe", "seed",
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
    cast: list[str] = field(default_factory=list)  # names of the cast members in this scene


@dataclass
class CastMember:
    """A character who must look the same in every scene they are in."""

    name: str                 # how the scenes' cast cells name them ("Mimi")
    look: str                 # one line, English, added to each of their scenes' visual prompts
    reference: str | None = None  # their picture (a path): uploaded, or drawn once from the look
    strength: float = DEFAULT_STRENGTH  # how strongly the picture steers their keyframes (0-1)
    seed: int = 0             # seeds the drawing of their picture


@dataclass
class Storyboard:
    title: str
    style: str
    scenes: list[Scene]
    cast: list[CastMember] = field(default_factory=list)  # at most MAX_CAST
    look_reference: str | None = None  # a picture whose style every keyframe takes (a path)
    look_strength: float = DEFAULT_LOOK_STRENGTH  # how strongly it does (0-1)
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
        cast = _cast(data.get("cast"), problems)
        names = tuple(member.name for member in cast)
        scenes = []
        for number, raw in enumerate(raw_scenes[:MAX_SCENES], start=1):
            scene = parse_scene(raw, number, problems, names)
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
        look_reference = _picture(data.get("look_reference"), None, "look_reference", problems)
        look_strength = _strength(data.get("look_strength", DEFAULT_LOOK_STRENGTH), None,
                                  "look_strength", problems)
        if problems:
            raise StoryboardError(problems)
        return cls(title=title, style=style, scenes=scenes, cast=cast,
                   look_reference=look_reference, look_strength=look_strength,
                   language=language, aspect=aspect, voice=voice.strip(),
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

    def with_rows(self, rows: list[list[Any]], **fields: Any) -> Storyboard:
        """A copy with its scenes replaced by edited table rows (and storyboard `fields` such as
        the cast replaced too), checked whole; raises StoryboardError.

        Empty rows (every cell blank) are dropped: that is how a table deletes a row.
        """
        raw_scenes = []
        for row in rows:
            cells = list(row) + [""] * (len(TABLE_COLUMNS) - len(row))
            if all(_blank(c) for c in cells):
                continue
            raw_scenes.append(dict(zip(TABLE_COLUMNS, cells)))
        data = {**self.to_dict(), **fields, "scenes": raw_scenes}
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
        (subtitles), and the cast's names (the cast sheet)."""
        return [self.title, *(s.description for s in self.scenes),
                *(s.narration for s in self.scenes if s.narration),
                *(member.name for member in self.cast)]

    def cast_of(self, number: int) -> list[CastMember]:
        """The cast members in scene `number` (1-based), in the cast's order."""
        names = set(self.scenes[number - 1].cast)
        return [member for member in self.cast if member.name in names]

    def scene_prompt(self, number: int) -> str:
        """What the keyframe model is asked for in scene `number`: the looks of the scene's cast
        first (so the image model's 77 tokens always read them), then its visual prompt."""
        scene = self.scenes[number - 1]
        lowered = scene.visual_prompt.lower()
        looks = [m.look for m in self.cast_of(number) if m.look.lower() not in lowered]
        return ", ".join([*looks, scene.visual_prompt])

    def with_cast_member(self, name: str, **changes: Any) -> Storyboard:
        """A copy with cast member `name` changed (its picture, strength, ...)."""
        cast = [replace(m, **changes) if m.name == name else m for m in self.cast]
        return replace(self, cast=cast)

    @property
    def size(self) -> tuple[int, int]:
        """The film's native frame size for its aspect (width, height)."""
        return ASPECTS[self.aspect]


def parse_scene(raw: Any, number: int, problems: list[FieldProblem],
                cast: tuple[str, ...] | None = None) -> Scene | None:
    """Validate one scene's fields, appending a FieldProblem for each bad one; `cast` names
    the film's cast members (None: the scene's cast is not checked against it)."""
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
    in_scene = _scene_cast(raw.get("cast"), number, cast, problems)
    if len(problems) > before:
        return None
    return Scene(description=description, visual_prompt=visual_prompt, narration=narration,
                 camera=camera,
                 motion=motion, duration=duration, transition=transition, keyframe=keyframe,
                 seed=seed, cast=in_scene)


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
    if isinstance(value, list):  # a scene's cast: "Mimi, Bo"
        return ", ".join(value)
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


def _seed(value: Any, scene: int | None, problems: list[FieldProblem], name: str = "seed") -> int:
    number = _number(value)
    if number is None or not math.isfinite(number) or number != int(number):
        problems.append(FieldProblem(scene, name, f"must be a whole number (got {value!r})"))
        return 0
    if not 0 <= number <= MAX_SEED:
        problems.append(FieldProblem(scene, name, f"must be between 0 and {MAX_SEED}"))
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


def _cast(value: Any, problems: list[FieldProblem]) -> list[CastMember]:
    """The film's cast: up to MAX_CAST members, each named once."""
    if _blank(value) or value == []:
        return []
    if not isinstance(value, list):
        problems.append(FieldProblem(None, "cast", "must be a list of cast members"))
        return []
    if len(value) > MAX_CAST:
        problems.append(FieldProblem(None, "cast", f"has {len(value)} members; a film keeps at "
                                     f"most {MAX_CAST} characters the same"))
    cast: list[CastMember] = []
    for index, raw in enumerate(value[:MAX_CAST], start=1):
        where = f"cast {index}"
        if not isinstance(raw, dict):
            problems.append(FieldProblem(None, where, "must be an object with name and look"))
            continue
        name = _text(raw.get("name"), None, f"{where}, name", MAX_NAME, problems)
        if any(ch in name for ch in NAME_SEPARATORS):
            problems.append(FieldProblem(None, f"{where}, name", f"{name!r} may not contain "
                                         f"commas or semicolons (they separate names in a "
                                         f"scene's cast)"))
        if name and name.lower() in (m.name.lower() for m in cast):
            problems.append(FieldProblem(None, f"{where}, name", f"{name!r} is in the cast twice"))
        look = _text(raw.get("look"), None, f"{where}, look", MAX_LOOK, problems)
        reference = _picture(raw.get("reference"), None, f"{where}, reference", problems)
        strength = _strength(raw.get("strength", DEFAULT_STRENGTH), None, f"{where}, strength",
                             problems)
        seed = _seed(raw.get("seed", 0), None, problems, f"{where}, seed")
        cast.append(CastMember(name, look, reference, strength, seed))
    return cast


def split_names(cell: str) -> list[str]:
    """The names in a scene's cast cell ("Mimi, Bo"; Chinese commas and 、 separate them too)."""
    for separator in NAME_SEPARATORS[1:]:
        cell = cell.replace(separator, ",")
    return [name.strip() for name in cell.split(",") if name.strip()]


def _scene_cast(value: Any, scene: int, cast: tuple[str, ...] | None,
                problems: list[FieldProblem]) -> list[str]:
    """A scene's cast cell ("Mimi, Bo", or a list) as the cast's own spelling of each name."""
    if _blank(value) or value == []:
        return []
    if isinstance(value, str):
        names = split_names(value)
    elif isinstance(value, list) and all(isinstance(n, str) for n in value):
        names = [n.strip() for n in value if n.strip()]
    else:
        problems.append(FieldProblem(scene, "cast", "must be names separated by commas"))
        return []
    if cast is None:
        return list(dict.fromkeys(names))
    known = {name.lower(): name for name in cast}
    found: list[str] = []
    for name in names:
        if name.lower() not in known:
            listed = ", ".join(cast) if cast else "the film has no cast yet"
            problems.append(FieldProblem(scene, "cast", f"{name!r} is not in the film's cast "
                                         f"({listed}); add them to the cast or fix the name"))
        elif known[name.lower()] not in found:
            found.append(known[name.lower()])
    return found


def _picture(value: Any, scene: int | None, name: str, problems: list[FieldProblem]) -> str | None:
    """An image's path, or None."""
    if _blank(value):
        return None
    if not isinstance(value, str) or len(value) > 1024 or "\x00" in value:
        problems.append(FieldProblem(scene, name, "is not a usable image path"))
        return None
    return value.strip()


def _strength(value: Any, scene: int | None, name: str, problems: list[FieldProblem]) -> float:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        problems.append(FieldProblem(scene, name, f"must be a number from 0 (no effect) to 1 "
                                     f"(got {value!r})"))
        return DEFAULT_STRENGTH
    return round(number, 3)
