"""Writing and reading mp4 files: H.264, yuv420p, even dimensions, moov atom first.

That combination plays in every browser. Files are written to a temporary name and renamed
when complete, so a clip that exists on disk is always a whole clip.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from models.files import partial_name, sweep_partials


def even_size(width: int, height: int) -> tuple[int, int]:
    return width - width % 2, height - height % 2


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: float, crf: int = 18,
              preset: str = "veryfast") -> int:
    """Encode RGB uint8 frames (H, W, 3) to `path`; returns the number of frames written."""
    path = Path(path)
    sweep_partials(path.parent)  # a clip cut off by a kill is not left behind
    partial = partial_name(path)
    count = _encode(frames, partial, fps, crf, preset)
    os.replace(partial, path)
    return count


def encode_mp4(frames: Iterable[np.ndarray], fps: float, scratch: Path, name: str,
               crf: int = 18, preset: str = "veryfast") -> tuple[bytes, int]:
    """(the mp4's bytes, its frame count), for a clip that travels before it is saved. The
    moov-first layout needs a real file: it is written in `scratch` under a partial name, so
    one that a kill leaves behind is swept like any other, and removed once read."""
    scratch.mkdir(parents=True, exist_ok=True)
    partial = partial_name(scratch / f"{Path(name).stem}-encoding.mp4")
    try:
        count = _encode(frames, partial, fps, crf, preset)
        return partial.read_bytes(), count
    finally:
        partial.unlink(missing_ok=True)


def _encode(frames: Iterable[np.ndarray], target: Path, fps: float, crf: int,
            preset: str) -> int:
    with av.open(str(target), mode="w", format="mp4",
                 options={"movflags": "+faststart"}) as container:
        count = encode_h264(container, frames, fps, crf, preset)
    if count == 0:
        raise ValueError(f"no frames to encode for {target.name}")
    return count


def encode_h264(container: Any, frames: Iterable[np.ndarray], fps: float, crf: int,
                preset: str, size: tuple[int, int] | None = None, layout: str = "rgb24") -> int:
    """Encode frames as one H.264 yuv420p stream of `container`; returns how many. `layout`:
    "rgb24", (H, W, 3) uint8 frames, cut to even dimensions (or to `size`, width and height);
    "yuv420p", pictures as `yuv_planes` lays them out, passed to the encoder as they are (no
    colour conversion)."""
    stream = None
    count = 0
    for frame in frames:
        if stream is None:
            rows = frame.shape[0] * 2 // 3 if layout == "yuv420p" else frame.shape[0]
            width, height = size or even_size(frame.shape[1], rows)
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf), "preset": preset}
        if layout == "rgb24":
            frame = np.ascontiguousarray(frame[:stream.height, :stream.width, :3])
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=layout)):
            container.mux(packet)
        count += 1
    if stream is not None:
        for packet in stream.encode():
            container.mux(packet)
    return count


# ---- yuv420p pictures ----------------------------------------------------------------------
# A picture as PyAV's `to_ndarray()` gives a yuv420p frame: one (height * 3 / 2, width) uint8
# array holding the Y plane's rows, then the U plane's bytes, then the V plane's. The film's
# segments stay in this form from the decoder to the encoder; only the rows that change (a
# subtitle band) go to RGB and back.

def yuv_planes(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of a yuv420p picture's Y (h, w), U and V (h / 2, w / 2) planes."""
    height, width = picture.shape[0] * 2 // 3, picture.shape[1]
    chroma = picture[height:].reshape(2, height // 2, width // 2)
    return picture[:height], chroma[0], chroma[1]


def yuv_rows_to_rgb(picture: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Rows top to bottom (both even) of a yuv420p picture, as RGB (bottom - top, w, 3)."""
    y, u, v = yuv_planes(picture)
    rows = np.concatenate([y[top:bottom].reshape(-1), u[top // 2:bottom // 2].reshape(-1),
                           v[top // 2:bottom // 2].reshape(-1)])
    part = av.VideoFrame.from_ndarray(rows.reshape(-1, picture.shape[1]), format="yuv420p")
    return part.to_ndarray(format="rgb24")


def put_rgb_rows(picture: np.ndarray, top: int, rgb: np.ndarray) -> None:
    """Write RGB rows (an even count) into a yuv420p picture from row `top` (even) down."""
    bottom = top + rgb.shape[0]
    part = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    py, pu, pv = yuv_planes(part.reformat(format="yuv420p").to_ndarray())
    y, u, v = yuv_planes(picture)
    y[top:bottom], u[top // 2:bottom // 2], v[top // 2:bottom // 2] = py, pu, pv


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def frame_at(path: Path, index: int) -> Image.Image:
    """Frame `index` of a clip, decoding no further than it."""
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                return frame.to_image()
    raise ValueError(f"{path} has fewer than {index + 1} frames")


def probe(path: Path) -> dict[str, object]:
    """What a player sees: codec, pixel format, size, frame count, duration in seconds."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        # Count packets, not decoded frames: one H.264 packet per frame, without decoding.
        frames = sum(1 for packet in container.demux(video) if packet.size)
        fps = float(video.average_rate) if video.average_rate else 0.0
        info: dict[str, object] = {
            "codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
            "width": video.codec_context.width, "height": video.codec_context.height,
            "frames": frames, "fps": fps, "duration": frames / fps if fps else 0.0,
            "audio": [s.codec_context.name for s in container.streams.audio],
        }
    return info


def moov_before_mdat(path: Path) -> bool:
    """True when the index (moov) precedes the media data, so playback starts at once."""
    data = Path(path).read_bytes()[:1 << 20]
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    return moov != -1 and (mdat == -1 or moov < mdat)
