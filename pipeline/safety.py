"""Content filter: a configurable word list, English and Chinese.

It runs on the prompt and on every scene before anything is rendered. English terms match
whole words (case-insensitive); Chinese terms match anywhere, since Chinese has no spaces.
The list is a plain text file, one term per line, `#` for comments: point
STORYREEL_BLOCKLIST (or `ContentFilter.from_file`) at your own to change it.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.storyboard import FieldProblem, Storyboard

DEFAULT_BLOCKLIST = Path(__file__).with_name("blocklist.txt")


@functools.lru_cache(maxsize=8)
def _read_terms(path: str, _mtime_ns: int) -> tuple[str, ...]:
    """The list's terms, read again only when the file changes (checked on every render)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(t.strip().lower() for t in lines if t.strip() and not t.lstrip().startswith("#"))


@dataclass(frozen=True)
class ContentFilter:
    terms: tuple[str, ...]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ContentFilter:
        path = Path(path)
        return cls(_read_terms(str(path), path.stat().st_mtime_ns))

    @classmethod
    def default(cls) -> ContentFilter:
        return cls.from_file(os.environ.get("STORYREEL_BLOCKLIST") or DEFAULT_BLOCKLIST)

    def find(self, text: str) -> str | None:
        """The first blocked term in `text`, or None."""
        lowered = text.lower()
        for term in self.terms:
            if term.isascii():
                if re.search(rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])", lowered):
                    return term
            elif term in lowered:
                return term
        return None

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
            for name in ("description", "visual_prompt"):
                term = self.find(getattr(scene, name))
                if term:
                    problems.append(FieldProblem(number, name, f"contains a blocked term ({term!r})"))
        return problems
