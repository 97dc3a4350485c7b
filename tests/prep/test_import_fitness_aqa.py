import json

import pytest
from import_helpers import clip, rejects, run_prep, write_json
from release_fixtures import fitness_aqa_release

from videotune.core.io import InputError, file_sha256, read_samples
from videotune.prep.importers.common import merge_spans
from videotune.prep.importers.fitness_aqa import FitnessAqaOptions, import_fitness_aqa


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fitness_aqa_release(tmp_path_factory.mktemp("Fitness-AQA_dataset_release"))


def _by_id(result):
    return {s.id: s for s in result.samples}


def test_every_interval_is_kept_and_splits_follow_the_release(release):
    result = import_fitness_aqa(release, FitnessAqaOptions())
    samples = _by_id(result)
    assert set(samples) == {"squat/s_two", "squat/s_clean", "overhead_press/o_two"}
    two = samples["squat/s_two"]
    assert [(e.name, e.start_s, e.end_s) for e in two.errors] == [
        ("knees_forward", 0.5, 1.0), ("knees_forward", 1.5, 2.0), ("knees_inward", 0.0, 0.4)]
    assert two.split == "train" and two.label == "squat" and two.task == "aqa"
    assert two.media == "Squat/Labeled_Dataset/videos/s_two.mp4"
    assert two.duration_s == pytest.approx(3.0) and two.fps == pytest.approx(12.0)
    assert samples["squat/s_clean"].errors == [] and samples["squat/s_clean"].split == "val"
    ohp = samples["overhead_press/o_two"]
    assert ohp.split == "test" and {e.name for e in ohp.errors} == {"elbows", "knees"}
    assert any("BarbellRow" in n for n in result.notes)
    assert any("1 video(s)" in n and "OHP" in n for n in result.notes)


def test_every_bad_input_is_refused_with_its_reason(release):
    result = import_fitness_aqa(release, FitnessAqaOptions())
    reasons = {r.record: r.reason for r in result.rejects}
    assert "not found" in reasons["s_missing"]
    assert "truncated" in reasons["s_cut"]
    assert "not a readable video" in reasons["s_garbage"]
    assert "before it starts" in reasons["s_backwards"]
    assert "negative" in reasons["s_negative"]
    assert "past the clip's end" in reasons["s_past"]
    assert "duplicate id 's_dup'" in reasons["s_dup"]
    assert "duplicate id" in reasons["s_twosplits"] and "test" in reasons["s_twosplits"]
    assert "outside the data root" in reasons["s_escape"]
    assert "error_knees.json" in reasons["o_unlabelled"]
    assert "unknown label 'knees_sideways'" in reasons["*"]
    assert len(result.rejects) == 11
    files = {r.record: r.file for r in result.rejects}  # each reject names the file at fault
    assert files["s_cut"].endswith("videos/s_cut.mp4")
    assert files["s_backwards"].endswith("Labels/error_knees_forward.json")
    assert files["s_dup"].endswith("Labels/error_knees_forward.json")
    assert files["o_unlabelled"].endswith("Labels/error_knees.json")


def test_merge_spans_reproduces_seed_002(release):
    merged = _by_id(import_fitness_aqa(release, FitnessAqaOptions(merge_spans=True)))["squat/s_two"]
    assert [(e.name, e.start_s, e.end_s) for e in merged.errors] == [("knees_forward", 0.5, 2.0), ("knees_inward", 0.0, 0.4)]
    assert merge_spans([]) == []


def test_group_regex_sets_the_leakage_unit(release):
    samples = _by_id(import_fitness_aqa(release, FitnessAqaOptions(group_regex=r"^(\w)_")))
    assert samples["squat/s_two"].group == samples["squat/s_clean"].group == "s"
    default = _by_id(import_fitness_aqa(release, FitnessAqaOptions()))
    assert default["squat/s_two"].group == "squat/s_two"


def test_malformed_json_names_file_and_position(tmp_path):
    base = tmp_path / "Squat" / "Labeled_Dataset"
    clip(base / "videos" / "a.mp4")
    (base / "Labels").mkdir(parents=True)
    (base / "Labels" / "error_knees_forward.json").write_text('{"a": [[0.1, 0.2]],\n "b": [[0.1 0.2]]}')
    write_json(base / "Labels" / "error_knees_inward.json", {"a": []})
    with pytest.raises(InputError, match=r"error_knees_forward.json: malformed JSON at line 2, column"):
        import_fitness_aqa(tmp_path, FitnessAqaOptions())


def test_a_missing_label_file_stops_the_import(tmp_path):
    base = tmp_path / "OHP" / "Labeled_Dataset"
    write_json(base / "Labels" / "error_elbows.json", {"a": []})
    with pytest.raises(InputError, match="error_knees.json not found"):
        import_fitness_aqa(tmp_path, FitnessAqaOptions())
    with pytest.raises(InputError, match="no Fitness-AQA exercise found"):
        import_fitness_aqa(tmp_path / "OHP", FitnessAqaOptions())


def test_cli_writes_samples_rejects_and_lineage(release, tmp_path):
    out = tmp_path / "out"
    result = run_prep("import", "fitness-aqa", "--data-root", release, "--out", out)
    assert result.exit_code == 0, result.output
    samples = read_samples(out / "samples.parquet")
    assert len(samples) == 3
    assert len(rejects(out)) == 11
    run = json.loads((out / "run.json").read_text())
    label = release / "Squat" / "Labeled_Dataset" / "Labels" / "error_knees_forward.json"
    assert run["inputs"][str(label)]["sha256"] == file_sha256(label)
    assert run["inputs"]["media"]["n_files"] == 3
    assert run["config"]["merge_spans"] is False and run["outputs"]["n_rejected"] == 11
    assert run["rejected_by_reason"]["duplicate id"] == 2
    # --strict: same outputs, exit 2
    strict = run_prep("import", "fitness-aqa", "--data-root", release, "--out", tmp_path / "strict", "--strict")
    assert strict.exit_code == 2
    assert (tmp_path / "strict" / "samples.parquet").is_file()


def test_passthrough_refuses_samples_without_their_own_text(release, tmp_path):
    out = tmp_path / "imported"
    assert run_prep("import", "fitness-aqa", "--data-root", release, "--out", out, "--no-hash-media").exit_code == 0
    built = run_prep("build", "--samples", out / "samples.parquet", "--data-root", release, "--out", tmp_path / "b",
                     "--task", "passthrough", "--frames", "2")
    assert built.exit_code == 0, built.output
    refused = rejects(tmp_path / "b")
    assert len(refused) == 3 and all("built with --task aqa" in r["reason"] for r in refused)
    temporal = run_prep("build", "--samples", out / "samples.parquet", "--data-root", release, "--out", tmp_path / "t",
                        "--task", "aqa", "--variant", "temporal", "--frames", "2")
    assert temporal.exit_code == 0, temporal.output
    targets = [json.loads(line)["target"] for line in (tmp_path / "t" / "examples" / "all.jsonl").read_text().splitlines()]
    assert any("knees forward from frame time 0.50s to 1.00s and knees forward from frame time 1.50s to 2.00s" in t
               for t in targets)
