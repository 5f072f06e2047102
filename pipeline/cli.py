"""Command line: `python -m pipeline plan|render|make ...`, headless, same pipeline as the studio.

Errors the user can fix print one line, `error: ...`, and exit 2; the JSON goes to stdout and
everything else (notes, progress) to stderr, so `plan ... > storyboard.json` works.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable

from pathlib import Path
from typing import Any

from pipeline.assemble import (AssemblyError, AssemblySettings, FilmAssembler, FilmResult,
                               assemble_film, check_music)
from pipeline import manifest
from pipeline.events import RenderFinished, SceneDone, describe
from pipeline.history import History, default_root
from pipeline.manifest import CliJob
from pipeline.planner import PlanRequest, PromptRejected, PlanTimings, plan_storyboard
from pipeline.fonts import FontMissing, check_fonts
from pipeline.render import (BACKENDS, QUALITIES, RenderError, RenderSettings, check_renderable,
                             render_storyboard)
from pipeline.storyboard import ASPECTS, MAX_SCENES, Storyboard, StoryboardError
from pipeline.subtitles import POSITIONS, SUBTITLE_STYLES, subtitle_style
from pipeline.voice import (SAMPLE_TEXT, VoiceError, fit_to_narration, narrate, voice_choices,
                            write_wav)

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
    parser.add_argument("--aspect", choices=tuple(ASPECTS), default="16:9",
                        help="the film's shape: 16:9 (1024x576), 9:16 (576x1024), 1:1 (768x768)")
    parser.add_argument("--voice", default="auto",
                        help="who narrates: auto, none, or engine:voice (see `voices`)")


def plan_request(args: argparse.Namespace) -> PlanRequest:
    return PlanRequest(prompt=args.prompt, scenes=args.scenes, seconds=args.seconds,
                       style=args.style, language=args.language, model=args.model,
                       seed=args.seed, use_model=not args.no_model, aspect=args.aspect,
                       voice=args.voice)


def require_prompt_fonts(args: argparse.Namespace) -> None:
    """A Chinese film needs a CJK font: say so before any model loads, not after a render."""
    try:
        check_fonts([args.prompt], cjk=args.language == "zh")
    except FontMissing as err:
        raise UserError(str(err)) from None


def require_renderable(board: Storyboard, where: str = "") -> None:
    """The content filter and the fonts, checked before any job is recorded or model loads."""
    try:
        check_renderable(board)
    except (StoryboardError, RenderError) as err:
        raise UserError(f"{where}{err}") from None


def cmd_plan(args: argparse.Namespace) -> int:
    require_prompt_fonts(args)
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


def add_render_settings(parser: argparse.ArgumentParser) -> None:
    defaults = RenderSettings()
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="svd (video model), animatic (camera moves on stills, CPU), or auto")
    parser.add_argument("--quality", choices=QUALITIES, default="auto",
                        help="turbo: a step-distilled SVD-XT, 4 steps (2-8), about 6x faster; "
                             "full: SVD-XT, 25 steps; auto (default): turbo when its weights are here")
    parser.add_argument("--video-model", default=None, help="SVD hub id or diffusers folder")
    parser.add_argument("--image-model", default=None,
                        help="keyframe text-to-image hub id or diffusers folder")
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps per SVD run (default: turbo 4, full 25)")
    parser.add_argument("--frames", type=int, default=defaults.frames, help="frames per SVD run")
    parser.add_argument("--fps", type=int, default=defaults.fps, help="the film's frame rate")
    parser.add_argument("--profile", choices=("auto", "fast", "balanced", "low"), default="auto",
                        help="GPU memory profile")
    parser.add_argument("--keyframe-steps", type=int, default=defaults.keyframe_steps)
    parser.add_argument("--scene", type=int, action="append", default=[], dest="only_scenes",
                        help="render only this scene (1-based; repeat for more)")
    add_worker_options(parser)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus", default=None, metavar="N|all",
                        help="render scenes in parallel on N GPUs of this machine (or all), one "
                             "Ray worker per GPU; needs Ray: bash scripts/setup.sh --with-ray")
    parser.add_argument("--cluster", default=None, metavar="HOST:PORT",
                        help="render on the GPUs of a running Ray cluster (`ray start --head`); "
                             "LAN only (README: Several GPUs)")


def scene_workers(args: argparse.Namespace) -> Any:
    """Ray workers for --gpus/--cluster (None: render in this process); UserError with the
    install command when Ray is missing."""
    from pipeline.ray_workers import RayUnavailable, RayWorkers, parse_gpus

    try:
        gpus = parse_gpus(args.gpus)
        if gpus is None and not args.cluster:
            return None
        workers = RayWorkers.start(gpus or "all", args.cluster)
    except (RayUnavailable, ValueError) as err:
        raise UserError(str(err)) from None
    times = workers.times
    print(f"Ray: {len(workers.workers)} worker(s) ({', '.join(w.name for w in workers.workers)}); "
          f"Ray started in {times.ray_s:.1f} s, workers in {times.workers_s:.1f} s", flush=True)
    return workers


def render_settings(args: argparse.Namespace) -> RenderSettings:
    crossfade = getattr(args, "crossfade", RenderSettings.crossfade)  # make's, for the tails
    return RenderSettings(crossfade=crossfade,
        backend=args.backend, quality=args.quality, video_model=args.video_model,
        image_model=args.image_model,
        width=args.width, height=args.height, steps=args.steps, frames=args.frames, fps=args.fps,
        profile=args.profile, seed=getattr(args, "render_seed", None),
        keyframe_steps=args.keyframe_steps, only_scenes=args.only_scenes)


def add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("storyboard", type=Path, help="a storyboard JSON file (from `plan`)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the scene clips")
    parser.add_argument("--seed", type=int, default=None, dest="render_seed",
                        help="use this seed for every scene instead of the storyboard's")
    parser.add_argument("--crossfade", type=float, default=RenderSettings.crossfade,
                        help="seconds each crossfade will overlap (give `assemble` the same)")
    parser.add_argument("--aspect", choices=tuple(ASPECTS), default=None,
                        help="render in this shape instead of the storyboard's")
    add_render_settings(parser)
    add_user_option(parser)


def add_user_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=None, metavar="NAME",
                        help="the studio account this job belongs to (default: none; a studio "
                             "without accounts shows every job, one with accounts shows jobs "
                             "of no account to admins)")


def load_storyboard(path: Path) -> Storyboard:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read storyboard {path}: {err}") from None
    try:
        board = Storyboard.from_json(text)
    except StoryboardError as err:
        raise UserError(f"{path}: {err}") from None
    require_renderable(board, f"{path}: ")
    return board


def fitted(board: Storyboard, fps: int) -> Storyboard:
    """The storyboard with each scene long enough for its narration at this frame rate (the
    scenes that grow are noted on stderr)."""
    try:
        board, notes = fit_to_narration(board, fps=fps)
    except (StoryboardError, VoiceError) as err:
        raise UserError(str(err)) from None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return board


def render_and_report(board: Storyboard, out: Path, settings: RenderSettings,
                      base_dir: Path, job: CliJob | None = None,
                      assembler: FilmAssembler | None = None,
                      workers: Any = None) -> RenderFinished:
    """Render, printing one line per event and recording it in the job; returns the last.
    An `assembler` gets each finished scene, to assemble the film while the rest render;
    `workers` renders the scenes (None: this process)."""
    try:
        settings.check()
    except ValueError as err:
        raise UserError(str(err)) from None
    finished = RenderFinished()
    try:
        for event in render_storyboard(board, out, settings, base_dir=base_dir, workers=workers):
            print(describe(event), flush=True)
            if job is not None:
                job.record(event)
            if assembler is not None and isinstance(event, SceneDone):
                assembler.scene_ready(event.scene)
            if isinstance(event, RenderFinished):
                finished = event
    except (RenderError, StoryboardError) as err:
        if job is not None:
            job.finish("failed", str(err))
        raise UserError(str(err)) from None
    except KeyboardInterrupt:
        if job is not None:
            job.finish("cancelled", "stopped with Ctrl-C; finished clips are kept")
        raise
    if job is not None and (finished.failed or finished.cancelled):
        job.finish("cancelled" if finished.cancelled else "failed",
                   f"scene(s) {', '.join(map(str, finished.failed))} failed"
                   if finished.failed else "cancelled")
    return finished


def cmd_render(args: argparse.Namespace) -> int:
    board = load_storyboard(args.storyboard)
    if args.aspect:
        board = dataclasses.replace(board, aspect=args.aspect)
    board = fitted(board, args.fps)
    bad = [n for n in args.only_scenes if not 1 <= n <= len(board.scenes)]
    if bad:
        raise UserError(f"--scene {bad[0]}: the storyboard has scenes 1-{len(board.scenes)}")
    settings = render_settings(args)
    try:
        settings.check()
    except ValueError as err:
        raise UserError(str(err)) from None
    workers = scene_workers(args)
    job = manifest.start(History(default_root()), board, args.out, settings,
                         args.storyboard.resolve().parent, user=args.user)
    try:
        finished = render_and_report(board, args.out, settings, job.base_dir, job,
                                     workers=workers)
    except KeyboardInterrupt:
        print("cancelled: finished clips are kept", file=sys.stderr)
        return 130
    finally:
        if workers is not None:
            workers.shutdown()
    if not finished.failed and not finished.cancelled:
        missing = job.missing_scenes()
        job.finish("planned" if missing else "done",
                   f"scene(s) {', '.join(map(str, missing))} not rendered yet" if missing else "")
    return 0 if not finished.failed and not finished.cancelled else 1


def add_assembly_options(parser: argparse.ArgumentParser) -> None:
    defaults = AssemblySettings()
    parser.add_argument("--music", type=Path, default=None,
                        help="background music (mp3/wav/m4a/ogg), trimmed or looped, faded")
    parser.add_argument("--music-volume", type=float, default=defaults.music_volume,
                        help="music volume, 0-1")
    parser.add_argument("--no-subtitles", action="store_true",
                        help="do not burn subtitles into the picture (the .srt is still written)")
    parser.add_argument("--crossfade", type=float, default=defaults.crossfade,
                        help="seconds of overlap for crossfade transitions")
    parser.add_argument("--subtitle-style", choices=tuple(SUBTITLE_STYLES), default="classic",
                        help="how subtitles look: " + ", ".join(SUBTITLE_STYLES))
    parser.add_argument("--subtitle-size", type=float, default=None,
                        help="subtitle text size, times the style's (0.5-2)")
    parser.add_argument("--subtitle-colour", default=None, help="subtitle colour (#ffe066, yellow)")
    parser.add_argument("--subtitle-position", choices=POSITIONS, default=None,
                        help="where subtitles sit: bottom, middle or top")
    parser.add_argument("--duck", type=float, default=defaults.duck_db, dest="duck_db",
                        help="dB the music drops under the voice (0-40)")


def assembly_settings(args: argparse.Namespace) -> AssemblySettings:
    if not 0 <= args.music_volume <= 1:
        raise UserError(f"--music-volume {args.music_volume} is outside 0-1")
    if not 0 <= args.crossfade <= 5:
        raise UserError(f"--crossfade {args.crossfade} is outside 0-5 seconds")
    if not 0 <= args.duck_db <= 40:
        raise UserError(f"--duck {args.duck_db} is outside 0-40 dB")
    try:
        style = subtitle_style(args.subtitle_style, args.subtitle_size, args.subtitle_colour,
                               args.subtitle_position)
    except ValueError as err:
        raise UserError(str(err)) from None
    settings = AssemblySettings(crossfade=args.crossfade, subtitles=not args.no_subtitles,
                                music=args.music, music_volume=args.music_volume,
                                subtitle_style=style, duck_db=args.duck_db,
                                voice=getattr(args, "assembly_voice", None))
    if settings.music is not None:
        try:
            check_music(settings.music)
        except AssemblyError as err:
            raise UserError(str(err)) from None
    return settings


def report_film(result: FilmResult) -> None:
    print(f"film: {result.film} ({result.duration:.2f} s, {result.frames} frames, assembled in "
          f"{result.seconds:.1f} s)")
    for label, path in (("subtitles", result.srt), ("details", result.info),
                        ("poster", result.poster), ("contact sheet", result.contact_sheet)):
        print(f"{label}: {path}")
    if result.cast_sheet is not None:
        print(f"cast sheet (each scene's keyframe beside its cast's pictures): {result.cast_sheet}")


def add_assemble_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("storyboard", type=Path, help="the storyboard the clips were rendered from")
    parser.add_argument("--clips", type=Path, required=True, help="folder holding scene_NN.mp4")
    parser.add_argument("--out", type=Path, required=True, help="the film, an .mp4 file")
    parser.add_argument("--voice", default=None, dest="assembly_voice",
                        help="who narrates, instead of the storyboard's voice (none: silent)")
    add_assembly_options(parser)


def cmd_assemble(args: argparse.Namespace) -> int:
    board = load_storyboard(args.storyboard)
    settings = assembly_settings(args)
    try:
        report_film(assemble_film(board, args.clips, args.out, settings,
                                  args.storyboard.resolve().parent))
    except AssemblyError as err:
        raise UserError(str(err)) from None
    return 0


def add_make_options(parser: argparse.ArgumentParser) -> None:
    add_plan_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="the film, an .mp4 file")
    add_render_settings(parser)
    add_assembly_options(parser)
    add_user_option(parser)


def cmd_make(args: argparse.Namespace) -> int:
    """plan -> render -> assemble; the clips go to FILM_scenes/ beside the film."""
    if args.out.suffix.lower() != ".mp4":
        raise UserError(f"--out must name an .mp4 file (got {args.out.name})")
    require_prompt_fonts(args)  # a Chinese film without a CJK font stops here, in seconds
    assembly = assembly_settings(args)  # a bad music file is refused before any work
    settings = render_settings(args)
    try:
        settings.check()
    except ValueError as err:
        raise UserError(str(err)) from None
    workers = scene_workers(args)  # a missing Ray is named before the planner runs
    try:
        board = plan_storyboard(plan_request(args))
    except PromptRejected as err:
        raise UserError(str(err)) from None
    require_renderable(board)
    board = fitted(board, settings.fps)
    for note in board.notes:
        print(f"note: {note}", file=sys.stderr)
    clips = args.out.with_name(f"{args.out.stem}_scenes")
    clips.mkdir(parents=True, exist_ok=True)
    (clips / "storyboard.json").write_text(board.to_json(), encoding="utf-8")
    print(f"storyboard: {len(board.scenes)} scenes by {board.planner} -> {clips / 'storyboard.json'}")
    job = manifest.start(History(default_root()), board, clips, settings, Path.cwd(),
                         prompt=args.prompt, film=args.out, assembly=assembly, user=args.user)
    return finish_job(job, workers)


def finish_job(job: CliJob, workers: Any = None) -> int:
    """Render the job's missing scenes (on `workers`, when given: they are shut down at the
    end), then assemble its film if it has one."""
    try:
        return _finish_job(job, workers)
    finally:
        if workers is not None:
            workers.shutdown()


def _finish_job(job: CliJob, workers: Any) -> int:
    require_renderable(job.board)
    job.reconcile()
    missing = job.missing_scenes()
    assembler = None
    if job.film is not None:
        try:
            assembler = FilmAssembler(job.board, job.folder, job.film, job.assembly,
                                      job.base_dir)
        except AssemblyError as err:
            job.finish("failed", str(err))
            raise UserError(str(err)) from None
        assembler.scenes_kept(set(missing))
    if missing:
        settings = dataclasses.replace(job.settings, only_scenes=missing)
        try:
            finished = render_and_report(job.board, job.folder, settings, job.base_dir, job,
                                         assembler, workers)
        except BaseException as err:  # Ctrl-C or a refusal: no film this time
            if assembler is not None:
                assembler.close()
            if isinstance(err, KeyboardInterrupt):
                print("cancelled: finished clips are kept", file=sys.stderr)
                return 130
            raise
        if finished.failed or finished.cancelled:
            if assembler is not None:
                assembler.close()
            print(f"error: the film was not assembled: scene(s) {finished.failed} failed"
                  if finished.failed else "error: cancelled", file=sys.stderr)
            return 1
    if assembler is not None and job.film is not None:
        try:
            film = assembler.finish()
        except AssemblyError as err:
            job.finish("failed", str(err))
            raise UserError(str(err)) from None
        report_film(film)
        job.finish("done", film={"path": str(film.film), "srt": str(film.srt),
                                 "info": str(film.info), "poster": str(film.poster),
                                 "contact_sheet": str(film.contact_sheet),
                                 "duration": round(film.duration, 3)})
    else:
        job.finish("done")
    return 0


def add_resume_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a render folder (holding job.json) or a job id")
    add_worker_options(parser)


def cmd_resume(args: argparse.Namespace) -> int:
    history = History(default_root())
    try:
        job = manifest.load(history, args.target)
    except LookupError as err:
        raise UserError(str(err)) from None
    missing = job.missing_scenes()
    kept = len(job.board.scenes) - len(missing)
    print(f"resuming job {job.job_id}: {kept} finished scene(s) kept, rendering "
          f"{', '.join(map(str, missing)) or 'nothing'}")
    workers = scene_workers(args)
    job.finish("rendering")
    return finish_job(job, workers)


def add_history_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the jobs as JSON")


def cmd_history(args: argparse.Namespace) -> int:
    history = History(default_root())
    history.mark_interrupted()  # a 'rendering' job whose process is gone was cut off
    jobs = history.jobs()
    if args.json:
        print(json.dumps(jobs, ensure_ascii=False, indent=2))
        return 0
    for job in jobs:
        scenes = len((job.get("storyboard") or {}).get("scenes", []))
        done = sum(1 for s in (job.get("scenes") or {}).values() if s.get("status") == "done")
        print(f"{job['id']}  {job['status']:<11}  {done}/{scenes} scenes  "
              f"{job['created'][:16].replace('T', ' ')}  {job['title'][:40]}  {job['dir']}")
    if not jobs:
        print("no jobs yet")
    return 0


def add_voices_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--language", choices=("en", "zh"), default=None,
                        help="only the voices for this language")
    parser.add_argument("--say", default=None, metavar="TEXT",
                        help="speak TEXT (or a sample sentence with --say '') into --out")
    parser.add_argument("--voice", default="auto", help="the voice that speaks --say")
    parser.add_argument("--out", type=Path, default=Path("voice_sample.wav"),
                        help="where --say writes its WAV file")


def cmd_voices(args: argparse.Namespace) -> int:
    """List the voices, or speak a sentence with one (to hear it before a film uses it)."""
    if args.say is None:
        for language in (args.language,) if args.language else ("en", "zh"):
            print(f"{language}: {', '.join(voice_choices(language))}")
        return 0
    language = args.language or "en"
    try:
        speech = narrate(args.say or SAMPLE_TEXT[language], language, args.voice)
        seconds = write_wav(speech, args.out)
    except VoiceError as err:
        raise UserError(str(err)) from None
    print(f"{args.out}: {seconds:.2f} s, {speech.engine} voice {speech.voice}")
    return 0


def add_no_options(parser: argparse.ArgumentParser) -> None:
    """The command takes no options."""


def cmd_doctor(args: argparse.Namespace) -> int:
    from pipeline.doctor import doctor

    return doctor(default_root())


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int], str]] = {
    "plan": (add_plan_options, cmd_plan, "write a storyboard for a prompt (JSON on stdout)"),
    "render": (add_render_options, cmd_render, "render a storyboard's scenes to clips"),
    "assemble": (add_assemble_options, cmd_assemble, "join rendered clips into a film"),
    "make": (add_make_options, cmd_make, "prompt -> storyboard -> clips -> film"),
    "resume": (add_resume_options, cmd_resume,
               "finish a render that was stopped: only its missing scenes, then the film"),
    "history": (add_history_options, cmd_history, "list jobs and their states"),
    "voices": (add_voices_options, cmd_voices, "list the narration voices, or speak a sample"),
    "doctor": (add_no_options, cmd_doctor, "check what a first render needs, with fixes"),
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
