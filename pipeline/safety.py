"""Content filter: a configurable word list, English and Chinese.

It runs on the prompt, on every field the planner's model writes, and on every storyboard
before anything is rendered or drawn (`render.check_renderable`). English terms match whole
words (case-insensitive); Chinese terms match anywhere, since Chinese has no spaces.
The list is a plain text file, one term per line, `#` for comments: point
STORYREEL_BLOCKLIST (or `ContentFilter.from_file`) at your own to change it. Terms after a
`[unprompted]` line are refused only in text a model wrote when the person's prompt does not
have them: a lost-cat story must not come back with "her coat full of blood", while a person
who asks for a vampire film with blood may have it.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.storyboard import FieldProblem, Storyboard

DEFAULT_BLOCKLIST = Path(__file__).with_name("blocklist.txt")


UNPROMPTED = "[unprompted]"  # the line that starts the second section of a list


@functools.lru_cache(maxsize=8)
def _read_terms(path: str, _mtime_ns: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(always refused, refused unless prompted), read again only when the file changes."""
    sections: tuple[list[str], list[str]] = ([], [])
    current = sections[0]
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        term = line.strip().lower()
        if term == UNPROMPTED:
            current = sections[1]
        elif term and not term.startswith("#"):
            current.append(term)
    return tuple(sections[0]), tuple(sections[1])


def _matches(term: str, lowered: str) -> bool:
    if term.isascii():
        return re.search(rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])", lowered) is not None
    return term in lowered


@dataclass(frozen=True)
class ContentFilter:
    terms: tuple[str, ...]               # refused everywhere
    unprompted: tuple[str, ...] = ()     # refused in a model's text unless the prompt has them

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ContentFilter:
        path = Path(path)
        return cls(*_read_terms(str(path), path.stat().st_mtime_ns))

    @classmethod
    def default(cls) -> ContentFilter:
        return cls.from_file(os.environ.get("STORYREEL_BLOCKLIST") or DEFAULT_BLOCKLIST)

    def find(self, text: str) -> str | None:
        """The first blocked term in `text`, or None."""
        lowered = text.lower()
        return next((term for term in self.terms if _matches(term, lowered)), None)

    def find_written(self, text: str, prompt: str) -> str | None:
        """The first term a model may not write in `text` for `prompt`, or None."""
        term = self.find(text)
        if term is not None:
            return term
        lowered, asked = text.lower(), prompt.lower()
        return next((t for t in self.unprompted if _matches(t, lowered) and not _matches(t, asked)),
                    None)

    def check_prompt(self, prompt: str) -> FieldProblem | None:
        term = self.find(prompt)
        if term is None:
            return None
        return FieldProblem(None, "prompt", f"contains a blocked term ({term!r}); rephrase it")

    def check_storyboard(self, board: Storyboard) -> list[FieldProblem]:
        problems = []
        for name in ("title", "style"):
            term = self.find(getattr(board, name))
            if term:
                problems.append(FieldProblem(None, name, f"contains a blocked term ({term!r})"))
        for number, scene in enumerate(board.scenes, start=1):
            for name in ("description", "narration", "visual_prompt"):
                term = self.find(getattr(scene, name))
                if term:
                    problems.append(FieldProblem(number, name, f"contains a blocked term ({term!r})"))
        return problems
