"""Video IO: H.264 encoding, and (below) frame sampling with exact timestamps and a cache."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videotune.core.io import atomic_open


def encode_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    keyframe_interval_s: float = 2.0,
    crf: int = 23,
) -> int:
    """Encode RGB uint8 frames (H, W, 3; even H and W) to an H.264 mp4, atomically.

    Single-threaded x264 with a fixed GOP, so the same frames give the same bytes.
    Returns the number of frames written.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_open(path, "wb") as fh:
        with av.open(fh, mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    height, width = frame.shape[:2]
                    stream = container.add_stream("libx264", rate=rate)
                    stream.width, stream.height = width, height
                    stream.pix_fmt = "yuv420p"
                    gop = max(1, round(keyframe_interval_s * fps))
                    stream.codec_context.gop_size = gop
                    stream.options = {
                        "crf": str(crf),
                        "preset": "veryfast",
                        "threads": "1",
                        # a fixed GOP: scene-cut keyframes would make seeking costs unpredictable
                        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
                    }
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError(f"{path}: no frames to encode")
            for packet in stream.encode():
                container.mux(packet)
    return count
