"""Temporal and spatial variants of a set (RQ1.2.1, RQ1.2.3, RQ3.1.3).

Temporal variants are example sets, not videos: frames are sampled at load time, so a variant
only changes each example's `frames` (count and exact timestamps, planned with
core.video.plan_frames, i.e. exactly the frames core.video.sample_frames returns) and restates
them in the prompt.

- frame counts at constant coverage: n frames spread uniformly over the whole clip;
- fps ratios at a constant count: n consecutive frames taken every 1/ratio source frames (ratio 1:
  every frame, 0.5: every other, 0.25: every fourth), in a window centred on the clip. The
  window is recorded in meta.sampling ({n_frames, start_s, end_s}) and is exactly the core
  SamplingSpec that reproduces the timestamps.

Resolution variants re-encode the clips (resize_fn): a square of `size` px (stretched, as the
seed's 224x224..560x560 sweep), the longer side at `size` px, or a letterbox (aspect kept, padded
to `size` x `size`, core.image.letterbox).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videotune.core.image import letterbox
from videotune.core.io import InputError
from videotune.core.schemas import Example, FrameSpec
from videotune.core.video import SamplingSpec, VideoInfo, plan_frames, probe, restate_frames
from videotune.prep.derive import FrameFn

ResizeMode = Literal["square", "longest", "letterbox"]


@dataclass(frozen=True)
class FramePlan:
    name: str  # the variant's folder: frames8, fps0.5_frames16
    n_frames: int
    fps_ratio: float | None  # None: uniform over the whole clip

    def params(self) -> dict[str, Any]:
        if self.fps_ratio is None:
            return {"kind": "count", "n_frames": self.n_frames, "coverage": "whole clip"}
        return {"kind": "fps_ratio", "n_frames": self.n_frames, "fps_ratio": self.fps_ratio}


def frame_plans(counts: list[int], fps_ratios: list[float], fps_count: int) -> list[FramePlan]:
    plans = [FramePlan(f"frames{n}", n, None) for n in counts]
    plans += [FramePlan(f"fps{r:g}_frames{fps_count}", fps_count, r) for r in fps_ratios]
    return plans


def fps_window(path: Path, info: VideoInfo, n_frames: int, ratio: float) -> SamplingSpec:
    """The window holding `n_frames` frames `1/ratio` source frames apart, centred on the clip.

    Raises ValueError when the clip is too short for it.
    """
    _, every = plan_frames(path, SamplingSpec(n_frames=None, target_fps=info.fps))  # every frame's time, s
    step = 1.0 / ratio  # source frames between two kept frames
    span = math.floor((n_frames - 1) * step + 1e-9)  # frames from the first kept to the last
    if span > len(every) - 1:
        raise ValueError(f"{n_frames} frames at {ratio:g}x the source rate span {span + 1} frames; "
                         f"the clip has {len(every)}")
    first = round((len(every) - 1 - span) / 2)
    return SamplingSpec(n_frames=n_frames, start_s=every[first], end_s=every[first + span])


def frame_variant(example: Example, path: Path, plan: FramePlan) -> Example:
    """`example` sampling the frames `plan` asks for; ValueError says why it cannot."""
    if example.frames is None:
        raise ValueError("an image example has no frames to vary")
    info = probe(path)
    if plan.fps_ratio is None:
        spec = SamplingSpec(n_frames=plan.n_frames)
    else:
        spec = fps_window(path, info, plan.n_frames, plan.fps_ratio)
    _, timestamps = plan_frames(path, spec)
    try:
        varied = restate_frames(example, timestamps, info.duration_s)
    except InputError as err:
        raise ValueError(str(err)) from err
    sampling = {"n_frames": spec.n_frames, "start_s": spec.start_s, "end_s": spec.end_s}
    meta = {**example.meta, "frames_variant": {"name": plan.name, **plan.params()}, "sampling": sampling}
    return varied.model_copy(update={"frames": FrameSpec(n=len(timestamps), timestamps_s=timestamps), "meta": meta})


def resized_size(width: int, height: int, size: int, mode: ResizeMode) -> tuple[int, int]:
    """Output (width, height) in px; even, as H.264 4:2:0 needs."""
    if mode in ("square", "letterbox"):
        return size, size
    scale = size / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def resize_image(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frame` at `width` x `height` px: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    import cv2

    if (frame.shape[1], frame.shape[0]) == (width, height):
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_fn(size: int, mode: ResizeMode) -> FrameFn:
    if size % 2:
        raise ValueError(f"size {size} px must be even (H.264 with 4:2:0 chroma)")

    def apply(frame: np.ndarray) -> np.ndarray:
        if mode == "letterbox":
            return letterbox(frame, size)
        width, height = resized_size(frame.shape[1], frame.shape[0], size, mode)
        return resize_image(frame, width, height)

    return apply
