"""Command line: `python -m pipeline plan|render|make ...`, headless, same pipeline as the studio.

Errors the user can fix print one line, `error: ...`, and exit 2; the JSON goes to stdout and
everything else (notes, progress) to stderr, so `plan ... > storyboard.json` works.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from pipeline.planner import PlanRequest, PromptRejected, PlanTimings, plan_storyboard
from pipeline.storyboard import MAX_SCENES

log = logging.getLogger("pipeline")


class UserError(Exception):
    """Bad input or a missing resource: printed as one line, exit code 2."""


def quiet_libraries() -> None:
    """Keep third-party progress bars and warnings off the user's terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", module="transformers")
    warnings.filterwarnings("ignore", module="diffusers")


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="one sentence describing the film (Chinese or English)")
    parser.add_argument("--scenes", type=int, default=5,
                        help=f"number of scenes (1-{MAX_SCENES}; more is capped)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="target film length in seconds (default: 4 per scene)")
    parser.add_argument("--model", default=None,
                        help="chat model: hub id, local folder, GGUF file, or 'embedded'")
    parser.add_argument("--language", choices=("zh", "en", "auto"), default="auto",
                        help="language of the subtitles (default: the prompt's)")
    parser.add_argument("--style", default=PlanRequest.style, help="style words for every scene")
    parser.add_argument("--seed", type=int, default=None, help="seed shared by every scene")
    parser.add_argument("--no-model", action="store_true",
                        help="use the rule-based planner only")


def plan_request(args: argparse.Namespace) -> PlanRequest:
    return PlanRequest(prompt=args.prompt, scenes=args.scenes, seconds=args.seconds,
                       style=args.style, language=args.language, model=args.model,
                       seed=args.seed, use_model=not args.no_model)


def cmd_plan(args: argparse.Namespace) -> int:
    timings = PlanTimings()
    try:
        board = plan_storyboard(plan_request(args), timings=timings)
    except PromptRejected as err:
        raise UserError(str(err)) from None
    for note in board.notes:
        print(f"note: {note}", file=sys.stderr)
    log.info("planned %d scenes with %s in %.1f s (%d tokens, %d re-asks)", len(board.scenes),
             board.planner, timings.generate_s, timings.tokens, timings.reasks)
    print(board.to_json())
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int], str]] = {
    "plan": (add_plan_options, cmd_plan, "write a storyboard for a prompt (JSON on stdout)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="Storyreel: prompt -> storyboard -> film")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_options, _, help_text) in COMMANDS.items():
        add_options(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    try:
        return COMMANDS[args.command][1](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
