"""Narration speed and what the voice costs the film's assembly.

    .venv/bin/python bench/voice.py                 # both engines, then the assembly
    python3 bench/voice.py --engines kokoro --no-assembly --tag gpu   # on a GPU machine

1. Synthesis: six scenes' narration in English and six in Chinese, spoken by eSpeak NG (the
   offline voice, CPU) and by Kokoro-82M with its published architecture and random weights
   (on the GPU when there is one; speed does not depend on the weights' values). Real-time
   factor = seconds to synthesise / seconds of speech (lower is faster). Each engine speaks a
   warm-up sentence first (model load, G2P dictionaries), reported apart.
2. Assembly: a 6-scene, 30-second 1024x576 film at 24 fps with crossfades and music, assembled
   with the narration placed, ducked and subtitled on the voice, against the same film silent
   (target: with voice <= 1.3x). The speech is made at planning time (the planner sizes each
   narration with it), so assembly reuses it; its synthesis is reported in part 1.
Writes bench/results/voice[_TAG].json.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import print_table, write_results  # noqa: E402 (sets sys.path)

from pipeline.storyboard import Storyboard
from pipeline.voice import fit_to_narration, narrate, spoken

NARRATION = {
    "en": ("Deep in the forest, the morning light wakes the river.",
           "A small fox steps carefully between the mossy stones.",
           "Birds call from the branches as the water sparkles.",
           "The fox stops to drink at the edge of the stream.",
           "Clouds drift past and the shadows slowly change.",
           "As evening falls, the forest settles into quiet."),
    "zh": ("清晨的阳光唤醒了森林里的小河。", "一只小狐狸小心地走过长满青苔的石头。", "鸟儿在树枝上歌唱，河水闪闪发光。",
           "小狐狸停下来，在溪边喝水。", "云朵飘过，树影慢慢变化。", "夜幕降临，森林渐渐安静下来。"),
}


def synthesis_rows(engines: list[str], kokoro_size: str) -> list[dict]:
    rows = []
    for engine in engines:
        for language, lines in NARRATION.items():
            choice = "espeak" if engine == "espeak" else f"kokoro:{'af_heart' if language == 'en' else 'zf_001'}"
            began = time.perf_counter()
            narrate("One, two, three." if language == "en" else "一，二，三。", language, choice)
            warm = time.perf_counter() - began
            spoken.cache_clear()
            began = time.perf_counter()
            speeches = [narrate(text, language, choice) for text in lines]
            seconds = time.perf_counter() - began
            audio = sum(line.seconds for s in speeches for line in s.lines)
            rows.append({"engine": engine, "model": "eSpeak NG" if engine == "espeak" else
                         f"Kokoro-82M ({kokoro_size}, random weights)", "language": language,
                         "device": _device(engine), "first_call_s": round(warm, 2),
                         "synthesis_s": round(seconds, 3), "speech_s": round(audio, 2),
                         "rtf": round(seconds / audio, 4)})
    return rows


def _device(engine: str) -> str:
    if engine == "espeak":
        return "CPU"
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"


def assembly_rows(folder: Path, repeats: int) -> list[dict]:
    from bench.assemble_cpu import CAMERAS, make_music  # PyAV: only for this part
    from pipeline.assemble import AssemblySettings, assemble_film
    from pipeline.render import RenderSettings, render_storyboard

    board = Storyboard.from_dict({"title": "Bench film", "style": "", "voice": "espeak",
                                  "scenes": [
        {"description": d, "narration": d, "visual_prompt": "bench", "camera": c, "duration": 5,
         "seed": k, "transition": "cut" if k == 0 else "crossfade"}
        for k, (d, c) in enumerate(zip(NARRATION["en"], CAMERAS))]})
    board, _ = fit_to_narration(board, fps=24)  # as planning does: the speech is made here
    list(render_storyboard(board, folder, RenderSettings(backend="animatic", width=1024,
                                                         height=576, fps=24)))
    music = make_music(folder / "music.wav")
    rows = []
    for label, voiced in (("silent", replace(board, voice="none")), ("narrated", board)):
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            assemble_film(voiced, folder, folder / f"{label}.mp4",
                          AssemblySettings(music=music))
            times.append(time.perf_counter() - began)
        rows.append({"film": label, "median_s": round(statistics.median(times), 2),
                     "runs": [round(t, 2) for t in times]})
    rows[1]["vs_silent"] = round(rows[1]["median_s"] / rows[0]["median_s"], 3)
    return rows


def kokoro_store(root: Path, size: str) -> None:
    """Random Kokoro weights (published architecture) registered for both languages, unless
    real ones are here already."""
    import os

    from models.random_init import build_kokoro
    from models.speech import kokoro_available
    from models.store import register

    if kokoro_available("en") and kokoro_available("zh"):
        return
    os.environ["STORYREEL_CACHE"] = str(root / "cache")
    register("kokoro-82m", build_kokoro(root / "en", ("af_heart",), size=size))
    register("kokoro-82m-zh", build_kokoro(root / "zh", ("zf_001",), size=size,
                                           checkpoint="kokoro-v1_1-zh.pth"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", nargs="+", default=["espeak", "kokoro"])
    parser.add_argument("--kokoro-size", choices=("full", "tiny"), default="full")
    parser.add_argument("--no-assembly", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if "kokoro" in args.engines:
            kokoro_store(Path(tmp), args.kokoro_size)
        synthesis = synthesis_rows(args.engines, args.kokoro_size)
        print_table(synthesis, ["engine", "language", "device", "first_call_s", "synthesis_s",
                                "speech_s", "rtf"])
        assembly = [] if args.no_assembly else assembly_rows(Path(tmp) / "film", args.repeats)
        if assembly:
            print()
            print_table(assembly, ["film", "median_s", "vs_silent", "runs"])
    summary = {f"rtf_{r['engine']}_{r['language']}": r["rtf"] for r in synthesis}
    if assembly:
        summary["assembly_with_voice_vs_silent"] = assembly[1]["vs_silent"]
    path = write_results("voice" + (f"_{args.tag}" if args.tag else ""),
                         [{"part": "synthesis", **r} for r in synthesis]
                         + [{"part": "assembly", **r} for r in assembly], summary)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
