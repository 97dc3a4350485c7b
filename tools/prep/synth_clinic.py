"""Synthetic clinic scans for curriculum VQA (seed 001): images with findings, three question stages.

Each image is a grey "scan": a body outline (an ellipse of textured tissue on a dark field) with
0 to 3 round lesions, all of one kind (cysts: dark; calcifications: bright), one of them the
largest, each in its own quadrant of the body. Degraded scans are underexposed and noisy. Every answer
follows from the pixels by a fixed rule, and the three stages go from coarse to fine:

1. initial_assessment: normal or abnormal (any lesion?); image quality adequate or degraded.
2. findings_identification: how many lesions; which quadrant holds the largest one.
3. clinical_context: the most likely finding (cyst, calcification, no abnormality) and the
   recommended next step (routine screening; follow-up imaging if the largest lesion is small;
   biopsy if it is large), which combines the kind and the size of the findings.

One row of samples.parquet per (image, question); the group is the image, so a group-aware
split never puts one image's questions into two splits. Same seed, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from videotune.core.io import atomic_open
from videotune.core.schemas import Sample

DATASET = "synth-clinic"
STAGES = ("initial_assessment", "findings_identification", "clinical_context")
QUADRANTS = ("upper left", "upper right", "lower left", "lower right")
KINDS = ("cyst", "calcification")

# (stage, question key, question text); answers are short and checked exactly.
QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("initial_assessment", "normality", "Is this scan normal or abnormal?"),
    ("initial_assessment", "quality", "Is the image quality adequate or degraded?"),
    ("findings_identification", "count", "How many lesions are visible?"),
    ("findings_identification", "location", "Where is the largest lesion?"),
    ("clinical_context", "finding", "What is the most likely finding?"),
    ("clinical_context", "next_step", "What is the recommended next step?"),
)


@dataclass
class ClinicSynthConfig:
    n_images: int = 240
    """Images; each gives one sample per question (six), two per stage."""
    width_px: int = 96
    height_px: int = 72
    """Scans are 4:3 (non-square), so the letterbox to a square has something to pad."""
    seed: int = 0
    normal_share: float = 1 / 3
    """Share of images without any lesion (the rest cycle through count x kind x size)."""


@dataclass(frozen=True)
class Lesion:
    quadrant: str
    cx: float  # px
    cy: float  # px
    radius: float  # px
    largest: bool


@dataclass
class ScanPlan:
    index: int
    n_lesions: int
    kind: str | None
    large: bool | None  # the largest lesion's size class
    degraded: bool
    lesions: list[Lesion] = field(default_factory=list)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def plan_scans(config: ClinicSynthConfig) -> list[ScanPlan]:
    """Findings of every image: balanced rather than sampled, then shuffled.

    The abnormal combinations (1-3 lesions x cyst/calcification x small/large largest lesion)
    cycle in turn; normal scans make up `normal_share`; image quality alternates.
    """
    abnormal = [(n, kind, large) for n in (1, 2, 3) for kind in KINDS for large in (False, True)]
    n_normal = round(config.n_images * config.normal_share)
    combos: list[tuple[int, str | None, bool | None]] = [(0, None, None)] * n_normal
    combos += [abnormal[i % len(abnormal)] for i in range(config.n_images - n_normal)]
    order = _rng(config.seed, 0).permutation(len(combos))
    return [
        ScanPlan(index=i, n_lesions=combos[j][0], kind=combos[j][1], large=combos[j][2], degraded=bool(i % 2))
        for i, j in enumerate(order)
    ]


def _smooth_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-frequency tissue texture in [-1, 1]: a few random plane waves."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    texture = np.zeros((height, width))
    for _ in range(4):
        fx, fy = rng.uniform(-0.15, 0.15, size=2)
        texture += np.sin(fx * xx + fy * yy + rng.uniform(0, 2 * np.pi))
    return texture / 4


def render_scan(config: ClinicSynthConfig, plan: ScanPlan) -> np.ndarray:
    """Draw one scan (uint8 grey [H, W]) and fill `plan.lesions` with where the lesions went."""
    rng = _rng(config.seed, 1, plan.index)
    w, h = config.width_px, config.height_px
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # body: an ellipse of tissue, slightly off-centre
    cx, cy = w / 2 + rng.uniform(-0.04, 0.04) * w, h / 2 + rng.uniform(-0.04, 0.04) * h
    ax, ay = rng.uniform(0.40, 0.46) * w, rng.uniform(0.40, 0.46) * h
    inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    background = rng.uniform(8, 20)
    tissue = rng.uniform(95, 130)
    image = np.full((h, w), background)
    image[inside] = tissue + 12 * _smooth_texture(rng, h, w)[inside]

    plan.lesions = []
    if plan.n_lesions:
        quadrants = [QUADRANTS[q] for q in rng.permutation(len(QUADRANTS))[: plan.n_lesions]]
        # radii as shares of the width: large 0.13-0.15 (about 13 px at 96 px), small 0.07-0.08;
        # the other lesions are always clearly smaller than the largest one
        big = rng.uniform(0.13, 0.15) if plan.large else rng.uniform(0.07, 0.08)
        radii = [big * w] + [rng.uniform(0.045, 0.052) * w for _ in quadrants[1:]]
        contrast = -rng.uniform(55, 70) if plan.kind == "cyst" else rng.uniform(85, 105)
        for i, (quadrant, radius) in enumerate(zip(quadrants, radii)):
            sx = -1 if "left" in quadrant else 1
            sy = -1 if "upper" in quadrant else 1
            # centre well inside its quadrant: off both axes by more than the radius, inside the body
            ux, uy = rng.uniform(0.40, 0.55, size=2)
            lx, ly = cx + sx * max(ux * ax, radius + 2), cy + sy * max(uy * ay, radius + 2)
            plan.lesions.append(Lesion(quadrant, float(lx), float(ly), float(radius), largest=i == 0))
            distance = np.hypot(xx - lx, yy - ly)
            edge = np.clip(radius + 0.5 - distance, 0.0, 1.0)  # one-pixel soft edge
            image += contrast * edge
    if plan.degraded:
        # a degraded acquisition: underexposed (less signal) and noisy
        image *= rng.uniform(0.45, 0.6)
    sigma = rng.uniform(16, 22) if plan.degraded else rng.uniform(2, 4)
    image += rng.normal(0.0, sigma, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def answers(plan: ScanPlan) -> dict[str, str]:
    """The ground-truth answer of each question key for one scan."""
    largest = next((lesion for lesion in plan.lesions if lesion.largest), None)
    if plan.n_lesions == 0:
        finding, next_step = "no abnormality", "routine screening"
    else:
        finding = str(plan.kind)
        next_step = "biopsy" if plan.large else "follow-up imaging"
    return {
        "normality": "abnormal" if plan.n_lesions else "normal",
        "quality": "degraded" if plan.degraded else "adequate",
        "count": str(plan.n_lesions),
        "location": largest.quadrant if largest else "none",
        "finding": finding,
        "next_step": next_step,
    }


def _write_png(path: Path, pixels: np.ndarray) -> None:
    # Fixed PNG settings: the same pixels give the same bytes.
    with atomic_open(path, "wb") as fh:
        Image.fromarray(pixels, mode="L").save(fh, format="PNG", optimize=False, compress_level=6)


def synth_clinic(
    out_dir: Path, config: ClinicSynthConfig, progress: Callable[[int, int], None] | None = None
) -> list[Sample]:
    """Render config.n_images scans to out_dir/images/<id>.png; one Sample per (image, question)."""
    if config.n_images < 1:
        raise ValueError("n_images must be >= 1")
    if config.width_px < 32 or config.height_px < 32:
        raise ValueError(f"scans must be at least 32 x 32 px, got {config.width_px} x {config.height_px}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    plans = plan_scans(config)
    for done, plan in enumerate(plans, start=1):
        image_id = f"clinic_{plan.index:05d}"
        media = f"images/{image_id}.png"
        _write_png(out_dir / media, render_scan(config, plan))
        truth = answers(plan)
        scan_meta = {
            "quality": truth["quality"],
            "kind": plan.kind,
            "lesions": [
                {"quadrant": lesion.quadrant, "x_px": round(lesion.cx, 2), "y_px": round(lesion.cy, 2),
                 "radius_px": round(lesion.radius, 2), "largest": lesion.largest}
                for lesion in plan.lesions
            ],
        }
        for stage, key, question in QUESTIONS:
            samples.append(Sample(
                id=f"{image_id}:{key}", dataset=DATASET, media=media, media_kind="image", duration_s=0.0, fps=0.0,
                group=image_id, task="vqa", label=key, question=question, answer=truth[key], stage=stage,
                meta=json.dumps({**scan_meta, "question_type": key}, sort_keys=True),
            ))
        if progress:
            progress(done, len(plans))
    return samples
