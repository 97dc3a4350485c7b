"""Augmented copies of clips (seed 002, section 2.2): horizontal flip, colour inversion, rotation and
the combinations hflip+invert and hflip+rotate, applied with albumentations to every decoded frame.

A rotation draws one angle per copy (all frames of the clip turn alike, so the motion stays
what it was); flips mirror the scene, so every left/right word in the labels, error names,
question and answer swaps sides (`swap_sides`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.schemas import ErrorSpan, Sample
from videotune.prep.derive import ClipJob, FrameFn, rng_for, with_meta

OPS: tuple[str, ...] = ("hflip", "invert", "rotate", "hflip+invert", "hflip+rotate")
PARTS = frozenset({"hflip", "invert", "rotate"})

# "left"/"right" as a word or a part of a snake, kebab or camel name: "the left knee", left_knee,
# knee-right, leftKnee, kneeLeft, LEFT_KNEE; never inside another word (leftover, bright, upright).
_SIDE = re.compile(
    r"(?<![A-Za-z])(?:left|right)(?![a-z])|(?<![A-Z])(?:Left|Right)(?![a-z])|(?<![A-Za-z])(?:LEFT|RIGHT)(?![A-Za-z])"
)
_SWAP = {"left": "right", "right": "left"}


def _match_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[0].isupper():
        return word.capitalize()
    return word


def swap_sides(text: str) -> str:
    """`text` with left and right exchanged, case kept: 'left_knee' -> 'right_knee', 'Right' -> 'Left'."""
    return _SIDE.sub(lambda m: _match_case(_SWAP[m.group(0).lower()], m.group(0)), text)


def mirror_labels(sample: Sample) -> dict[str, Any]:
    """The fields of `sample` that name sides, as they read in a mirrored clip."""
    return {
        "label": swap_sides(sample.label),
        "errors": [ErrorSpan(name=swap_sides(e.name), start_s=e.start_s, end_s=e.end_s) for e in sample.errors],
        "question": swap_sides(sample.question),
        "answer": swap_sides(sample.answer),
    }


def parse_op(op: str) -> tuple[str, ...]:
    parts = tuple(op.split("+"))
    if not parts or any(p not in PARTS for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"unknown augmentation {op!r}: combine {sorted(PARTS)} with '+' (e.g. {', '.join(OPS)})")
    return parts


@dataclass(frozen=True)
class AugmentParams:
    rotate_min_deg: float = 5.0  # smallest |angle|: a rotation of a degree or two is no new view
    rotate_max_deg: float = 15.0  # largest |angle|: beyond this, the floor visibly tilts


def draw_params(op: str, rng: np.random.Generator, params: AugmentParams) -> dict[str, Any]:
    """The random parameters of one copy (an angle for a rotation), drawn once per clip."""
    drawn: dict[str, Any] = {}
    if "rotate" in parse_op(op):
        magnitude = rng.uniform(params.rotate_min_deg, params.rotate_max_deg)
        drawn["angle_deg"] = round(float(magnitude if rng.random() < 0.5 else -magnitude), 3)
    return drawn


def frame_fn(op: str, drawn: dict[str, Any]) -> FrameFn:
    """The per-frame transform of `op`, with every random choice already fixed in `drawn`."""
    import albumentations as A
    import cv2

    transforms = []
    for part in parse_op(op):
        if part == "hflip":
            transforms.append(A.HorizontalFlip(p=1.0))
        elif part == "invert":
            transforms.append(A.InvertImg(p=1.0))
        else:
            angle = drawn["angle_deg"]
            # a fixed (a, a) range: the same angle for every frame; corners fill black
            transforms.append(A.Rotate(limit=(angle, angle), border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0))
    pipeline = A.Compose(transforms, seed=0)
    return lambda frame: pipeline(image=frame)["image"]


def copy_id(parent_id: str, op: str, tag: str = "") -> str:
    return f"{parent_id}~{op}{tag}"


def media_for(sample_id: str, parent_media: str) -> str:
    """videos/<id>.<ext>, with characters a file name should not hold replaced."""
    safe = re.sub(r"[^A-Za-z0-9._~+=-]", "_", sample_id)
    return f"videos/{safe}{Path(parent_media).suffix or '.mp4'}"


def augmented_job(sample: Sample, op: str, data_root: Path, seed: int, params: AugmentParams, tag: str = "") -> ClipJob:
    """The job that writes one augmented copy of `sample`: new id `<id>~<op><tag>`, group kept."""
    new_id = copy_id(sample.id, op, tag)
    drawn = draw_params(op, rng_for(seed, new_id, "augment"), params)
    update: dict[str, Any] = {"id": new_id, "media": media_for(new_id, sample.media)}
    if "hflip" in parse_op(op):
        update.update(mirror_labels(sample))
    update["meta"] = with_meta(sample, derived={"operation": "augment", "op": op, "parent_id": sample.id, **drawn})
    return ClipJob(sample=sample.model_copy(update=update), source=data_root / sample.media, fn=frame_fn(op, drawn))


def augment_jobs(samples: list[Sample], data_root: Path, ops: list[str], seed: int,
                 params: AugmentParams, include_original: bool = True) -> list[ClipJob]:
    """Every sample's copies under each op (and the sample itself, linked, with `include_original`)."""
    for op in ops:
        parse_op(op)
    jobs: list[ClipJob] = []
    for sample in samples:
        if include_original:
            jobs.append(ClipJob(sample=sample, source=data_root / sample.media))
        jobs.extend(augmented_job(sample, op, data_root, seed, params) for op in ops)
    return jobs
