"""Storyreel studio: `python app.py` serves it at http://localhost:7860 (this machine only).

    python app.py                                   # local, one person, no accounts
    python app.py adduser alice [--admin]           # create an account (asks for a password)
    python app.py --listen --auth users.json        # on the LAN, accounts required
    python app.py --share --auth users.json         # over a Gradio share link
    python app.py --backend animatic                # no GPU / no video weights: animatics
    python app.py --gpus all                        # scenes in parallel, one per GPU (Ray)

Nothing is downloaded or loaded at start-up: models load on first use.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a private studio phones nowhere
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pipeline.cli import (UserError, add_render_settings, quiet_libraries,  # noqa: E402
                          render_settings, scene_workers)

ROOT = Path(__file__).resolve().parent
DEFAULT_AUTH = ROOT / "users.json"
MAX_UPLOAD = "20mb"


def parse(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["adduser"]:
        parser = argparse.ArgumentParser(prog="python app.py adduser",
                                         description="create or update a studio account")
        parser.add_argument("command")
        parser.add_argument("name")
        parser.add_argument("--admin", action="store_true", help="may see everyone's jobs")
        parser.add_argument("--auth", type=Path, default=DEFAULT_AUTH, help="accounts file")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input (for scripts)")
        return parser.parse_args(argv)
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", action="store_true", help="serve on every network interface")
    parser.add_argument("--share", action="store_true", help="also open a Gradio share link")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", type=Path, default=None, help="accounts file (adduser makes it)")
    parser.add_argument("--no-auth", action="store_true",
                        help="allow --listen/--share without accounts (anyone who can reach it "
                             "can use it)")
    parser.add_argument("--outputs", type=Path, default=ROOT / "outputs",
                        help="where films, clips and history are kept")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_render_settings(parser)
    args = parser.parse_args(argv)
    args.command, args.render_seed = "serve", None
    return args


def add_user(args: argparse.Namespace) -> int:
    from ui.access import AccountError, Accounts

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else \
        getpass.getpass(f"password for {args.name}: ")
    try:
        accounts = Accounts.load(args.auth)
        accounts.add(args.name, password, admin=args.admin)
    except AccountError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"saved {'admin ' if args.admin else ''}account {args.name} in {args.auth}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from ui.access import AccountError, Accounts

    exposed = args.listen or args.share
    accounts = None
    if args.auth is not None:
        try:
            accounts = Accounts.load(args.auth)
        except AccountError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if not accounts.users:
            print(f"error: {args.auth} holds no accounts; add one with "
                  f"`python app.py adduser NAME --auth {args.auth}`", file=sys.stderr)
            return 2
    elif exposed and not args.no_auth:
        print("error: --listen and --share make the studio reachable by others, so they need "
              "accounts: create one with `python app.py adduser NAME`, then start with "
              "`--auth users.json` (or pass --no-auth to allow anyone in)", file=sys.stderr)
        return 2
    settings = render_settings(args)
    try:
        settings.check()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        workers = scene_workers(args)  # --gpus/--cluster: Ray workers, one per GPU
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    demo, launch = create_studio(args.outputs, settings, accounts, workers)
    try:
        launch(server_name="0.0.0.0" if args.listen else "127.0.0.1", server_port=args.port,
               share=args.share)
    finally:
        if workers is not None:
            workers.shutdown()
    return 0


def create_studio(outputs: Path, settings, accounts=None, workers=None):  # noqa: ANN001, ANN201
    """The studio's Blocks and a launch function with Storyreel's safety settings bound."""
    from gradio.utils import get_upload_folder
    from starlette.middleware import Middleware

    from pipeline.history import History
    from pipeline.jobs import Jobs
    from ui.access import FileGuard
    from ui.studio import CSS, QUEUE_SIZE, SHORTCUTS_JS, Studio, build
    from ui.text import i18n

    outputs = Path(outputs).resolve()
    history = History(outputs)
    interrupted = history.mark_interrupted()
    if interrupted:
        logging.getLogger("storyreel").warning(
            "%d job(s) were cut off by a restart and are marked interrupted", len(interrupted))
    studio = Studio(Jobs(history, settings, workers=workers), accounts)
    demo = build(studio)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=4)
    middleware = [Middleware(FileGuard, outputs=outputs, registry=studio.registry,
                             accounts=accounts, cache_dir=Path(get_upload_folder()))] \
        if accounts else []

    def launch(**kwargs):  # noqa: ANN003, ANN202
        return demo.launch(
            auth=accounts.check if accounts else None,
            auth_message="Storyreel: sign in with your studio account",
            allowed_paths=[str(outputs)], max_file_size=MAX_UPLOAD, i18n=i18n,
            app_kwargs={"middleware": middleware}, footer_links=[], css=CSS, js=SHORTCUTS_JS,
            **kwargs)

    return demo, launch


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    return add_user(args) if args.command == "adduser" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
