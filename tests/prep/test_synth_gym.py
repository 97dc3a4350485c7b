"""Synthetic gym clips: determinism, valid and balanced labels, decodable video, no colour leak."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from videotune.core.schemas import Sample
from videotune.core.taxonomy import ERROR_DISPLAY, EXERCISES
from videotune.prep.synth_gym import (
    GymSynthConfig,
    InjectedError,
    clip_params,
    error_amount,
    error_combinations,
    error_spans,
    make_sample,
    plan_clips,
    render_frames,
    synth_gym,
)

# Small and short so the whole file runs in a few seconds: 48 px frames, 8 fps, 2-3 s clips.
SMALL = GymSynthConfig(n_clips=8, seed=7, size_px=48, fps=8.0, n_subjects=3, duration_s=(2.0, 3.0), reps=(2, 3),
                       rep_period_s=(0.7, 1.4), workers=1)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample], list[tuple[int, int]]]:
    out = tmp_path_factory.mktemp("gym")
    calls: list[tuple[int, int]] = []
    samples = synth_gym(out, SMALL, progress=lambda done, total: calls.append((done, total)))
    return out, samples, calls


def _video_bytes(root: Path, samples: list[Sample]) -> list[bytes]:
    return [(root / s.media).read_bytes() for s in samples]


@pytest.fixture(scope="module")
def rerendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Sample]]]:
    """The same config again, in this process and with two worker processes."""
    runs = {}
    for name, workers in (("serial", 1), ("parallel", 2)):
        out = tmp_path_factory.mktemp(name)
        runs[name] = (out, synth_gym(out, dataclasses.replace(SMALL, workers=workers)))
    return runs


def test_same_seed_same_samples_and_frames_whatever_the_workers(rendered, rerendered) -> None:
    _, samples, _ = rendered
    for _, again in rerendered.values():
        assert again == samples
    for plan in plan_clips(SMALL)[:3]:
        params = clip_params(SMALL, plan)
        assert np.array_equal(render_frames(params), render_frames(params))


def test_same_seed_same_mp4_bytes_whatever_the_workers(rendered, rerendered) -> None:
    root, samples, _ = rendered
    first = _video_bytes(root, samples)
    for name, (out, again) in rerendered.items():
        differing = [s.id for s, a, b in zip(samples, first, _video_bytes(out, again)) if a != b]
        # the frames are identical (test above), so a difference here comes from the encoder
        assert not differing, f"{name} run: {differing} encode to other bytes from identical frames"


def test_another_seed_gives_other_clips() -> None:
    first = plan_clips(SMALL)
    other = plan_clips(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    params_first = [clip_params(SMALL, p) for p in first]
    params_other = [clip_params(dataclasses.replace(SMALL, seed=SMALL.seed + 1), p) for p in other]
    assert [p.yaw_deg for p in params_first] != [p.yaw_deg for p in params_other]


def test_samples_validate_and_follow_the_conventions(rendered) -> None:
    root, samples, calls = rendered
    assert [s.id for s in samples] == [f"gym-{i:05d}" for i in range(SMALL.n_clips)]
    assert Counter(s.label for s in samples) == {"squat": 4, "overhead_press": 4}
    assert calls[-1] == (SMALL.n_clips, SMALL.n_clips) and len(calls) == SMALL.n_clips
    for s in samples:
        Sample.model_validate(s.model_dump())
        assert (s.dataset, s.media_kind, s.task, s.split, s.question, s.stage) == (
            "synth-gym", "video", "aqa", "", "", "")
        assert s.media == f"videos/{s.id}.mp4" and (root / s.media).is_file()
        assert re.fullmatch(r"subject-\d{3}", s.group)
        assert s.fps == SMALL.fps
        n_frames = round(s.duration_s * s.fps)
        assert s.duration_s == n_frames / s.fps
        assert SMALL.duration_s[0] - 0.1 <= s.duration_s <= SMALL.duration_s[1] + 0.1
        meta = s.meta_dict()
        for key in ("view_yaw_deg", "view_pitch_deg", "speed_reps_per_s", "rep_count", "body_scale", "noise_std",
                    "lighting", "severity", "subject"):
            assert key in meta, key
        assert meta["subject"] == s.group
        assert set(meta["severity"]) == {e.name for e in s.errors}
        assert SMALL.yaw_deg[0] <= abs(meta["view_yaw_deg"]) <= SMALL.yaw_deg[1]


def test_errors_belong_to_the_exercise_and_spans_sit_inside_the_clip(rendered) -> None:
    _, samples, _ = rendered
    for s in samples:
        names = [e.name for e in s.errors]
        assert set(names) <= set(EXERCISES[s.label].errors)
        assert len(names) == len(set(names))
        for span in s.errors:
            assert 0.0 <= span.start_s < span.end_s <= s.duration_s
            assert round(span.start_s, 2) == span.start_s and round(span.end_s, 2) == span.end_s
            # an error covers at least one whole repetition: a visible share of the clip
            assert span.end_s - span.start_s >= 0.2 * s.duration_s
        assert [span.start_s for span in s.errors] == sorted(span.start_s for span in s.errors)


def test_error_combinations_are_balanced_per_exercise() -> None:
    config = dataclasses.replace(SMALL, n_clips=200)
    plans = plan_clips(config)
    assert Counter(p.exercise for p in plans) == {"squat": 100, "overhead_press": 100}
    for exercise in EXERCISES:
        combos = Counter(p.errors for p in plans if p.exercise == exercise)
        assert set(combos) == set(error_combinations(exercise))
        assert max(combos.values()) - min(combos.values()) <= 1
        for error in EXERCISES[exercise].errors:
            share = sum(n for combo, n in combos.items() if error in combo) / 100
            assert share == pytest.approx(0.5, abs=0.01)
    # every subject appears, about equally often
    per_subject = Counter(p.subject for p in plans)
    assert set(per_subject) == set(range(config.n_subjects))
    assert max(per_subject.values()) - min(per_subject.values()) <= 1


def test_videos_decode_to_the_described_frames(rendered) -> None:
    root, samples, _ = rendered
    for s in samples[:3]:
        with av.open(str(root / s.media)) as container:
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            rate = float(stream.average_rate)
        assert len(frames) == round(s.duration_s * s.fps)
        assert frames[0].shape == (SMALL.size_px, SMALL.size_px, 3)
        assert rate == pytest.approx(s.fps)
        assert len(frames) / rate == pytest.approx(s.duration_s)


def test_errors_change_geometry_but_never_colours() -> None:
    for exercise in EXERCISES:
        plan = next(p for p in plan_clips(SMALL) if p.exercise == exercise)
        with_errors = clip_params(SMALL, dataclasses.replace(plan, errors=EXERCISES[exercise].errors))
        without = clip_params(SMALL, dataclasses.replace(plan, errors=()))
        # the plan's errors must not shift any other random draw of the clip
        assert dataclasses.replace(with_errors, errors=()) == without
        # no pixel noise, so the colours in the frames are exactly the drawn palette
        frames_with = render_frames(dataclasses.replace(with_errors, noise_std=0.0))
        frames_without = render_frames(dataclasses.replace(without, noise_std=0.0))
        assert not np.array_equal(frames_with, frames_without), "the errors should move the body"
        colours_with = set(map(tuple, frames_with.reshape(-1, 3).tolist()))
        colours_without = set(map(tuple, frames_without.reshape(-1, 3).tolist()))
        assert colours_with == colours_without


def test_each_error_deviates_only_inside_its_span() -> None:
    plan = plan_clips(SMALL)[0]
    base = clip_params(SMALL, plan)
    t = np.arange(0, base.duration_s, 0.005)  # 5 ms steps
    for exercise in EXERCISES:
        params = dataclasses.replace(
            base, exercise=exercise,
            errors=tuple(InjectedError(name, 0.8, 1, base.n_reps - 1) for name in EXERCISES[exercise].errors),
        )
        for span in error_spans(params):
            amount = error_amount(params, span.name, t)
            outside = (t < span.start_s - 0.005) | (t > span.end_s + 0.005)
            assert np.all(amount[outside] == 0.0), span.name
            assert amount.max() == pytest.approx(0.8, abs=0.02), span.name


def test_answers_name_exactly_the_errors_shown(rendered) -> None:
    _, samples, _ = rendered
    for s in samples:
        text = s.answer.lower()
        assert EXERCISES[s.label].display.lower() in text
        # sentences end with a full stop followed by a space and a capital ("0.3 s" is no end)
        assert 2 <= len(re.split(r"(?<=[.!?])\s+(?=[A-Z])", s.answer)) <= 3, s.answer
        shown = {e.name for e in s.errors}
        for error in EXERCISES[s.label].errors:
            named = re.search(rf"\b{re.escape(ERROR_DISPLAY[error])}\b", text) is not None
            assert named == (error in shown), (error, s.answer)


def test_answer_phrasing_varies_and_is_reproducible() -> None:
    config = dataclasses.replace(SMALL, n_clips=40)
    plans = plan_clips(config)
    answers = [make_sample(config, p, clip_params(config, p)).answer for p in plans]
    assert answers == [make_sample(config, p, clip_params(config, p)).answer for p in plans]
    clean_openings = {a.split(" ")[0] for a, p in zip(answers, plans) if not p.errors}
    assert len(clean_openings) >= 2


def test_bad_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        synth_gym(tmp_path, dataclasses.replace(SMALL, size_px=47))
    with pytest.raises(ValueError, match="n_clips"):
        synth_gym(tmp_path, dataclasses.replace(SMALL, n_clips=0))


def test_keypoint_sidecars_hold_the_drawn_joints_and_no_labels(rendered) -> None:
    from videotune.core.keypoints import keypoints_path, read_keypoints

    out, samples, _ = rendered
    for sample in samples[:3]:
        path = out / keypoints_path(sample.media)
        with np.load(path) as data:
            assert sorted(data.files) == ["names", "points", "points3d", "times_s"]  # geometry only, no labels
        kp = read_keypoints(path)
        params = clip_params(SMALL, plan_clips(SMALL)[int(sample.id.split("-")[1])])
        assert len(kp.times_s) == params.n_frames and kp.times_s[1] == pytest.approx(1 / SMALL.fps)
        # the head keypoint lands on the drawn head: its pixel has the skin colour (no noise, no shake)
        frames = render_frames(dataclasses.replace(params, noise_std=0.0, camera_shake=0.0))
        clean = read_keypoints(path)  # shake moves the figure by < 1 px at this size; allow one pixel
        head = clean.names.index("head")
        for f in (0, params.n_frames // 2):
            x, y = (clean.points[f, head] * SMALL.size_px).round().astype(int)
            patch = frames[f, y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)
            assert any(tuple(p) == params.colours["skin"] for p in patch.tolist())
        # the 3D joints are in the body's frame: feet on the floor whatever the camera
        assert np.abs(kp.points3d[:, kp.names.index("heel_l"), 1]).max() < 1e-6


def test_error_severity_option_sets_the_faults_amplitude(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from videotune.core.io import read_samples
    from videotune.prep.cli import app

    args = ["synth", "gym", "--out", str(tmp_path / "gym"), "--n-clips", "8", "--n-subjects", "2", "--size-px", "48",
            "--fps", "6", "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--error-severity", "1.3,1.5"])
    assert result.exit_code == 0, result.output
    severities = [v for s in read_samples(tmp_path / "gym" / "samples.parquet") for v in s.meta_dict()["severity"].values()]
    assert len(severities) == 8 and all(1.3 <= v <= 1.5 for v in severities)  # 2 combos of 4 per exercise: 8 errors
    refused = CliRunner().invoke(app, [*args[:3], str(tmp_path / "other"), "--error-severity", "1.2,1"])
    assert refused.exit_code == 2 and "takes two numbers LO,HI with 0 < LO <= HI" in refused.output
    assert not (tmp_path / "other").exists()


def test_deal_interleaves_options_in_proportion_to_their_shares() -> None:
    from videotune.prep.synth_gym import combination_shares, deal

    assert deal([0.25] * 4, 10) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]  # equal shares: round-robin
    shares = combination_shares("squat", {"knees_forward": 0.2})  # none, knees inward, knees forward, both
    assert shares == pytest.approx([0.4, 0.4, 0.1, 0.1])
    dealt = deal(shares, 100)
    assert [dealt.count(k) for k in range(4)] == [40, 40, 10, 10]
    assert deal(combination_shares("squat", {"knees_inward": 0.0, "knees_forward": 0.0}), 5) == [0] * 5


def test_error_prevalence_option_makes_an_imbalanced_set(tmp_path: Path) -> None:
    from collections import Counter

    from typer.testing import CliRunner

    from videotune.core.io import read_samples
    from videotune.prep.cli import app

    args = ["synth", "gym", "--out", str(tmp_path / "gym"), "--n-clips", "40", "--n-subjects", "4", "--size-px", "48",
            "--fps", "6", "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--error-prevalence", "knees_forward=0.2,elbows=0.1"])
    assert result.exit_code == 0, result.output
    shown = Counter(e.name for s in read_samples(tmp_path / "gym" / "samples.parquet") for e in s.errors)
    assert shown == {"knees_inward": 10, "knees_forward": 4, "elbows": 2, "knees": 10}  # of 20 clips per exercise
    for bad, message in (("knees_forward=1.5", "a share between 0 and 1"), ("knee=0.2", "no error 'knee'"),
                         ("knees_forward", "write ERROR=SHARE"), ("elbows=0.1,elbows=0.2", "elbows is named twice")):
        refused = CliRunner().invoke(app, [*args[:3], str(tmp_path / "other"), "--error-prevalence", bad])
        assert refused.exit_code == 2 and message in refused.output, refused.output
    assert not (tmp_path / "other").exists()
