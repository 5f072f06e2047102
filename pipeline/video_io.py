"""Writing and reading mp4 files: H.264, yuv420p, even dimensions, moov atom first.

That combination plays in every browser. Files are written to a temporary name and renamed
when complete, so a clip that exists on disk is always a whole clip.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

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
    count = 0
    with av.open(str(target), mode="w", format="mp4",
                 options={"movflags": "+faststart"}) as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = even_size(frame.shape[1], frame.shape[0])[::-1]
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            frame = np.ascontiguousarray(frame[:stream.height, :stream.width, :3])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError(f"no frames to encode for {target.name}")
        for packet in stream.encode():
            container.mux(packet)
    return count


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
