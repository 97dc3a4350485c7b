"""vt-prep import annotated-errors: seed 000's annotated_errors.json (RQ2.1.1) into samples."""

import json

import numpy as np
import pytest
from import_helpers import clip, rejects, run_prep, write_json
from release_fixtures import ANNOTATED_FEEDBACK as FEEDBACK
from release_fixtures import annotated_release

from videotune.core.io import read_samples
from videotune.prep.importers.annotated import AnnotatedOptions, frame_runs, import_annotated


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    return annotated_release(tmp_path_factory.mktemp("annotated"))


def test_error_frames_become_seconds_at_each_clips_own_rate(annotated):
    result = import_annotated(annotated, AnnotatedOptions())
    samples = {s.id: s for s in result.samples}
    squat = samples["squats/00123"]
    assert squat.label == "squats" and squat.task == "feedback" and squat.answer == FEEDBACK
    assert squat.media == "squats/00123.mp4" and squat.fps == 12.0
    assert [(e.name, e.start_s, e.end_s) for e in squat.errors] == [
        ("forward_lean", pytest.approx(3 / 12), pytest.approx(9 / 12)),
        ("knee_valgus", pytest.approx(3 / 12), pytest.approx(9 / 12))]
    meta = json.loads(squat.meta)
    assert meta["error_frames"] == [9, 3, 6]  # as given
    assert meta["error_times_s"] == pytest.approx([9 / 12, 3 / 12, 6 / 12])
    fast = samples["lunges/fast"]
    assert fast.label == "walking_lunges" and fast.fps == 24.0
    assert [(e.start_s, e.end_s) for e in fast.errors] == [(pytest.approx(0.5), pytest.approx(0.75))]  # 12/24, 18/24
    assert samples["step-ups/su1"].label == "step-ups" and samples["step-ups/su1"].errors == []
    extracted = samples["squats/extracted"]  # a frames folder: the times come from its timestamps.txt
    assert [(e.start_s, e.end_s) for e in extracted.errors] == [(0.15, 0.32)]


def test_taxonomy_names_make_aqa_samples_and_spans_follow_the_page(annotated):
    samples = {s.id: s for s in import_annotated(annotated, AnnotatedOptions()).samples}
    synthetic = samples["squat/synthetic"]
    assert synthetic.task == "aqa" and [e.name for e in synthetic.errors] == ["knees_inward"]
    untimed = samples["squats/untimed"]
    assert [(e.start_s, e.end_s) for e in untimed.errors] == [(0.0, pytest.approx(1.0))]
    assert json.loads(untimed.meta)["untimed_errors"] == ["forward_lean"]
    spans = {e.name: (e.start_s, e.end_s) for e in samples["squats/spans"].errors}
    assert spans == {"knee_valgus": (pytest.approx(1 / 12), pytest.approx(3 / 12)),
                     "forward_lean": (pytest.approx(8 / 12), pytest.approx(9 / 12))}
    assert json.loads(samples["squats/spans"].meta)["annotator"] == "pt-1"
    with_gaps = {s.id: s for s in import_annotated(annotated, AnnotatedOptions(span_gap_s=0.1)).samples}
    assert [(e.start_s, e.end_s) for e in with_gaps["squats/00123"].errors if e.name == "knee_valgus"] == [
        (pytest.approx(3 / 12),) * 2, (pytest.approx(6 / 12),) * 2, (pytest.approx(9 / 12),) * 2]


def test_bad_records_are_refused_with_reasons(annotated):
    result = import_annotated(annotated, AnnotatedOptions())
    reasons = {r.record: r.reason for r in result.rejects}
    assert set(reasons) == {"7:squats/missing.mp4", "8:../outside.mp4", "9:squats/late.mp4", "10:squats/00123.mp4"}
    assert "file not found" in reasons["7:squats/missing.mp4"]
    assert "escapes the data root" in reasons["8:../outside.mp4"]
    assert "frame 12 is past the clip's end (it has 12 frames" in reasons["9:squats/late.mp4"]
    assert "duplicate id" in reasons["10:squats/00123.mp4"]
    assert len(result.samples) == 7


def test_cli_writes_samples_rejects_and_manifest(annotated, tmp_path):
    out = tmp_path / "out"
    result = run_prep("import", "annotated-errors", "--data-root", annotated, "--out", out, "--split", "test")
    assert result.exit_code == 0, result.output
    samples = read_samples(out / "samples.parquet")
    assert len(samples) == 7 and {s.split for s in samples} == {"test"}
    assert {r["record"] for r in rejects(out)} == {"7:squats/missing.mp4", "8:../outside.mp4", "9:squats/late.mp4",
                                                   "10:squats/00123.mp4"}
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["rejected_by_reason"] == {"duplicate id": 1, "missing file": 1, "past the end": 1,
                                              "path escapes root": 1}
    assert manifest["inputs"]["media"]["n_files"] == 7  # the frames folder hashed too
    strict = run_prep("import", "annotated-errors", "--data-root", annotated, "--out", tmp_path / "strict", "--strict")
    assert strict.exit_code == 2


def test_malformed_records_are_refused(tmp_path):
    clip(tmp_path / "a.mp4", seconds=1.0)
    write_json(tmp_path / "annotated_errors.json", [
        {"video": "a.mp4", "exercise": "squats", "errors": [], "error_frames": [3], "ground_truth": ""},
        {"video": "a.mp4", "exercise": "squats", "errors": ["x"], "error_frames": [1.5], "ground_truth": ""},
        {"video": "a.mp4", "exercise": "", "errors": [], "error_frames": []},
        {"video": "a.mp4", "exercise": "squats", "errors": "x", "error_frames": []},
        "not a record",
    ])
    result = import_annotated(tmp_path, AnnotatedOptions())
    assert not result.samples
    assert [r.reason for r in result.rejects] == [
        "error_frames [3] are marked but no error is named",
        "error_frames: 1.5 is not a frame index (a whole number)",
        "unknown label: no exercise",
        "errors must be a list of names, found 'x'",
        "record 4 is a str, not an object",
    ]
    write_json(tmp_path / "annotated_errors.json", {"video": "a.mp4"})
    assert run_prep("import", "annotated-errors", "--data-root", tmp_path, "--out", tmp_path / "o").exit_code == 2


def test_frame_runs():
    times = list(np.arange(20) / 10)
    assert frame_runs([5, 1, 2, 9], times, None) == [(1, 9)]
    assert frame_runs([5, 1, 2, 9], times, 0.1) == [(1, 2), (5, 5), (9, 9)]
    assert frame_runs([], times, None) == []


def test_taxonomy_exercises_under_other_spellings_become_aqa(tmp_path):
    """QVED-style names ("squats", "overhead-press") take the taxonomy's key where every error is the taxonomy's,
    so `vt-prep build --variant temporal` can write their answers; other names stay as written."""
    for name in ("squats/a.mp4", "ohp/b.mp4", "squats/c.mp4"):
        clip(tmp_path / name, seconds=1.0)
    write_json(tmp_path / "annotated_errors.json", [
        {"video": "squats/a.mp4", "exercise": "Squats", "errors": ["knees_inward"], "error_frames": [2, 5],
         "ground_truth": FEEDBACK},
        {"video": "ohp/b.mp4", "exercise": "overhead-press", "errors": [], "error_frames": [], "ground_truth": "Good."},
        {"video": "squats/c.mp4", "exercise": "squats", "errors": ["knee_valgus"], "error_frames": [1],
         "ground_truth": FEEDBACK},
    ])
    samples = {s.id: s for s in import_annotated(tmp_path, AnnotatedOptions()).samples}
    assert (samples["squats/a"].label, samples["squats/a"].task) == ("squat", "aqa")
    assert (samples["ohp/b"].label, samples["ohp/b"].task) == ("overhead_press", "aqa")
    assert (samples["squats/c"].label, samples["squats/c"].task) == ("squats", "feedback")
    assert json.loads(samples["squats/a"].meta)["exercise"] == "Squats"  # the name as written stays in meta
    refused = import_annotated(tmp_path, AnnotatedOptions(task="aqa")).rejects
    assert [r.record for r in refused] == ["2:squats/c.mp4"]
    assert "errors ['knee_valgus'] are not 'squat' errors" in refused[0].reason
