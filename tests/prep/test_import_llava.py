import json

import pytest
from import_helpers import rejects, run_prep, write_json
from release_fixtures import QUESTION, TIMING, llava_record, llava_release

from videotune.core.io import InputError, read_jsonl, read_samples
from videotune.core.schemas import Example
from videotune.prep.importers.llava import LlavaOptions, import_llava, parse_aqa_answer


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return llava_release(tmp_path_factory.mktemp("llava"))


def test_seed_002_answers_become_aqa_samples(llava):
    result = import_llava(llava / "train.json", llava, LlavaOptions())
    samples = {s.id: s for s in result.samples}
    squat = samples["squat1"]
    assert squat.task == "aqa" and squat.label == "squat" and squat.split == "train"
    assert [(e.name, e.start_s, e.end_s) for e in squat.errors] == [("knees_forward", 0.72, 2.19)]
    assert squat.question == QUESTION  # media token and the old timing sentence removed, the rest kept
    assert json.loads(squat.meta)["time_instruction"] == TIMING
    assert {(e.name, e.end_s) for e in samples["ohp1"].errors} == {("elbows", 2.78), ("knees", 0.89)}
    assert samples["squat2"].errors == [] and samples["squat2"].task == "aqa"
    untimed = samples["squat3"]
    assert json.loads(untimed.meta)["untimed_errors"] == ["knees_inward"]
    assert samples["qved1"].task == "feedback" and samples["qved1"].answer.startswith("Squats - ")
    scan = samples["scan1"]
    assert scan.task == "vqa" and scan.media_kind == "image" and scan.stage == "initial" and scan.duration_s == 0
    assert len(json.loads(samples["scan2"].meta)["conversations"]) == 4


def test_bad_records_are_refused(llava):
    result = import_llava(llava / "train.json", llava, LlavaOptions())
    reasons = {r.record.split(":", 1)[1]: r.reason for r in result.rejects}
    assert "file not found" in reasons["missing"]
    assert "not a readable video" in reasons["garbage"]
    assert "duplicate id 'squat2'" in reasons["squat2"]
    assert "escapes the data root" in reasons["escape"]
    assert "past the clip's end" in reasons["past"]
    assert "before it starts" in reasons["backwards"]
    assert "negative time in [-0.5, 1.0] s" in reasons["negative"]  # refused, not read as an untimed error
    assert "truncated" in reasons["cut"] or "cut short" in reasons["cut"], reasons["cut"]
    assert "malformed conversations" in reasons["oneturn"]
    assert "no video or image" in reasons["textonly"]
    assert "unknown split 'training'" in reasons["badsplit"]
    assert len(result.rejects) == 11 and len(result.samples) == 7


def test_forced_aqa_refuses_answers_it_cannot_read(llava):
    result = import_llava(llava / "train.json", llava, LlavaOptions(task="aqa"))
    reasons = {r.record.split(":", 1)[1]: r.reason for r in result.rejects}
    assert reasons["qved1"].startswith("unknown label")
    assert "an aqa sample needs a video" in reasons["scan1"]


def test_parse_aqa_answer():
    assert parse_aqa_answer("The subject is performing an OHP. Error: knees, from 2.8s to 3.6s.") == \
        ("overhead_press", [("knees", 2.8, 3.6)])
    assert parse_aqa_answer("The subject is performing a Squat. The body parts committing errors are the following: "
                            "knees forward and knees inward.") == \
        ("squat", [("knees_forward", None, None), ("knees_inward", None, None)])
    # a listed error that is not the exercise's is not read as "no error"
    assert parse_aqa_answer("The subject is performing a Squat. The body part committing errors is the following: elbows.") is None
    assert parse_aqa_answer("Squats - knees cave in") is None


def test_malformed_json_names_the_position(tmp_path):
    (tmp_path / "bad.json").write_text('[{"id": "a",\n "video": "a.mp4"\n "conversations": []}]')
    with pytest.raises(InputError, match=r"bad.json: malformed JSON at line 3, column 2"):
        import_llava(tmp_path / "bad.json", tmp_path, LlavaOptions())


def test_round_trip_import_build_export_keeps_the_text(llava, tmp_path):
    imported = tmp_path / "imported"
    result = run_prep("import", "llava", "--annotations", llava / "train.json", "--data-root", llava, "--out", imported)
    assert result.exit_code == 0, result.output
    assert len(read_samples(imported / "samples.parquet")) == 7 and len(rejects(imported)) == 11
    # the summary: counts, the table of samples per split and label, and each refused record with its reason
    assert "import llava: 7 samples, 11 refused" in result.output
    assert "negative time" in " ".join(result.output.split())
    strict = run_prep("import", "llava", "--annotations", llava / "train.json", "--data-root", llava, "--out", tmp_path / "strict",
                      "--strict")
    assert strict.exit_code == 2 and len(rejects(tmp_path / "strict")) == 11
    run = json.loads((imported / "run.json").read_text())
    assert run["inputs"][str(llava / "train.json")]["sha256"]
    built = tmp_path / "built"
    result = run_prep("build", "--samples", imported / "samples.parquet", "--data-root", llava, "--out", built,
                      "--task", "passthrough", "--frames", "8")
    assert result.exit_code == 0, result.output
    examples = {e.sample_id: e for e in read_jsonl(built / "examples" / "all.jsonl", Example)}
    assert examples["squat1"].meta["task"] == "aqa" and examples["squat1"].meta["variant"] == "temporal"
    assert examples["scan1"].frames is None and examples["scan1"].meta["stage"] == "initial"
    assert examples["qved1"].meta["task"] == "feedback"
    out = tmp_path / "llava" / "train.json"
    result = run_prep("export", "llava", "--examples", built / "examples" / "all.jsonl", "--out", out, "--ids", "sample")
    assert result.exit_code == 0, result.output
    exported = {r["id"]: r for r in json.loads(out.read_text())}
    original: dict[str, dict] = {}
    for record in json.loads((llava / "train.json").read_text()):
        original.setdefault(record["id"], record)  # the first "squat2" is the one imported
    assert set(exported) == {"squat1", "ohp1", "squat2", "squat3", "qved1", "scan1", "scan2"}
    for rid, record in exported.items():
        source = original[rid]
        kind = "video" if "video" in source else "image"
        assert record[kind] == source[kind]
        # every answer verbatim; the question verbatim after the (re-stated) timing
        assert [t["value"] for t in record["conversations"][1:]] == [t["value"] for t in source["conversations"][1:]]
        first = record["conversations"][0]["value"]
        assert first.startswith(f"<{kind}>\n")
        assert first.endswith(source["conversations"][0]["value"].split("\n", 1)[1].replace(f"{TIMING} ", ""))
    # the frames sampled now are those the seed stated, so the whole prompt comes back
    assert exported["squat1"]["conversations"][0]["value"] == f"<video>\n{TIMING}\n{QUESTION}"
    assert exported["scan2"]["conversations"][0]["value"] == "<image>\nIs there a lesion?"
    assert exported["squat1"]["split"] == "train"
    assert (out.parent / "train.run.json").is_file()
    # a temporal aqa build refuses the clip whose errors have no times, and only that one
    aqa = tmp_path / "aqa"
    assert run_prep("import", "llava", "--annotations", llava / "train.json", "--data-root", llava, "--out", aqa, "--task", "aqa",
                    "--no-hash-media").exit_code == 0
    result = run_prep("build", "--samples", aqa / "samples.parquet", "--data-root", llava, "--out", tmp_path / "t",
                      "--task", "aqa", "--variant", "temporal", "--frames", "2")
    assert result.exit_code == 0, result.output
    assert [(r["record"], "no time spans" in r["reason"]) for r in rejects(tmp_path / "t")] == [("squat3", True)]
    assert "media" not in json.loads((aqa / "run.json").read_text())["inputs"]


def test_a_frames_folder_imports_and_builds_as_a_video(tmp_path):
    """LLaMA-Factory / ms-swift users' pre-extracted frames: a folder of JPEGs with fps.txt where a video would be."""
    from import_helpers import frames
    from PIL import Image

    folder = tmp_path / "clips" / "squat_frames"
    folder.mkdir(parents=True)
    for k, frame in enumerate(frames(2.0, fps=5)):
        Image.fromarray(frame).save(folder / f"{k + 1}.jpg", quality=95)
    (folder / "fps.txt").write_text("5\n")
    answer = "The subject is performing a Squat. He performs it correctly, without any subtle errors."
    write_json(tmp_path / "train.json", [llava_record("f1", "clips/squat_frames", answer)])
    out = tmp_path / "imported"
    assert run_prep("import", "llava", "--annotations", tmp_path / "train.json", "--data-root", tmp_path, "--out", out).exit_code == 0
    (sample,) = read_samples(out / "samples.parquet")
    assert sample.media == "clips/squat_frames" and sample.media_kind == "video"
    assert (sample.duration_s, sample.fps, sample.task) == (2.0, 5.0, "aqa")
    built = run_prep("build", "--samples", out / "samples.parquet", "--data-root", tmp_path, "--out", tmp_path / "b",
                     "--frames", "4")
    assert built.exit_code == 0, built.output
    (example,) = read_jsonl(tmp_path / "b" / "examples" / "all.jsonl", Example)
    assert example.frames.timestamps_s == [0.0, 0.6, 1.2, 1.8]  # frames 0, 3, 6, 9 at 5 fps
    assert example.messages[0].content.startswith("The video lasts for 2.00 seconds, and 4 frames")
