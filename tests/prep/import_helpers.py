"""Tiny media for the importer tests: real H.264 clips, a cut one, garbage bytes, PNG images."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from videotune.core.video import encode_video

FPS = 12.0
SIZE_PX = 32


def frames(seconds: float, fps: float = FPS, size: int = SIZE_PX):
    for i in range(round(seconds * fps)):
        frame = np.zeros((size, size, 3), dtype=np.uint8)
        frame[:, : (i % size) + 1] = (40 + 5 * i) % 255  # a moving edge, so frames differ
        yield frame


def clip(path: Path, seconds: float = 3.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(path, frames(seconds), FPS)
    return path


def cut_clip(path: Path, seconds: float = 3.0, keep: float = 0.5) -> Path:
    """A clip whose header (moov first, "faststart") promises every frame but whose data is cut short."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(int(FPS)))
        stream.width = stream.height = SIZE_PX
        stream.pix_fmt = "yuv420p"
        stream.options = {"threads": "1"}
        for frame in frames(seconds):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x01 this is not a video " * 64)
    return path


def image(path: Path, value: int = 128, size: tuple[int, int] = (20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)
    return path


def cut_image(path: Path) -> Path:
    image(path, size=(64, 64))
    rng = np.random.default_rng(0)  # noise does not compress, so the cut lands inside the pixel data
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def run_prep(*args: str):
    """vt-prep in process; returns the click result (exit_code, output)."""
    from videotune.prep.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def rejects(out: Path) -> list[dict]:
    path = out / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
