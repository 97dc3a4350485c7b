import json

import pytest
from import_helpers import image, rejects, run_prep, write_json
from release_fixtures import vqa_release

from videotune.core.io import InputError, read_jsonl, read_samples
from videotune.core.schemas import Example
from videotune.prep.importers.vqa import VqaOptions, import_vqa

STAGES = ["initial", "findings", "context"]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    return vqa_release(tmp_path_factory.mktemp("clinic"))


def test_records_become_image_samples(clinic):
    result = import_vqa(clinic / "vqa.json", clinic, VqaOptions(stages=STAGES))
    samples = {s.id: s for s in result.samples}
    assert list(samples) == ["images/a.png#0", "images/a.png#1", "images/a.png#2", "b-q1"]
    first = samples["images/a.png#0"]
    assert (first.task, first.media_kind, first.stage, first.split, first.group) == ("vqa", "image", "initial", "train", "images/a.png")
    assert json.loads(first.meta)["width_px"] == 20
    assert samples["images/a.png#1"].answer == "2" and samples["images/a.png#2"].answer == "yes"
    assert samples["b-q1"].group == "patient7" and json.loads(samples["b-q1"].meta)["extra"] == {"source": "ward 3"}
    jsonl = import_vqa(clinic / "vqa.jsonl", clinic, VqaOptions())
    assert [s.id for s in jsonl.samples] == list(samples) and not jsonl.rejects


def test_bad_records_are_refused(clinic):
    result = import_vqa(clinic / "vqa.json", clinic, VqaOptions(stages=STAGES))
    reasons = [r.reason for r in result.rejects]
    assert len(reasons) == 9
    for expected in ("missing.png: image file not found", "image file is truncated", "text.png: not a readable image",
                     "unknown label: stage 'diagnosis'", "no answer", "duplicate id 'b-q1'", "escapes the data root",
                     "a str, not an object"):
        assert any(expected in r for r in reasons), expected
    assert sum("escapes the data root" in r for r in reasons) == 2
    # without --stages any stage is accepted
    assert len(import_vqa(clinic / "vqa.json", clinic, VqaOptions()).samples) == 5


def test_malformed_jsonl_names_the_line(tmp_path):
    (tmp_path / "v.jsonl").write_text('{"image": "a.png"}\n{"image": \n')
    with pytest.raises(InputError, match=r"v.jsonl: malformed JSON at line 2"):
        import_vqa(tmp_path / "v.jsonl", tmp_path, VqaOptions())


def test_cli_import_then_build(clinic, tmp_path):
    out = tmp_path / "out"
    result = run_prep("import", "vqa", "--annotations", clinic / "vqa.json", "--data-root", clinic, "--out", out,
                      "--stages", ",".join(STAGES), "--dataset", "clinic")
    assert result.exit_code == 0, result.output
    samples = read_samples(out / "samples.parquet")
    assert len(samples) == 4 and {s.dataset for s in samples} == {"clinic"}
    assert len(rejects(out)) == 9
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"]["media"]["n_files"] == 2 and run["config"]["stages"] == STAGES
    strict = run_prep("import", "vqa", "--annotations", clinic / "vqa.json", "--data-root", clinic, "--out", tmp_path / "s", "--strict")
    assert strict.exit_code == 2
    built = run_prep("build", "--samples", out / "samples.parquet", "--data-root", clinic, "--out", tmp_path / "b",
                     "--task", "passthrough")
    assert built.exit_code == 0, built.output
    examples = read_jsonl(tmp_path / "b" / "examples" / "all.jsonl", Example)
    assert [e.target for e in examples] == ["yes", "2", "yes", "no"]
    assert all(e.frames is None and e.meta["task"] == "vqa" for e in examples)


def test_paths_inside_the_root_are_stored_relative(tmp_path):
    root = tmp_path / "data"
    image(root / "images" / "a.png")
    (tmp_path / "link").symlink_to(root)  # a root reached through a symlink is still the root
    write_json(root / "v.json", [
        {"id": "abs", "image": str(root / "images" / "a.png"), "question": "q", "answer": "a"},
        {"id": "dots", "image": "images/../images/a.png", "question": "q", "answer": "a"},
        {"id": "inside-link", "image": "images/b.png", "question": "q", "answer": "a"},
    ])
    (root / "images" / "b.png").symlink_to(root / "images" / "a.png")  # a symlink that stays inside is fine
    result = import_vqa(root / "v.json", tmp_path / "link", VqaOptions())
    assert not result.rejects
    assert [s.media for s in result.samples] == ["images/a.png", "images/a.png", "images/b.png"]
