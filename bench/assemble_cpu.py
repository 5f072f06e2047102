"""Film assembly on the CPU: a 6-scene, 30-second, 1024x576, 24 fps film with crossfades,
burned-in subtitles and music, through the product's PyAV writer and through moviepy 2.

    .venv/bin/python bench/assemble_cpu.py
Rows: the whole film assembled from its clips (median_s; cpu_s: the CPU time it took, all
threads); the product's streaming assembler with scenes 1-5 already made into segments, from
scene 6's clip to the finished film (after_last_scene_s, what a person waits for once the last
scene renders); moviepy's film.
above_band_levels: the mean difference, in pixel levels, between the film's first scene and
its clip above the subtitles (what re-encoding the clips costs the pictures there).
Writes bench/results/assemble_cpu.json. Target (issue 4): <= 20 s on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from common import print_table, write_results  # noqa: E402 (sets sys.path)

from pipeline.assemble import AssemblySettings, FilmAssembler, assemble_film
from pipeline.render import RenderSettings, render_storyboard
from pipeline.storyboard import Storyboard
from pipeline.subtitles import subtitle_band, subtitle_style
from pipeline.video_io import moov_before_mdat, probe, read_frames

DESCRIPTIONS = ("森林探险的故事从这里开始", "A river winds between mossy stones.", "小动物出现在画面中",
                "A fox drinks at the water's edge.", "河流在光影中慢慢变化", "森林探险在余晖中落下帷幕")
CAMERAS = ("aerial view", "pan", "close up", "tracking", "zoom in", "zoom out")


def make_clips(folder: Path) -> Storyboard:
    board = Storyboard.from_dict({"title": "Bench film", "style": "", "scenes": [
        {"description": d, "visual_prompt": "bench", "camera": c, "duration": 5, "seed": k,
         "transition": "cut" if k == 0 else "crossfade"}
        for k, (d, c) in enumerate(zip(DESCRIPTIONS, CAMERAS))]})
    list(render_storyboard(board, folder, RenderSettings(backend="animatic", width=1024,
                                                         height=576, fps=24)))
    return board


def make_music(path: Path, seconds: float = 12.0, rate: int = 44100) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) * 9000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes(tone.astype(np.int16).tobytes())
    return path


def moviepy_film(board: Storyboard, folder: Path, music: Path, out: Path,
                 crossfade: float) -> None:
    """The same film with moviepy 2.2 (pixel format forced: its default is yuva420p)."""
    from moviepy import (AudioFileClip, CompositeVideoClip, ImageClip, VideoFileClip, afx,
                         concatenate_videoclips, vfx)

    clips = [VideoFileClip(str(folder / f"scene_{k:02d}.mp4")) for k in range(1, 7)]
    faded = [clips[0]] + [c.with_effects([vfx.CrossFadeIn(crossfade)]) for c in clips[1:]]
    video = concatenate_videoclips(faded, method="compose", padding=-crossfade)
    subs, start = [], 0.0
    for k, scene in enumerate(board.scenes):
        top, rgb, alpha = subtitle_band(scene.description, 1024, 576, subtitle_style())
        rgba = np.concatenate([rgb, alpha * 255], axis=2).astype(np.uint8)
        length = scene.duration - (crossfade if k + 1 < len(board.scenes) else 0)
        subs.append(ImageClip(rgba).with_start(start).with_duration(length)
                    .with_position((0, top)))
        start += length
    film = CompositeVideoClip([video, *subs])
    song = AudioFileClip(str(music)).with_effects([
        afx.AudioLoop(duration=film.duration), afx.AudioFadeIn(1.5), afx.AudioFadeOut(1.5),
        afx.MultiplyVolume(0.5)])
    film.with_audio(song).write_videofile(
        str(out), fps=24, codec="libx264", preset="veryfast", audio_codec="aac", threads=2,
        ffmpeg_params=["-pix_fmt", "yuv420p", "-crf", "20", "-movflags", "+faststart"],
        logger=None, temp_audiofile=str(out.with_suffix(".m4a")))


def after_last_scene(board: Storyboard, folder: Path, music: Path, runs: int) -> float:
    """Median seconds from the last scene's clip to the film, the others' segments made."""
    times = []
    for run in range(runs):
        assembler = FilmAssembler(board, folder / "clips", folder / f"streamed{run}.mp4",
                                  AssemblySettings(crossfade=0.5, music=music))
        for number in range(1, len(board.scenes)):
            assembler.scene_ready(number)
        assembler.worker.submit(lambda: None).result()  # those segments are encoded
        started = time.perf_counter()
        assembler.scene_ready(len(board.scenes))
        assembler.finish()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def above_band_levels(board: Storyboard, folder: Path, film: Path) -> float:
    """Mean pixel difference between the film's first scene and its clip, above its subtitle."""
    clip = read_frames(folder / "clips" / "scene_01.mp4")
    top = subtitle_band(board.scenes[0].description, 1024, 576, subtitle_style())[0]
    frames = read_frames(film)[:len(clip) - 12]  # the clip's last 0.5 s is faded into scene 2
    return round(float(np.mean([np.abs(a[:top].astype(np.int16) - b[:top]).mean()
                                for a, b in zip(frames, clip)])), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        board = make_clips(folder / "clips")
        music = make_music(folder / "music.wav")
        times, cpu = [], []
        for run in range(args.runs):
            started, used = time.perf_counter(), time.process_time()
            result = assemble_film(board, folder / "clips", folder / f"film{run}.mp4",
                                   AssemblySettings(crossfade=0.5, music=music))
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
        info = probe(result.film)
        rows.append({"writer": "pyav (product)", "median_s": round(statistics.median(times), 2),
                     "cpu_s": round(statistics.median(cpu), 2),
                     "after_last_scene_s": after_last_scene(board, folder, music, args.runs),
                     "above_band_levels": above_band_levels(board, folder, result.film),
                     "runs": args.runs, "duration_s": round(info["duration"], 3),
                     "pix_fmt": info["pix_fmt"], "audio": ",".join(info["audio"]),
                     "moov_first": moov_before_mdat(result.film)})
        started = time.perf_counter()
        moviepy_film(board, folder / "clips", music, folder / "moviepy.mp4", 0.5)
        seconds = time.perf_counter() - started
        info = probe(folder / "moviepy.mp4")
        rows.append({"writer": "moviepy 2.2.1", "median_s": round(seconds, 2), "runs": 1,
                     "duration_s": round(info["duration"], 3), "pix_fmt": info["pix_fmt"],
                     "audio": ",".join(info["audio"]),
                     "moov_first": moov_before_mdat(folder / "moviepy.mp4")})
    summary = {"film": "6 scenes x 5 s, crossfade 0.5 s, 1024x576, 24 fps, subtitles, music",
               "expected_duration_s": sum(s.duration for s in board.scenes),
               "product_median_s": rows[0]["median_s"]}
    path = write_results("assemble_cpu", rows, summary)
    print_table(rows, ["writer", "median_s", "cpu_s", "after_last_scene_s", "above_band_levels", "runs",
                       "duration_s", "pix_fmt", "audio", "moov_first"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
