"""Degraded test sets for robustness (RQ1.3.3): motion blur, compression, lighting and occlusion,
each at its levels; one set per (kind, level), deterministic per seed.

- blur: a directional (linear) motion kernel, `level` % of the frame's longer side long, at one
  angle per clip (a camera shake has one direction), applied with cv2.filter2D;
- compression: the clip re-encoded with x264 at CRF `level` (35, 40, 45: visible to heavy blocking);
- lighting: exposure and contrast moved together by `level` % (albumentations
  RandomBrightnessContrast with its range pinned to one value): -60 is a dim, flat clip, +60 a
  bright, harsh one;
- occlusion: 1 to 3 boxes, fixed for the whole clip (an occluder that stays, like equipment),
  covering `level` % of the frame area exactly (to a pixel or so), black or one random colour each.

Sample ids are kept: each set holds the same clips as its parent, so per-clip results pair up
across levels; the clip's meta records the kind, level and the drawn parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videotune.core.schemas import Reject, Sample
from videotune.core.video import VideoReadError, probe
from videotune.prep.derive import ClipJob, FrameFn, rng_for, with_meta

Kind = Literal["blur", "compression", "lighting", "occlusion"]
KINDS: tuple[str, ...] = ("blur", "compression", "lighting", "occlusion")
DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "blur": (2.0, 4.0, 8.0),  # kernel length, % of the longer side
    "compression": (35.0, 40.0, 45.0),  # x264 CRF
    "lighting": (-60.0, -40.0, -20.0, 20.0, 40.0, 60.0),  # % brightness and contrast
    "occlusion": (10.0, 20.0, 30.0),  # % of the frame area
}


def level_name(kind: str, level: float) -> str:
    text = f"{level:g}"
    if kind == "compression":
        return f"compression_crf{text}"
    if kind == "lighting":
        return f"lighting_{'+' if level > 0 else ''}{text}"
    return f"{kind}_{text}"


def check_level(kind: str, level: float) -> None:
    if kind == "blur" and not 0 < level <= 50:
        raise ValueError(f"blur level {level:g} must be a kernel length in (0, 50] % of the frame side")
    if kind == "compression" and (level != int(level) or not 0 <= level <= 51):
        raise ValueError(f"compression level {level:g} must be an x264 CRF, an integer in 0..51")
    if kind == "lighting" and not (-100 < level <= 100 and level != 0):
        raise ValueError(f"lighting level {level:g} must be a non-zero % in (-100, 100]")
    if kind == "occlusion" and not 0 < level < 100:
        raise ValueError(f"occlusion level {level:g} must be a % of the frame area in (0, 100)")


# --------------------------------------------------------------------------- blur


def motion_kernel(length_px: int, angle_deg: float) -> np.ndarray:
    """A normalised line kernel `length_px` long at `angle_deg` (0 = horizontal): a straight shake."""
    length_px = max(1, int(length_px))
    size = length_px if length_px % 2 else length_px + 1  # odd: the kernel has a centre pixel
    kernel = np.zeros((size, size), np.float32)
    centre = (size - 1) / 2
    dx, dy = math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))
    for t in np.linspace(-(length_px - 1) / 2, (length_px - 1) / 2, 4 * length_px):
        kernel[round(centre + t * dy), round(centre + t * dx)] = 1.0
    return kernel / kernel.sum()


def blur_fn(level: float, rng: np.random.Generator) -> tuple[FrameFn, dict[str, Any]]:
    import cv2

    angle = round(float(rng.uniform(0.0, 180.0)), 3)

    def apply(frame: np.ndarray) -> np.ndarray:
        length = max(3, round(level / 100 * max(frame.shape[:2])))
        return cv2.filter2D(frame, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT_101)

    return apply, {"angle_deg": angle, "length_pct_of_long_side": level}


# --------------------------------------------------------------------------- lighting


def lighting_fn(level: float) -> tuple[FrameFn, dict[str, Any]]:
    """Exposure times (1 + L) and contrast about the frame's mean times (1 + L), L = level / 100.

    albumentations' RandomBrightnessContrast (brightness relative to the mean) computes
    alpha * x + beta * mean(x); alpha = (1 + L)^2, beta = -L (1 + L) gives a frame whose mean is
    (1 + L) times the original and whose deviations from the mean are (1 + L)^2 times theirs:
    -60 leaves a dim, flat but visible clip (a plain -60% shift of the full range is black).
    """
    import albumentations as A

    amount = level / 100
    contrast = (1 + amount) ** 2 - 1
    brightness = -amount * (1 + amount)
    # ranges pinned to one value: every frame of every clip changes alike at this level
    transform = A.Compose([A.RandomBrightnessContrast(brightness_limit=(brightness, brightness),
                                                      contrast_limit=(contrast, contrast),
                                                      brightness_by_max=False, p=1.0)], seed=0)
    return (lambda frame: transform(image=frame)["image"]), {"exposure_gain": round(1 + amount, 6),
                                                            "contrast_gain": round(1 + amount, 6)}


# --------------------------------------------------------------------------- occlusion


@dataclass(frozen=True)
class Box:
    x: int  # px from the left
    y: int  # px from the top
    width: int  # px
    height: int  # px

    def overlaps(self, other: Box) -> bool:
        return not (self.x + self.width <= other.x or other.x + other.width <= self.x
                    or self.y + self.height <= other.y or other.y + other.height <= self.y)


def _shapes(area: int, height: int, width: int, max_aspect: float) -> list[tuple[int, int]]:
    """(box height, box width) pairs that fit the frame, closest to `area` px first, squarer first on ties."""
    shapes = []
    for box_h in range(1, height + 1):
        box_w = min(width, max(1, round(area / box_h)))
        if max(box_h / box_w, box_w / box_h) <= max_aspect:
            shapes.append((abs(box_h * box_w - area), abs(math.log(box_h / box_w)), box_h, box_w))
    return [(h, w) for _, _, h, w in sorted(shapes)]


def _place(shape: tuple[int, int], placed: list[Box], height: int, width: int,
           rng: np.random.Generator, tries: int = 200) -> Box | None:
    box_h, box_w = shape
    for _ in range(tries):
        box = Box(int(rng.integers(0, width - box_w + 1)), int(rng.integers(0, height - box_h + 1)), box_w, box_h)
        if not any(box.overlaps(other) for other in placed):
            return box
    return None


def occlusion_boxes(height: int, width: int, fraction: float, rng: np.random.Generator, n_boxes: int) -> list[Box]:
    """`n_boxes` non-overlapping boxes covering `fraction` of a `height` x `width` frame.

    The area is split at random between the boxes; each box takes a random aspect (1:2..2:1) and
    place; the last box is sized to what is left, so the covered area misses the target only by
    the last box's rounding (a few px). Where the boxes cannot be placed apart, fewer are used.
    """
    target = round(fraction * height * width)
    for count in range(n_boxes, 0, -1):
        shares = rng.dirichlet(np.ones(count)) * target
        placed: list[Box] = []
        for share in shares[:-1]:
            aspect = math.exp(rng.uniform(-math.log(2), math.log(2)))
            box_h = min(height, max(1, round(math.sqrt(share / aspect))))
            box_w = min(width, max(1, round(share / box_h)))
            box = _place((box_h, box_w), placed, height, width, rng)
            if box is None:
                break
            placed.append(box)
        else:
            remaining = target - sum(b.width * b.height for b in placed)
            if remaining > 0:
                for shape in _shapes(remaining, height, width, max_aspect=4.0)[:20]:
                    box = _place(shape, placed, height, width, rng, tries=50)
                    if box is not None:
                        return [*placed, box]
    raise ValueError(f"cannot place {fraction:.0%} occlusion in a {width}x{height} frame")


def occlusion_fn(level: float, rng: np.random.Generator, height: int, width: int,
                 fill: Literal["black", "random"]) -> tuple[FrameFn, dict[str, Any]]:
    n_boxes = int(rng.integers(1, 4))
    boxes = occlusion_boxes(height, width, level / 100, rng, n_boxes)
    colours = [(0, 0, 0) if fill == "black" else tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in boxes]

    def apply(frame: np.ndarray) -> np.ndarray:
        out = frame.copy()
        for box, colour in zip(boxes, colours):
            out[box.y : box.y + box.height, box.x : box.x + box.width] = colour
        return out

    covered = sum(b.width * b.height for b in boxes) / (height * width)
    return apply, {"boxes": [[b.x, b.y, b.width, b.height] for b in boxes], "colours": colours,
                   "covered_fraction": round(covered, 6)}


# --------------------------------------------------------------------------- sets


def degrade_jobs(samples: list[Sample], data_root: Path, kind: str, level: float, seed: int,
                 occlusion_fill: Literal["black", "random"] = "black") -> tuple[list[ClipJob], list[Reject]]:
    """One set: every sample degraded by `kind` at `level` (same ids, meta recording what was done).

    A clip whose size cannot be read (occlusion draws its boxes for the frame size) is rejected.
    """
    check_level(kind, level)
    jobs: list[ClipJob] = []
    rejects: list[Reject] = []
    for sample in samples:
        source = data_root / sample.media
        rng = rng_for(seed, sample.id, kind, level)
        crf = 23
        fn: FrameFn
        if kind == "blur":
            fn, drawn = blur_fn(level, rng)
        elif kind == "compression":
            fn, drawn, crf = (lambda frame: frame), {"crf": int(level)}, int(level)
        elif kind == "lighting":
            fn, drawn = lighting_fn(level)
        elif kind == "occlusion":
            try:
                info = probe(source)  # the boxes are drawn for the clip's frame size
            except VideoReadError as err:
                rejects.append(Reject(file=str(source), record=sample.id, reason=str(err)))
                continue
            fn, drawn = occlusion_fn(level, rng, info.height - info.height % 2, info.width - info.width % 2,
                                     occlusion_fill)
        else:
            raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(KINDS)}")
        meta = with_meta(sample, derived={"operation": "degrade", "kind": kind, "level": level, **drawn})
        jobs.append(ClipJob(sample=sample.model_copy(update={"meta": meta}), source=source, fn=fn, crf=crf))
    return jobs, rejects
