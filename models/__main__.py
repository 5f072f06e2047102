"""`python -m models list`: every model Storyreel knows, and whether it is on this machine."""
from __future__ import annotations

import argparse
import sys

from models.registry import KNOWN_MODELS
from models.status import model_present


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="role, size, VRAM, licence, gated, present")
    parser.parse_args(argv)
    header = ("name", "role", "repository", "disk GB", "VRAM GB", "licence", "gated", "present")
    rows = [(m.name, m.role, m.repo_id, f"{m.disk_gb:g}", f"{m.vram_gb:g}", m.licence,
             "yes" if m.gated else "no", "yes" if model_present(m) else "no")
            for m in KNOWN_MODELS]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
