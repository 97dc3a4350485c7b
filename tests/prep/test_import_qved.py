import json
from collections import Counter

import pytest
from import_helpers import rejects, run_prep, write_json
from release_fixtures import QVED_FEEDBACK as FEEDBACK
from release_fixtures import qved_release

from videotune.core.io import InputError, read_samples
from videotune.prep.importers.qved import QvedOptions, exercise_key, import_qved


@pytest.fixture(scope="module")
def qved(tmp_path_factory):
    return qved_release(tmp_path_factory.mktemp("qved"))


def test_exercise_label_and_feedback_text(qved):
    result = import_qved(qved, QvedOptions())
    samples = {s.id: s for s in result.samples}
    squat = samples["squats/subj1_rep1"]
    assert squat.label == "squats" and squat.task == "feedback" and squat.answer == FEEDBACK
    assert json.loads(squat.meta)["labels"] == ["knees_cave_in"]
    assert samples["step-ups/su1"].label == "step-ups"  # the hyphen inside the name is not the separator
    manifest = samples["other/found_by_manifest"]
    assert manifest.label == "jumping_jacks" and manifest.media == "other/found_by_manifest.mp4"
    assert exercise_key("  Step   ups ") == "step_ups"


def test_bad_records_are_refused(qved):
    result = import_qved(qved, QvedOptions(exercises=["squats", "step-ups", "jumping_jacks"]))
    reasons = [r.reason for r in result.rejects]
    records = [r.record for r in result.rejects]
    assert len(result.samples) == 12
    assert any("unknown label 'lunges'" in r for r in reasons)
    assert any("missing.mp4: file not found" in r for r in reasons)
    assert any("duplicate id 'squats/subj1_rep1'" in r for r in reasons)
    assert any("labels_descriptive is missing" in r for r in reasons)
    assert any("escapes the data root" in r for r in reasons)
    assert any("truncated" in r for r in reasons)
    assert any("not a readable video" in r for r in reasons)
    assert any("labels must be a list" in r for r in reasons)
    assert len(result.rejects) == 8 and all(":" in r for r in records)


def test_seeded_group_aware_split(qved):
    options = QvedOptions(group_regex=r"(subj\d+)_")
    first = import_qved(qved, options)
    again = import_qved(qved, options)
    assert [(s.id, s.split) for s in first.samples] == [(s.id, s.split) for s in again.samples]
    by_group: dict[str, set[str]] = {}
    for sample in first.samples:
        by_group.setdefault(sample.group, set()).add(sample.split)
    assert all(len(splits) == 1 for splits in by_group.values())  # both reps of a subject together
    assert by_group["subj1"] and first.samples[0].group == "subj1"
    assert set(Counter(s.split for s in first.samples)) == {"train", "val", "test"}
    other_seed = import_qved(qved, QvedOptions(group_regex=r"(subj\d+)_", seed=7))
    assert [s.split for s in other_seed.samples] != [s.split for s in first.samples]


def test_given_splits_are_kept(qved, tmp_path):
    splits = write_json(tmp_path / "splits.json", {"train": ["squats/subj1_rep1.mp4"], "test": ["subj1_rep2"]})
    samples = {s.id: s for s in import_qved(qved, QvedOptions(splits=splits)).samples}
    assert samples["squats/subj1_rep1"].split == "train" and samples["squats/subj1_rep2"].split == "test"
    bad = write_json(tmp_path / "bad.json", {"training": []})
    with pytest.raises(InputError, match="unknown split name"):
        import_qved(qved, QvedOptions(splits=bad))


def test_malformed_ground_truth_names_the_position(tmp_path):
    (tmp_path / "ground_truth.json").write_text('[\n  {"video_path": "a.mp4",}\n]')
    with pytest.raises(InputError, match=r"ground_truth.json: malformed JSON at line 2, column"):
        import_qved(tmp_path, QvedOptions())


def test_cli(qved, tmp_path):
    out = tmp_path / "out"
    result = run_prep("import", "qved", "--data-root", qved, "--out", out, "--exercises", "squats,step-ups,jumping_jacks",
                      "--seed", "1")
    assert result.exit_code == 0, result.output
    samples = read_samples(out / "samples.parquet")
    assert len(samples) == 12 and all(s.split for s in samples)
    assert len(rejects(out)) == 8
    strict = run_prep("import", "qved", "--data-root", qved, "--out", tmp_path / "strict", "--exercises",
                      "squats,step-ups,jumping_jacks", "--seed", "1", "--strict")
    assert strict.exit_code == 2 and len(rejects(tmp_path / "strict")) == 8
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 1 and str(qved / "ground_truth.json") in run["inputs"]
    assert str(qved / "manifest.json") in run["inputs"] and run["inputs"]["media"]["n_files"] == 12
    build = run_prep("build", "--samples", out / "samples.parquet", "--data-root", qved, "--out", tmp_path / "built",
                     "--task", "feedback", "--frames", "2")
    assert build.exit_code == 0, build.output
    first = json.loads((tmp_path / "built" / "examples" / "all.jsonl").read_text().splitlines()[0])
    assert first["target"] == FEEDBACK
