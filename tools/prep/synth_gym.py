"""Synthetic gym clips with known ground truth: squats and overhead presses, with or without form errors.

A 3D stick figure with a barbell is animated through a few repetitions, seen by a camera
from an oblique view, drawn with PIL and encoded to H.264. Every form error is injected
into the body geometry only (joint positions), over a known time span, so a small model
trained on these clips can be checked against exact labels.

Units: body coordinates are in body heights (the standing figure is about 1.0 tall),
x is lateral, y is up, z is the direction the lifter faces; times are in seconds; angles
in the public parameters are in degrees; colours are 8-bit RGB.

Everything about clip `i` is a pure function of (config, i): the dataset plan (exercise,
error combination, subject) is drawn once from the seed, and each clip's own randomness
comes from separate streams per purpose (camera, body motion, colours, noise, text), so the
colours of a clip do not depend on which errors it shows, and `workers` changes nothing
but the wall time.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from videotune.core.keypoints import keypoints_path, write_keypoints
from videotune.core.schemas import ErrorSpan, Sample
from videotune.core.taxonomy import ERROR_KEYS, EXERCISES
from videotune.core.video import encode_video

DATASET = "synth-gym"
EXERCISE_KEYS: tuple[str, ...] = ("squat", "overhead_press")
KEYFRAME_INTERVAL_S = 2.0

# Independent random streams: one per purpose, so that drawing more numbers for one purpose
# (say, an extra error) never shifts the numbers another purpose gets.
_STREAM_PLAN = 1
_STREAM_SUBJECT = 2
_STREAM_TIMING = 3
_STREAM_CAMERA = 4
_STREAM_BODY = 5
_STREAM_COLOUR = 6
_STREAM_NOISE = 7
_STREAM_ERRORS = 8
_STREAM_TEXT = 9


@dataclass
class GymSynthConfig:
    n_clips: int = 480
    """Total clips; the two exercises are balanced 50/50 (odd counts differ by one), in shuffled order."""
    seed: int = 0
    size_px: int = 96
    """Square frame side in pixels; must be even for H.264 4:2:0."""
    fps: float = 12.0
    n_subjects: int = 48
    """The leakage unit: body proportions, clothing colours and default camera are per subject."""
    error_severity: tuple[float, float] = (0.7, 1.0)
    """Range of error amplitude, drawn uniformly per error; 1.0 = clearly visible, 0 = no deviation."""
    error_prevalence: dict[str, float] = field(default_factory=dict)
    """Share of its exercise's clips that show an error, by error key; unnamed errors 0.5. An exercise's two
    errors are dealt independently, so its clips show both at P1 x P2 and neither at (1 - P1) x (1 - P2)."""
    workers: int = 2
    """Processes used for rendering; 1 renders in this process. Output does not depend on it."""
    duration_s: tuple[float, float] = (3.0, 5.0)
    """Range of clip length in seconds."""
    reps: tuple[int, int] = (2, 4)
    """Range of repetitions per clip (inclusive); only counts whose rep period fits `rep_period_s`."""
    rep_period_s: tuple[float, float] = (0.8, 2.0)
    """Allowed seconds per repetition; together with duration and reps it sets the speed."""
    pause_s: tuple[float, float] = (0.1, 0.4)
    """Range of the still pause before the first and after the last repetition, in seconds."""
    yaw_deg: tuple[float, float] = (20.0, 50.0)
    """Range of the camera's yaw magnitude (either side) in degrees: 0 would be a front view,
    where forward knee travel is invisible, 90 a side view, where lateral knee motion is."""
    pitch_deg: tuple[float, float] = (0.0, 12.0)
    """Range of camera elevation in degrees (positive looks down on the lifter)."""
    clip_view_jitter_deg: float = 6.0
    """How far (degrees, uniform +-) one clip's yaw and pitch stray from the subject's default camera."""
    camera_shake: float = 0.005
    """Standard deviation of the per-frame camera shake, as a fraction of the frame side."""
    noise_std: tuple[float, float] = (0.0, 6.0)
    """Range of the standard deviation of per-pixel luma noise, in 8-bit levels."""
    brightness: tuple[float, float] = (150.0, 205.0)
    """Range of the background's mean luminance in 8-bit levels; clothing is kept contrasting.
    A light gym keeps most of the lifter darker than the wall: a tiny model need not learn both
    contrast polarities. (60, 195) mixes dark and light backgrounds for a harder set."""
    limb_width_frac: float = 1 / 24
    """Limb line width as a fraction of the frame side: 4 px at 96 px survives a 64 px resize."""
    error_rep_fraction: tuple[float, float] = (0.5, 1.0)
    """Range of the fraction of a clip's repetitions (contiguous) that show an injected error."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ClipPlan:
    """What the dataset plan decides for one clip before any rendering randomness."""

    index: int
    exercise: str
    errors: tuple[str, ...]
    subject: int


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *keys]))


def error_combinations(exercise: str) -> list[tuple[str, ...]]:
    """The four combinations an exercise's clips cycle through: none, first, second, both."""
    first, second = EXERCISES[exercise].errors
    return [(), (first,), (second,), (first, second)]


def combination_shares(exercise: str, prevalence: dict[str, float]) -> list[float]:
    """Share of the exercise's clips for each of `error_combinations(exercise)`, the errors independent."""
    p_first, p_second = (prevalence.get(error, 0.5) for error in EXERCISES[exercise].errors)
    return [(1 - p_first) * (1 - p_second), p_first * (1 - p_second), (1 - p_first) * p_second, p_first * p_second]


def deal(shares: list[float], n: int) -> list[int]:
    """n option indices in proportion to `shares`, interleaved (smooth weighted round-robin): each count is
    within one of n x share, and equal shares deal 0, 1, 2, 3, 0, 1, ..."""
    credit = [0.0] * len(shares)
    dealt = []
    for _ in range(n):
        credit = [c + s for c, s in zip(credit, shares)]
        pick = max(range(len(shares)), key=lambda k: (credit[k], -k))  # first option on ties
        credit[pick] -= 1.0
        dealt.append(pick)
    return dealt


def plan_clips(config: GymSynthConfig) -> list[ClipPlan]:
    """Exercise, error combination and subject of every clip, balanced rather than sampled.

    Exercises alternate and are then shuffled; within each exercise the four error
    combinations are dealt round-robin in proportion to their shares (`error_prevalence`) and
    shuffled. By default every combination is within one clip of a quarter of that exercise's
    clips and each error shows in about half of them.
    """
    rng = _rng(config.seed, _STREAM_PLAN)
    n = config.n_clips
    exercises = [EXERCISE_KEYS[i % len(EXERCISE_KEYS)] for i in range(n)]
    exercises = [exercises[i] for i in rng.permutation(n)]
    combos: list[tuple[str, ...]] = [()] * n
    for exercise in EXERCISE_KEYS:
        positions = [i for i, ex in enumerate(exercises) if ex == exercise]
        options = error_combinations(exercise)
        dealt = [options[k] for k in deal(combination_shares(exercise, config.error_prevalence), len(positions))]
        for pos, k in zip(positions, rng.permutation(len(positions))):
            combos[pos] = dealt[k]
    subjects = np.resize(np.arange(config.n_subjects), n)[rng.permutation(n)]
    return [ClipPlan(i, exercises[i], combos[i], int(subjects[i])) for i in range(n)]


# --------------------------------------------------------------------------- subjects


@dataclass(frozen=True)
class Subject:
    """A person and their usual camera: fixed across that subject's clips."""

    index: int
    shin: float  # body heights
    thigh: float
    torso: float
    neck: float
    head_radius: float
    upper_arm: float
    forearm: float
    shoulder_half_width: float
    hip_half_width: float
    squat_stance_half_width: float
    press_stance_half_width: float
    toe_out_deg: float
    body_scale: float  # figure size in the frame, 1.0 = the largest that keeps a pressed bar in view
    limb_width_scale: float
    yaw_deg: float  # signed default camera yaw
    pitch_deg: float
    shirt_hsv: tuple[float, float, float]
    pants_hsv: tuple[float, float, float]
    skin_rgb: tuple[int, int, int]
    shoe_rgb: tuple[int, int, int]
    shorts: bool  # shins show skin
    sleeveless: bool  # upper arms show skin

    @property
    def name(self) -> str:
        return f"subject-{self.index:03d}"


_SKIN_TONES = ((241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 36), (255, 219, 172))


def make_subject(config: GymSynthConfig, index: int) -> Subject:
    rng = _rng(config.seed, _STREAM_SUBJECT, index)

    def vary(base: float, spread: float) -> float:
        # proportions vary +-spread (relative) around a typical adult
        return float(base * rng.uniform(1 - spread, 1 + spread))

    yaw_lo, yaw_hi = config.yaw_deg
    jitter = config.clip_view_jitter_deg
    # keep the default inside the range by the clip jitter, so a clip's yaw stays inside too
    yaw = float(rng.uniform(yaw_lo + jitter, max(yaw_lo + jitter, yaw_hi - jitter))) * float(rng.choice((-1, 1)))
    pitch_lo, pitch_hi = config.pitch_deg
    return Subject(
        index=index,
        shin=vary(0.25, 0.06),
        thigh=vary(0.25, 0.06),
        torso=vary(0.30, 0.06),
        neck=vary(0.05, 0.15),
        head_radius=vary(0.062, 0.08),
        upper_arm=vary(0.18, 0.06),
        forearm=vary(0.16, 0.06),
        shoulder_half_width=vary(0.12, 0.10),
        hip_half_width=vary(0.08, 0.12),
        squat_stance_half_width=vary(0.16, 0.10),
        press_stance_half_width=vary(0.10, 0.15),
        toe_out_deg=float(rng.uniform(5.0, 20.0)),
        body_scale=float(rng.uniform(0.85, 1.0)),
        limb_width_scale=float(rng.uniform(0.9, 1.15)),
        yaw_deg=yaw,
        pitch_deg=float(rng.uniform(pitch_lo + jitter / 2, max(pitch_lo + jitter / 2, pitch_hi - jitter / 2))),
        shirt_hsv=(float(rng.uniform(0, 1)), float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.3, 1.0))),
        pants_hsv=(float(rng.uniform(0, 1)), float(rng.uniform(0.1, 0.8)), float(rng.uniform(0.2, 0.9))),
        skin_rgb=_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))],
        shoe_rgb=tuple(int(v) for v in rng.integers(20, 240, size=3)),
        shorts=bool(rng.random() < 0.5),
        sleeveless=bool(rng.random() < 0.4),
    )


# --------------------------------------------------------------------------- clip parameters


@dataclass(frozen=True)
class InjectedError:
    """One form error over a contiguous run of repetitions (0-based, inclusive)."""

    name: str
    severity: float  # amplitude, 1.0 = the full deviation described in `_pose_*`
    first_rep: int
    last_rep: int


@dataclass(frozen=True)
class ClipParams:
    """Everything the renderer needs, explicit, so a clip can be re-rendered with other errors."""

    exercise: str
    subject: Subject
    size_px: int
    fps: float
    n_frames: int
    n_reps: int
    lead_s: float  # still pause before the first repetition
    rep_period_s: float
    descent_fraction: float  # share of a squat rep spent going down / of the press spent pressing
    depth: float  # squat: 1.0 = thighs a bit below parallel
    shin_deg: float  # squat: forward shin angle at the bottom of a clean rep
    thigh_deg: float  # squat: thigh angle from vertical at the bottom
    lean_deg: float  # squat: torso lean forward at the bottom; press: lean back at lockout
    knee_track_out: float  # squat: relative outward knee travel at the bottom of a clean rep
    base_knee_bend_deg: float  # press: slight knee bend of a clean lifter
    grip_half_width: float  # body heights from the bar's centre to each hand
    bar_half_length: float
    plate_offset: float  # distance of each plate from the bar's centre
    plate_radius: float
    rack_height: float  # press: bar above the shoulders at the start
    rack_forward: float  # press: bar in front of the shoulders at the start
    yaw_deg: float
    pitch_deg: float
    body_scale: float
    frame_offset: tuple[float, float]  # figure centre offset from the frame centre, fraction of side
    camera_shake: float
    limb_width_frac: float
    brightness: float  # background mean luminance, 8-bit levels
    gradient: float  # wall luminance change from top to horizon, 8-bit levels
    floor_offset: float  # floor luminance minus wall luminance
    horizon: float  # wall/floor boundary, fraction of frame height
    background_tint: tuple[float, float, float]
    colours: dict[str, tuple[int, int, int]]
    noise_std: float
    noise_seed: int
    errors: tuple[InjectedError, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def _luma(rgb: tuple[float, float, float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return 255 * r, 255 * g, 255 * b


def _contrasting(rgb: tuple[float, float, float], lo: float, hi: float) -> tuple[int, int, int]:
    """Darken or lighten a colour until its luminance leaves the band [lo, hi] of the background.

    A limb the colour of the wall would hide the very geometry the labels are about.
    """
    lum = _luma(rgb)
    if lo < lum < hi:
        go_dark = lo > 8 and (lum - lo < hi - lum or hi > 247)
        if go_dark:
            k = (lo - 4) / max(lum, 1.0)
            rgb = tuple(c * k for c in rgb)
        else:
            k = (hi + 4 - lum) / max(255.0 - lum, 1.0)
            rgb = tuple(c + (255.0 - c) * min(k, 1.0) for c in rgb)
    return tuple(int(round(min(max(c, 0.0), 255.0))) for c in rgb)


# Background rows stay within +-this of the background's mean luminance (8-bit levels) ...
_BACKGROUND_HALF_RANGE = 25.0
# ... and the lifter's colours at least this far beyond them.
_FIGURE_CONTRAST = 45.0


def _pick_reps(config: GymSynthConfig, rng: np.random.Generator, duration: float, lead: float, tail: float) -> int:
    usable = duration - lead - tail
    lo, hi = config.reps
    feasible = [r for r in range(lo, hi + 1) if config.rep_period_s[0] <= usable / r <= config.rep_period_s[1]]
    if not feasible:
        # no count fits the period range: take the one whose period comes closest to it
        mid = sum(config.rep_period_s) / 2
        feasible = [min(range(lo, hi + 1), key=lambda r: abs(usable / r - mid))]
    return int(rng.choice(feasible))


def clip_params(config: GymSynthConfig, plan: ClipPlan) -> ClipParams:
    """Draw one clip's rendering parameters; the errors come from `plan.errors`."""
    seed, index = config.seed, plan.index
    subject = make_subject(config, plan.subject)

    timing = _rng(seed, _STREAM_TIMING, index)
    duration_target = float(timing.uniform(*config.duration_s))
    n_frames = max(2, int(round(duration_target * config.fps)))
    duration = n_frames / config.fps
    lead = float(timing.uniform(*config.pause_s))
    tail = float(timing.uniform(*config.pause_s))
    n_reps = _pick_reps(config, timing, duration, lead, tail)
    rep_period = (duration - lead - tail) / n_reps

    camera = _rng(seed, _STREAM_CAMERA, index)
    jitter = config.clip_view_jitter_deg
    yaw_sign = 1.0 if subject.yaw_deg >= 0 else -1.0
    yaw_mag = float(np.clip(abs(subject.yaw_deg) + camera.uniform(-jitter, jitter), *config.yaw_deg))
    pitch = float(np.clip(subject.pitch_deg + camera.uniform(-jitter / 2, jitter / 2), *config.pitch_deg))
    body_scale = float(min(subject.body_scale * camera.uniform(0.95, 1.04), 1.0))
    frame_offset = (float(camera.uniform(-0.04, 0.04)), float(camera.uniform(-0.01, 0.01)))

    body = _rng(seed, _STREAM_BODY, index)
    squat = plan.exercise == "squat"
    descent_fraction = float(body.uniform(0.45, 0.6))
    depth = float(body.uniform(0.85, 1.0))
    shin_deg = float(body.uniform(14.0, 22.0))
    thigh_deg = float(body.uniform(88.0, 100.0))
    lean_deg = float(body.uniform(35.0, 48.0)) if squat else float(body.uniform(2.0, 7.0))
    knee_track_out = float(body.uniform(0.1, 0.25))
    base_knee_bend_deg = float(body.uniform(0.0, 6.0))
    grip = float(body.uniform(0.18, 0.23)) if squat else float(body.uniform(0.15, 0.19))
    grip = max(grip, subject.shoulder_half_width + 0.03)  # hands outside the shoulders
    bar_half_length = float(body.uniform(0.40, 0.46))
    plate_offset = bar_half_length - float(body.uniform(0.04, 0.07))
    plate_radius = float(body.uniform(0.08, 0.11))
    rack_height = float(body.uniform(0.0, 0.03))
    rack_forward = float(body.uniform(0.08, 0.11))

    colour_rng = _rng(seed, _STREAM_COLOUR, index)
    brightness = float(colour_rng.uniform(*config.brightness))
    gradient = float(colour_rng.uniform(-_BACKGROUND_HALF_RANGE, _BACKGROUND_HALF_RANGE))
    floor_offset = float(colour_rng.uniform(-_BACKGROUND_HALF_RANGE, _BACKGROUND_HALF_RANGE))
    horizon = float(colour_rng.uniform(0.55, 0.75))
    red, green, blue = (float(v) for v in colour_rng.uniform(-0.12, 0.12, size=3))  # relative channel gains
    lo = brightness - _BACKGROUND_HALF_RANGE - _FIGURE_CONTRAST
    hi = brightness + _BACKGROUND_HALF_RANGE + _FIGURE_CONTRAST
    bar_grey = float(colour_rng.uniform(120, 210))
    plate_hsv = (float(colour_rng.uniform(0, 1)), float(colour_rng.uniform(0.0, 0.9)), float(colour_rng.uniform(0.1, 0.9)))
    shirt = _contrasting(_hsv_to_rgb(*subject.shirt_hsv), lo, hi)
    pants = _contrasting(_hsv_to_rgb(*subject.pants_hsv), lo, hi)
    skin = _contrasting(subject.skin_rgb, lo, hi)
    colours = {
        "shirt": shirt,
        "pants": pants,
        "skin": skin,
        "shoe": _contrasting(subject.shoe_rgb, lo, hi),
        "upper_arm": skin if subject.sleeveless else shirt,
        "shin": skin if subject.shorts else pants,
        "bar": _contrasting((bar_grey, bar_grey, bar_grey * 1.05), lo, hi),
        "plate": _contrasting(_hsv_to_rgb(*plate_hsv), lo, hi),
    }
    noise_rng = _rng(seed, _STREAM_NOISE, index)
    noise_std = float(noise_rng.uniform(*config.noise_std))
    noise_seed = int(noise_rng.integers(2**31))

    error_rng = _rng(seed, _STREAM_ERRORS, index)
    injected = []
    for name in EXERCISES[plan.exercise].errors:
        # draw for every possible error, present or not, so one error's numbers never
        # depend on whether the other is present
        severity = float(error_rng.uniform(*config.error_severity))
        frac = float(error_rng.uniform(*config.error_rep_fraction))
        n_error_reps = int(min(n_reps, max(1, math.floor(frac * n_reps + 0.5))))
        first = int(error_rng.integers(0, n_reps - n_error_reps + 1))
        if name in plan.errors:
            injected.append(InjectedError(name, severity, first, first + n_error_reps - 1))

    return ClipParams(
        exercise=plan.exercise,
        subject=subject,
        size_px=config.size_px,
        fps=config.fps,
        n_frames=n_frames,
        n_reps=n_reps,
        lead_s=lead,
        rep_period_s=rep_period,
        descent_fraction=descent_fraction,
        depth=depth,
        shin_deg=shin_deg,
        thigh_deg=thigh_deg,
        lean_deg=lean_deg,
        knee_track_out=knee_track_out,
        base_knee_bend_deg=base_knee_bend_deg,
        grip_half_width=grip,
        bar_half_length=bar_half_length,
        plate_offset=plate_offset,
        plate_radius=plate_radius,
        rack_height=rack_height,
        rack_forward=rack_forward,
        yaw_deg=yaw_sign * yaw_mag,
        pitch_deg=pitch,
        body_scale=body_scale,
        frame_offset=frame_offset,
        camera_shake=config.camera_shake,
        limb_width_frac=config.limb_width_frac,
        brightness=brightness,
        gradient=gradient,
        floor_offset=floor_offset,
        horizon=horizon,
        background_tint=(red, green, blue),
        colours=colours,
        noise_std=noise_std,
        noise_seed=noise_seed,
        errors=tuple(injected),
    )


# --------------------------------------------------------------------------- motion

# How far each error moves the body at severity 1.0 (the deviation scales linearly with it).
_KNEES_INWARD_SHARE = 1.2  # knee travel toward the midline, in stance half-widths (x depth)
_KNEES_FORWARD_EXTRA_SHIN_DEG = 36.0  # extra forward shin angle at the bottom, degrees
_KNEES_FORWARD_UPRIGHT_DEG = 28.0  # torso more upright by this, degrees (hips under the bar)
_DIP_KNEE_FLEX_DEG = 70.0  # knee flexion of the dip-and-drive, degrees
# Flared elbows stop short of a locked-out press (the elbows stay bent and out at the top):
# the top bar height drops by this share of the arm's reach, so the flare shows there too.
_ELBOWS_SHORT_LOCKOUT = 0.22
_DIP_PHASE_END = 0.6  # the dip occupies this first share of each press repetition
_RAMP_REPS = 0.15  # errors fade in/out over this share of a repetition at their span's ends

# Press repetition schedule, as shares of the repetition: hold in the rack, press, hold at
# lockout, lower. The dip-and-drive peaks as the press starts.
_PRESS_START = 0.25
_PRESS_TOP_HOLD = 0.10
_PRESS_RACK_END_HOLD = 0.05


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _rep_phase(params: ClipParams, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repetition index, phase within it (0..1) and whether a repetition is under way."""
    u = (t - params.lead_s) / params.rep_period_s
    active = (u >= 0) & (u < params.n_reps)
    rep = np.where(active, np.floor(u), -1).astype(int)
    phase = np.where(active, u - np.floor(u), 0.0)
    return rep, phase, active


def _error_window_s(params: ClipParams, error: InjectedError) -> tuple[float, float]:
    start = params.lead_s + error.first_rep * params.rep_period_s
    return start, start + (error.last_rep - error.first_rep + 1) * params.rep_period_s


def _error_envelope(params: ClipParams, error: InjectedError, t: np.ndarray) -> np.ndarray:
    """0..1: full inside the error's repetitions, fading in and out at the ends."""
    start, end = _error_window_s(params, error)
    ramp = _RAMP_REPS * params.rep_period_s
    return _smoothstep((t - start) / ramp) * _smoothstep((end - t) / ramp)


def _dip_profile(phase: np.ndarray) -> np.ndarray:
    """0..1 knee dip over the first part of a press repetition, deepest as the press starts.

    The power below 1 widens the deep part, so uniformly sampled frames catch it often.
    """
    inside = phase < _DIP_PHASE_END
    return np.where(inside, np.sin(np.pi * np.clip(phase / _DIP_PHASE_END, 0, 1)) ** 0.5, 0.0)


def error_amount(params: ClipParams, name: str, t: np.ndarray) -> np.ndarray:
    """How much of an error's deviation is applied at times `t` (severity x 0..1); 0 if absent."""
    for error in params.errors:
        if error.name != name:
            continue
        if name == "knees":
            rep, phase, active = _rep_phase(params, t)
            in_reps = active & (rep >= error.first_rep) & (rep <= error.last_rep)
            return error.severity * np.where(in_reps, _dip_profile(phase), 0.0)
        return error.severity * _error_envelope(params, error, t)
    return np.zeros_like(t)


def error_spans(params: ClipParams) -> list[ErrorSpan]:
    """The time each injected error's deviation is present, rounded to 10 ms, inside the clip."""
    spans = []
    last_time = math.floor(params.duration_s * 100) / 100
    for error in params.errors:
        start, end = _error_window_s(params, error)
        if error.name == "knees":
            # the dip ends before the press does: the last dip closes the span
            end = params.lead_s + (error.last_rep + _DIP_PHASE_END) * params.rep_period_s
        spans.append(ErrorSpan(name=error.name, start_s=max(0.0, round(start, 2)), end_s=min(round(end, 2), last_time)))
    return sorted(spans, key=lambda s: (s.start_s, s.name))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the last axis (length 3), spelled out: no BLAS path whose rounding could
    depend on threads or memory alignment, so projected pixels are the same in every process."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.sqrt(_dot(v, v))[..., None], 1e-9)


def _two_bone(root: np.ndarray, target: np.ndarray, l1: float, l2: float, pole: np.ndarray) -> np.ndarray:
    """Middle joint (elbow) of a two-segment limb from root to target, bent toward `pole`."""
    d = target - root
    dist = np.clip(np.sqrt(_dot(d, d))[..., None], abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
    direction = _unit(d)
    along = (l1**2 - l2**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.maximum(l1**2 - along**2, 0.0))
    bend = _unit(pole - _dot(pole, direction)[..., None] * direction)
    return root + along * direction + height * bend


def _vec(x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float, n: int) -> np.ndarray:
    return np.stack([np.broadcast_to(np.asarray(c, dtype=float), (n,)) for c in (x, y, z)], axis=-1)


_ANKLE_HEIGHT = 0.04  # body heights
_HEEL_BACK = 0.04
_FOOT_LENGTH = 0.15


def _legs(params: ClipParams, shin_angle: np.ndarray, thigh_angle: np.ndarray, knee_x_scale: np.ndarray,
          stance: float) -> dict[str, np.ndarray]:
    """Feet on the floor; knees and hips from forward shin and backward thigh angles (radians)."""
    s = params.subject
    n = len(shin_angle)
    joints: dict[str, np.ndarray] = {}
    toe_out = math.radians(s.toe_out_deg)
    for side, tag in ((1.0, "l"), (-1.0, "r")):
        ankle_x = side * stance
        joints[f"ankle_{tag}"] = _vec(ankle_x, _ANKLE_HEIGHT, 0.0, n)
        joints[f"heel_{tag}"] = _vec(ankle_x, 0.0, -_HEEL_BACK, n)
        joints[f"toe_{tag}"] = _vec(ankle_x + side * _FOOT_LENGTH * math.sin(toe_out), 0.0,
                                    _FOOT_LENGTH * math.cos(toe_out), n)
        knee_x = ankle_x * knee_x_scale
        knee_z = s.shin * np.sin(shin_angle)
        knee_y = _ANKLE_HEIGHT + np.sqrt(np.maximum(s.shin**2 - knee_z**2 - (knee_x - ankle_x) ** 2, 0.01**2))
        joints[f"knee_{tag}"] = _vec(knee_x, knee_y, knee_z, n)
        joints[f"hip_{tag}"] = _vec(side * s.hip_half_width, knee_y + s.thigh * np.cos(thigh_angle),
                                    knee_z - s.thigh * np.sin(thigh_angle), n)
    return joints


def _upper_body(params: ClipParams, joints: dict[str, np.ndarray], lean: np.ndarray,
                head_back: np.ndarray) -> None:
    """Torso leaning forward by `lean` (radians, negative = back), shoulders, neck and head."""
    s = params.subject
    n = len(lean)
    pelvis = (joints["hip_l"] + joints["hip_r"]) / 2
    torso_dir = _vec(0.0, np.cos(lean), np.sin(lean), n)
    shoulders = pelvis + s.torso * torso_dir
    joints["pelvis"] = pelvis
    joints["shoulders"] = shoulders
    joints["shoulder_l"] = shoulders + _vec(s.shoulder_half_width, 0.0, 0.0, n)
    joints["shoulder_r"] = shoulders - _vec(s.shoulder_half_width, 0.0, 0.0, n)
    head_tilt = 0.6 * lean  # the head stays more upright than the trunk: eyes forward
    neck_dir = _vec(0.0, np.cos(head_tilt), np.sin(head_tilt), n)
    joints["neck"] = shoulders + s.neck * neck_dir
    joints["head"] = joints["neck"] + s.head_radius * neck_dir - _vec(0.0, 0.0, head_back, n)


def _arms_and_bar(params: ClipParams, joints: dict[str, np.ndarray], bar: np.ndarray, pole: np.ndarray) -> None:
    s = params.subject
    n = len(bar)
    joints["bar"] = bar
    for side, tag in ((1.0, "l"), (-1.0, "r")):
        wrist = bar + _vec(side * params.grip_half_width, 0.0, 0.0, n)
        side_pole = pole * np.array([side, 1.0, 1.0])
        joints[f"wrist_{tag}"] = wrist
        joints[f"elbow_{tag}"] = _two_bone(joints[f"shoulder_{tag}"], wrist, s.upper_arm, s.forearm, side_pole)


def _pose_squat(params: ClipParams, t: np.ndarray) -> dict[str, np.ndarray]:
    """Back squat. knees_inward: knees move toward the midline as the hips descend (valgus).
    knees_forward: the shins tip far forward so the knees pass well beyond the toes, the
    hips sink under the bar and the trunk stays upright."""
    rep, phase, active = _rep_phase(params, t)
    q = params.descent_fraction
    warped = np.where(phase < q, 0.5 * phase / q, 0.5 + 0.5 * (phase - q) / (1 - q))
    # sin rather than sin^2: more of each rep is spent low, where the errors show
    depth = np.where(active, params.depth * np.sin(np.pi * warped), 0.0)
    inward = error_amount(params, "knees_inward", t)
    forward = error_amount(params, "knees_forward", t)

    shin = np.radians(depth * (params.shin_deg + _KNEES_FORWARD_EXTRA_SHIN_DEG * forward))
    thigh = np.radians(depth * params.thigh_deg)
    lean = np.radians(depth * np.maximum(params.lean_deg - _KNEES_FORWARD_UPRIGHT_DEG * forward, 8.0))
    # the knees may meet but never cross the midline
    knee_x_scale = np.maximum(1 + params.knee_track_out * depth - _KNEES_INWARD_SHARE * inward * depth, 0.05)
    joints = _legs(params, shin, thigh, knee_x_scale, params.subject.squat_stance_half_width)
    _upper_body(params, joints, lean, np.zeros_like(t))

    # the bar rests on the upper back: behind the shoulders, across the trunk
    n = len(t)
    back = _vec(0.0, np.sin(lean), -np.cos(lean), n)
    along = _vec(0.0, np.cos(lean), np.sin(lean), n)
    bar = joints["shoulders"] + 0.045 * back + 0.015 * along
    _arms_and_bar(params, joints, bar, np.array([0.3, -1.0, -0.7]))  # elbows down and back
    return joints


def _pose_press(params: ClipParams, t: np.ndarray) -> dict[str, np.ndarray]:
    """Strict overhead press from the front rack to lockout. elbows: the elbows flare far out
    to the sides at shoulder height instead of staying in front, under the bar, and stay bent
    and out at the top. knees: a deep knee bend (dip) before and during the drive, lowering the
    whole body and bar."""
    s = params.subject
    rep, phase, active = _rep_phase(params, t)
    press_end = _PRESS_START + params.descent_fraction * 0.7  # 0.57..0.67 of the rep
    lower_start = press_end + _PRESS_TOP_HOLD
    lower_end = 1.0 - _PRESS_RACK_END_HOLD
    rising = _smoothstep((phase - _PRESS_START) / (press_end - _PRESS_START))
    lowering = _smoothstep((phase - lower_start) / (lower_end - lower_start))
    height = np.where(active, rising * (1 - lowering), 0.0)

    elbows = error_amount(params, "elbows", t)
    dip = error_amount(params, "knees", t)
    flex = np.radians(params.base_knee_bend_deg + _DIP_KNEE_FLEX_DEG * dip)
    joints = _legs(params, flex / 2, flex / 2, np.ones_like(t), s.press_stance_half_width)
    lean = -np.radians(params.lean_deg) * height
    # the head moves back to let the bar pass the chin
    _upper_body(params, joints, lean, 0.05 * np.sin(np.pi * height))

    n = len(t)
    reach = s.upper_arm + s.forearm
    lateral = params.grip_half_width - s.shoulder_half_width
    lockout_height = math.sqrt(max((0.97 * reach) ** 2 - lateral**2, 0.0)) - _ELBOWS_SHORT_LOCKOUT * reach * elbows
    bar = joints["shoulders"] + _vec(0.0, params.rack_height + (lockout_height - params.rack_height) * height,
                                     params.rack_forward * (1 - height), n)
    clean_pole = np.array([0.35, -1.0, 0.6])  # elbows in front of and under the bar
    flared_pole = np.array([1.0, 0.1, -0.3])  # elbows out to the sides, at shoulder height
    pole = (1 - elbows)[:, None] * clean_pole + elbows[:, None] * flared_pole
    _arms_and_bar(params, joints, bar, pole)
    return joints


def pose_sequence(params: ClipParams) -> dict[str, np.ndarray]:
    """3D joint positions (n_frames, 3) in body heights, keyed by joint name."""
    t = np.arange(params.n_frames) / params.fps
    return _pose_squat(params, t) if params.exercise == "squat" else _pose_press(params, t)


# --------------------------------------------------------------------------- drawing

_CAMERA_DISTANCE = 4.0  # body heights from the look-at point
_LOOK_AT = np.array([0.0, 0.64, 0.0])  # between the floor and a pressed bar
_PIXELS_PER_BODY_HEIGHT = 0.70  # at body_scale 1.0, in frame sides per body height

# segment: (from joint, to joint, colour key, width relative to a limb)
_SEGMENTS = (
    ("heel_l", "toe_l", "shoe", 1.0), ("heel_r", "toe_r", "shoe", 1.0),
    ("ankle_l", "knee_l", "shin", 1.0), ("ankle_r", "knee_r", "shin", 1.0),
    ("knee_l", "hip_l", "pants", 1.15), ("knee_r", "hip_r", "pants", 1.15),
    ("hip_l", "hip_r", "pants", 1.15),
    ("pelvis", "shoulders", "shirt", 1.8),
    ("shoulder_l", "shoulder_r", "shirt", 1.15),
    ("shoulder_l", "elbow_l", "upper_arm", 1.0), ("shoulder_r", "elbow_r", "upper_arm", 1.0),
    ("elbow_l", "wrist_l", "skin", 0.9), ("elbow_r", "wrist_r", "skin", 0.9),
    ("shoulders", "neck", "skin", 0.9),
    ("bar_end_l", "bar_end_r", "bar", 0.6),
)
_PLATE_POINTS = 14  # polygon corners per plate


def _camera_basis(yaw_deg: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera position and its right, up and viewing directions; yaw 0 looks at the lifter's front."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    offset = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    position = _LOOK_AT + _CAMERA_DISTANCE * offset
    view = -offset
    right = _unit(np.cross(view, np.array([0.0, 1.0, 0.0])))
    up = np.cross(right, view)
    return position, right, up, view


def _project(params: ClipParams, points: np.ndarray, shake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (..., 2) and camera depth (...) of 3D points (n, ..., 3)."""
    position, right, up, view = _camera_basis(params.yaw_deg, params.pitch_deg)
    rel = points - position
    depth = _dot(rel, view)
    focal = params.size_px * _PIXELS_PER_BODY_HEIGHT * params.body_scale * _CAMERA_DISTANCE
    centre_x = params.size_px * (0.5 + params.frame_offset[0])
    centre_y = params.size_px * (0.5 + params.frame_offset[1])
    shake = shake.reshape(shake.shape[:1] + (1,) * (points.ndim - 2) + (2,))
    u = centre_x + focal * _dot(rel, right) / depth + shake[..., 0]
    v = centre_y - focal * _dot(rel, up) / depth + shake[..., 1]
    return np.stack([u, v], axis=-1), depth


def _background(params: ClipParams) -> np.ndarray:
    """Wall with a vertical light gradient above the horizon, a flat floor below.

    Rows only, never columns: the lifter never covers a whole row, so every background colour
    stays visible whatever the pose (a test relies on that).
    """
    size = params.size_px
    horizon_row = int(round(params.horizon * size))
    rows = np.arange(size, dtype=float)
    wall = params.brightness - params.gradient / 2 + params.gradient * rows / max(horizon_row, 1)
    floor = np.full(size, params.brightness + params.floor_offset)
    luminance = np.where(rows < horizon_row, wall, floor)
    tint = 1.0 + np.asarray(params.background_tint)
    column = np.clip(np.round(luminance[:, None] * tint[None, :]), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (size, size, 3)))


def _noise_field(params: ClipParams) -> tuple[np.ndarray, np.random.Generator]:
    """One luma noise field per clip, cropped at a new offset each frame: cheap, content-blind."""
    rng = np.random.default_rng(params.noise_seed)
    pad = params.size_px
    grain = np.round(rng.normal(0.0, params.noise_std, (params.size_px + pad, params.size_px + pad)))
    return grain.astype(np.int16), rng


def _projected_joints(params: ClipParams) -> tuple[dict[str, np.ndarray], np.ndarray, list[str], np.ndarray, np.ndarray]:
    """3D joints (with the bar's ends), the per-frame camera shake (px), joint names, and the joints' pixel
    coordinates (n, joints, 2) and camera depths (n, joints), exactly as drawn."""
    n = params.n_frames
    joints = pose_sequence(params)
    side = _vec(params.bar_half_length, 0.0, 0.0, n)
    joints["bar_end_l"] = joints["bar"] + side
    joints["bar_end_r"] = joints["bar"] - side
    # the shake comes from the clip's noise seed: per clip, blind to pose and errors
    shake_rng = _rng(params.noise_seed, _STREAM_CAMERA)
    shake = shake_rng.normal(0.0, params.camera_shake * params.size_px, (n, 2))
    names = list(joints)
    stacked = np.stack([joints[k] for k in names], axis=1)  # (n, joints, 3)
    pixels, depth = _project(params, stacked, shake)
    return joints, shake, names, pixels, depth


def keypoints(params: ClipParams) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Joint names, where each joint is drawn in every frame, (n_frames, joints, 2) as fractions of the
    frame side (x to the right, y down; outside [0, 1] when off frame), and where it is in the body's own
    frame, (n_frames, joints, 3) in body heights (x lateral, y up, z the way the lifter faces).

    The renderer's own pose ground truth, with no error label in it: the same kind of numbers whether or
    not a repetition is faulty, so a model pretrained to find them learns body geometry, not the labels.
    """
    joints, _, names, pixels, _ = _projected_joints(params)
    body = np.stack([joints[k] for k in names], axis=1)
    return names, (pixels / params.size_px).astype(np.float32), body.astype(np.float32)


def render_frames(params: ClipParams) -> np.ndarray:
    """RGB frames (n_frames, size, size, 3) uint8 for explicit parameters.

    Colours, widths and draw styles depend only on `params.colours` and the subject; the
    injected errors reach the pixels only through joint positions.
    """
    size, n = params.size_px, params.n_frames
    joints, shake, names, pixels, depth = _projected_joints(params)
    index = {name: i for i, name in enumerate(names)}

    # plates: discs in the bar's y-z plane at both ends
    angles = np.linspace(0, 2 * np.pi, _PLATE_POINTS, endpoint=False)
    ring = np.stack([np.zeros_like(angles), np.cos(angles), np.sin(angles)], axis=-1) * params.plate_radius
    plates = []
    for sign in (1.0, -1.0):
        centre = joints["bar"] + np.array([sign * params.plate_offset, 0.0, 0.0])
        plates.append(_project(params, centre[:, None, :] + ring[None], shake))

    limb_width = params.size_px * params.limb_width_frac * params.subject.limb_width_scale
    head_px = (params.size_px * _PIXELS_PER_BODY_HEIGHT * params.body_scale * _CAMERA_DISTANCE
               * params.subject.head_radius / depth[:, index["head"]])
    colours = params.colours
    base = Image.fromarray(_background(params))
    noise, noise_rng = _noise_field(params) if params.noise_std > 0 else (None, None)

    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    for f in range(n):
        image = base.copy()
        draw = ImageDraw.Draw(image)
        items: list[tuple[float, int, Callable[[], None]]] = []
        for order, (a, b, colour_key, width_scale) in enumerate(_SEGMENTS):
            pa, pb = pixels[f, index[a]], pixels[f, index[b]]
            mean_depth = float(depth[f, index[a]] + depth[f, index[b]]) / 2
            width = max(1.0, limb_width * width_scale)
            items.append((mean_depth, order, _segment_drawer(draw, pa, pb, colours[colour_key], width)))
        for k, (plate_px, plate_depth) in enumerate(plates):
            polygon = [tuple(p) for p in plate_px[f].tolist()]
            items.append((float(plate_depth[f].mean()), 100 + k, _polygon_drawer(draw, polygon, colours["plate"])))
        head = pixels[f, index["head"]]
        items.append((float(depth[f, index["head"]]), 200, _disc_drawer(draw, head, float(head_px[f]), colours["skin"])))
        # far things first; ties broken by a fixed order so drawing is deterministic
        for _, _, paint in sorted(items, key=lambda item: (-item[0], item[1])):
            paint()
        frame = np.asarray(image)
        if noise is not None:
            dy, dx = noise_rng.integers(0, size, size=2)
            grain = noise[dy:dy + size, dx:dx + size, None]
            frame = np.clip(frame.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        frames[f] = frame
    return frames


def _segment_drawer(draw: ImageDraw.ImageDraw, a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int],
                    width: float) -> Callable[[], None]:
    def paint() -> None:
        draw.line([float(a[0]), float(a[1]), float(b[0]), float(b[1])], fill=colour, width=int(round(width)))
        radius = width / 2  # round caps, so joints read as joints rather than gaps
        for x, y in (a, b):
            draw.ellipse([float(x) - radius, float(y) - radius, float(x) + radius, float(y) + radius], fill=colour)
    return paint


def _polygon_drawer(draw: ImageDraw.ImageDraw, polygon: list[tuple[float, ...]],
                    colour: tuple[int, int, int]) -> Callable[[], None]:
    return lambda: draw.polygon(polygon, fill=colour)


def _disc_drawer(draw: ImageDraw.ImageDraw, centre: np.ndarray, radius: float,
                 colour: tuple[int, int, int]) -> Callable[[], None]:
    x, y = float(centre[0]), float(centre[1])
    return lambda: draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


# --------------------------------------------------------------------------- feedback text

# Every phrasing of an error names it with its taxonomy display text verbatim, and no text
# names an error the clip does not show, so the answer can be parsed back to labels.
# "{when}" is filled with the error's time span.
_ERROR_WHAT: dict[str, tuple[str, ...]] = {
    "knees_inward": (
        "knees inward {when}, collapsing toward each other as you sit down",
        "I can see your knees inward, drifting toward the midline on the way down {when}",
        "there is a knees inward fault {when}, with the knees falling in as you descend",
    ),
    "knees_forward": (
        "knees forward {when}, travelling well past your toes while the hips stay under the bar",
        "your knees shoot far beyond the toes, knees forward {when}",
        "I see the knees forward {when}, with the weight shifting onto the balls of your feet",
    ),
    "elbows": (
        "your elbows flare out wide {when}, so you press with the arms out to the sides",
        "the elbows drift out to the sides instead of staying under the bar {when}",
        "elbows are flaring {when}; they swing out sideways as you press",
    ),
    "knees": (
        "you dip at the knees and drive the bar up with your legs {when}",
        "the knees bend {when}, turning the strict press into a push press",
        "your knees flex into a dip before the press {when}",
    ),
}
_ERROR_CUE: dict[str, tuple[str, ...]] = {
    "knees_inward": (
        "push your knees out over your toes as you descend",
        "spread the floor with your feet so the knees track over the toes",
        "keep the knees in line with your second toe all the way down",
    ),
    "knees_forward": (
        "sit the hips back first and keep the shins more vertical",
        "start each rep by pushing the hips back, keeping your weight over the mid-foot",
        "hinge a little more at the hips so the shins stay closer to vertical",
    ),
    "elbows": (
        "keep the elbows slightly in front of the bar with the forearms vertical",
        "tuck the elbows under the bar at the start and press straight up",
        "stack your forearms under the bar and point the elbows forward",
    ),
    "knees": (
        "lock your knees and squeeze the glutes so the press comes from the shoulders",
        "keep the legs straight and the knees locked for the whole set",
        "stand tall with locked knees and let only the arms move the bar",
    ),
}
# Clean clips: praise, then one cue that names no error of the exercise.
_CLEAN_PRAISE = (
    "Good {exercise}: {reps} controlled reps with no form errors.",
    "Clean {exercise} set of {reps} reps, with solid positions and a steady tempo.",
    "Nice set of {reps} {exercise} reps; your form looks sound throughout.",
)
_CLEAN_CUE: dict[str, tuple[str, ...]] = {
    "squat": (
        "Keep bracing your core before each descent.",
        "Keep your chest proud and drive up through the mid-foot.",
        "Try a one-second pause at the bottom to own the depth.",
    ),
    "overhead_press": (
        "Keep squeezing the glutes so the ribs stay down.",
        "Finish each rep by pushing your head through at the top.",
        "Keep the bar path close to your face.",
    ),
}
_OPENERS = ("{exercise}, {reps} reps: ", "{exercise} ({reps} reps): ", "In this {exercise} set of {reps} reps, ")
_FIX_LEADS = ("To fix it, ", "Next set, ", "Cue: ")


def _when(span: ErrorSpan, params: ClipParams, rng: np.random.Generator) -> str:
    """Roughly when: the span in seconds (one decimal), with the repetitions in some phrasings."""
    error = next(e for e in params.errors if e.name == span.name)
    start, end = f"{span.start_s:.1f}", f"{span.end_s:.1f}"
    if error.first_rep == 0 and error.last_rep == params.n_reps - 1:
        reps = "every rep"
    elif error.first_rep == error.last_rep:
        reps = f"rep {error.first_rep + 1}"
    else:
        reps = f"reps {error.first_rep + 1}-{error.last_rep + 1}"
    phrasings = (
        f"from about {start} s to {end} s ({reps})",
        f"on {reps} (about {start}-{end} s)",
        f"between about {start} s and {end} s",
    )
    return phrasings[int(rng.integers(len(phrasings)))]


def feedback_text(params: ClipParams, spans: list[ErrorSpan], rng: np.random.Generator) -> str:
    """2-3 sentences of coaching: what is wrong and when, then how to fix it; praise if clean."""
    exercise = EXERCISES[params.exercise].display
    if not spans:
        praise = _CLEAN_PRAISE[int(rng.integers(len(_CLEAN_PRAISE)))]
        cue = _CLEAN_CUE[params.exercise][int(rng.integers(len(_CLEAN_CUE[params.exercise])))]
        return f"{praise.format(exercise=exercise, reps=params.n_reps)} {cue}"
    opener = _OPENERS[int(rng.integers(len(_OPENERS)))].format(exercise=exercise, reps=params.n_reps)
    sentences = []
    for k, span in enumerate(spans):
        what = _ERROR_WHAT[span.name][int(rng.integers(len(_ERROR_WHAT[span.name])))]
        clause = what.format(when=_when(span, params, rng))
        sentences.append((opener + clause) if k == 0 else clause[0].upper() + clause[1:])
    cues = [_ERROR_CUE[s.name][int(rng.integers(len(_ERROR_CUE[s.name])))] for s in spans]
    fix = _FIX_LEADS[int(rng.integers(len(_FIX_LEADS)))] + ", and ".join(cues)
    return " ".join(f"{s}." for s in sentences) + f" {fix}."


# --------------------------------------------------------------------------- dataset


def clip_id(index: int) -> str:
    return f"gym-{index:05d}"


def _meta(params: ClipParams, plan: ClipPlan, config: GymSynthConfig) -> str:
    def r3(x: float) -> float:
        return round(float(x), 3)

    return json.dumps(
        {
            "generator": "videotune.prep.synth_gym",
            "seed": config.seed,
            "subject": params.subject.name,
            "exercise": params.exercise,
            "view_yaw_deg": r3(params.yaw_deg),
            "view_pitch_deg": r3(params.pitch_deg),
            "speed_reps_per_s": r3(1 / params.rep_period_s),
            "rep_period_s": r3(params.rep_period_s),
            "rep_count": params.n_reps,
            "lead_s": r3(params.lead_s),
            "body_scale": r3(params.body_scale),
            "noise_std": r3(params.noise_std),
            "lighting": {
                "brightness": r3(params.brightness),
                "gradient": r3(params.gradient),
                "floor_offset": r3(params.floor_offset),
            },
            "severity": {e.name: r3(e.severity) for e in params.errors},
            "error_reps": {e.name: [e.first_rep + 1, e.last_rep + 1] for e in params.errors},
            "n_frames": params.n_frames,
            "size_px": params.size_px,
        },
        sort_keys=True,
    )


def make_sample(config: GymSynthConfig, plan: ClipPlan, params: ClipParams) -> Sample:
    spans = error_spans(params)
    cid = clip_id(plan.index)
    return Sample(
        id=cid,
        dataset=DATASET,
        media=f"videos/{cid}.mp4",
        media_kind="video",
        duration_s=params.duration_s,
        fps=params.fps,
        split="",
        group=params.subject.name,
        task="aqa",
        label=params.exercise,
        errors=spans,
        question="",
        answer=feedback_text(params, spans, _rng(config.seed, _STREAM_TEXT, plan.index)),
        stage="",
        meta=_meta(params, plan, config),
    )


def render_clip(out_dir: Path, config: GymSynthConfig, plan: ClipPlan) -> Sample:
    """Render, encode and describe one clip, with its keypoint sidecar; a pure function of (config, plan)."""
    params = clip_params(config, plan)
    sample = make_sample(config, plan, params)
    encode_video(out_dir / sample.media, render_frames(params), params.fps, keyframe_interval_s=KEYFRAME_INTERVAL_S)
    names, points, body = keypoints(params)
    write_keypoints(out_dir / keypoints_path(sample.media), np.arange(params.n_frames) / params.fps, names, points,
                    body)
    return sample


def _render_task(task: tuple[str, GymSynthConfig, ClipPlan]) -> Sample:
    # top-level so that spawned worker processes can unpickle it
    out_dir, config, plan = task
    return render_clip(Path(out_dir), config, plan)


def _check(config: GymSynthConfig) -> None:
    if config.n_clips < 1:
        raise ValueError(f"n_clips must be at least 1, got {config.n_clips}")
    if config.size_px < 16 or config.size_px % 2:
        raise ValueError(f"size_px must be even and at least 16, got {config.size_px}")
    if config.fps <= 0:
        raise ValueError(f"fps must be positive, got {config.fps}")
    if config.n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1, got {config.n_subjects}")
    if config.workers < 1:
        raise ValueError(f"workers must be at least 1, got {config.workers}")
    for name in ("error_severity", "duration_s", "reps", "rep_period_s", "pause_s", "yaw_deg", "pitch_deg",
                 "noise_std", "brightness", "error_rep_fraction"):
        lo, hi = getattr(config, name)
        if lo > hi:
            raise ValueError(f"{name} range is reversed: {lo} > {hi}")
    for error, share in config.error_prevalence.items():
        if error not in ERROR_KEYS:
            raise ValueError(f"error_prevalence names {error!r}; the errors are {', '.join(ERROR_KEYS)}")
        if not 0 <= share <= 1:
            raise ValueError(f"error_prevalence of {error} is {share}; a share is between 0 and 1")
    if config.reps[0] < 1 or config.duration_s[0] <= 2 * config.pause_s[1]:
        raise ValueError("clips need at least one repetition and room for it between the pauses")


def synth_gym(
    out_dir: Path, config: GymSynthConfig, progress: Callable[[int, int], None] | None = None
) -> list[Sample]:
    """Render config.n_clips clips to out_dir/videos/<id>.mp4 and return one Sample per clip."""
    _check(config)
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    tasks = [(str(out_dir), config, plan) for plan in plan_clips(config)]
    total = len(tasks)
    samples: list[Sample] = []
    if config.workers == 1 or total == 1:
        for task in tasks:
            samples.append(_render_task(task))
            if progress:
                progress(len(samples), total)
        return samples
    # spawn: no inherited locks or threads from the caller; results come back in clip order
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=min(config.workers, total)) as pool:
        for sample in pool.imap(_render_task, tasks, chunksize=4):
            samples.append(sample)
            if progress:
                progress(len(samples), total)
    return samples
