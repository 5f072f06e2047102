"""`python -m models`: the models Storyreel knows, fetching them, and registering folders.

    python -m models list
    python -m models download NAME [--source hf|modelscope] [--endpoint URL]
    python -m models add NAME PATH
"""
from __future__ import annotations

import argparse
import sys
import time

from models.registry import KNOWN_MODELS
from models.status import model_present


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="role, size, VRAM, licence, gated, present")
    get = sub.add_parser("download", help="fetch a model's weights, with progress; resumes")
    get.add_argument("name", help="a name or repository from `python -m models list`")
    get.add_argument("--source", choices=("hf", "modelscope"), default="hf",
                     help="hf: the Hugging Face hub or the mirror in HF_ENDPOINT; modelscope: ModelScope")
    get.add_argument("--endpoint", help="the hub's address (a mirror), instead of the default")
    add = sub.add_parser("add", help="register a folder of weights you already have")
    add.add_argument("name", help="a name or repository from `python -m models list`, or a new name")
    add.add_argument("path", help="the folder (a diffusers pipeline, or a transformers model)")
    args = parser.parse_args(argv)
    if args.command == "download":
        return _download(args.name, args.source, args.endpoint)
    if args.command == "add":
        return _add(args.name, args.path)
    return _list()


def _list() -> int:
    header = ("name", "role", "repository", "disk GB", "VRAM GB", "licence", "gated", "present")
    rows = [(m.name, m.role, m.repo_id, f"{m.disk_gb:g}", f"{m.vram_gb:g}", m.licence,
             "yes" if m.gated else "no", "yes" if model_present(m) else "no")
            for m in KNOWN_MODELS]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _download(name: str, source: str, endpoint: str | None) -> int:
    from models.download import DownloadError, Progress, download
    from models.store import StoreError

    last = [0.0]  # when the progress line was last drawn (0: never)

    def show(p: Progress) -> None:  # one progress line, redrawn at most 10 times a second
        now = time.monotonic()
        if now - last[0] < 0.1 and p.done_bytes < p.total_bytes:
            return
        last[0] = now
        share = f"{100 * p.done_bytes / p.total_bytes:5.1f}%" if p.total_bytes else "     "
        print(f"\r{share} {p.done_bytes / 1e9:6.2f}/{p.total_bytes / 1e9:.2f} GB  {p.file[-50:]:50}",
              end="", file=sys.stderr, flush=True)

    try:
        folder = download(name, source, endpoint, show)
    except (DownloadError, StoreError) as err:
        print(f"{chr(10) if last[0] else ''}error: {err}", file=sys.stderr)
        return 2
    print(f"\n{name}: ready in {folder}")
    return 0


def _add(name: str, path: str) -> int:
    from models.store import StoreError, register

    try:
        key = register(name, path)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{key}: registered {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
