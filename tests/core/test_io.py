import json

import pytest

from videotune.core.io import (
    InputError,
    ResumableJsonl,
    atomic_write_text,
    read_json,
    read_jsonl,
    read_samples,
    write_jsonl,
    write_samples,
)
from videotune.core.schemas import ErrorSpan, Example, Message, Prediction, Sample


def _sample(i: int, **kw) -> Sample:
    base = dict(id=f"s{i}", dataset="d", media=f"videos/s{i}.mp4", media_kind="video", duration_s=4.0, fps=12.0,
                group=f"g{i % 2}", task="aqa", label="squat",
                errors=[ErrorSpan(name="knees_forward", start_s=1.0, end_s=2.5)])
    base.update(kw)
    return Sample(**base)


def _prediction(i: int) -> Prediction:
    return Prediction(id=f"p{i}", model="m", prompt="q", prediction="a", reference="r", status="ok")


def test_samples_round_trip(tmp_path):
    samples = [_sample(i) for i in range(3)]
    write_samples(tmp_path / "samples.parquet", samples)
    assert read_samples(tmp_path / "samples.parquet") == samples


def test_samples_refuse_duplicate_ids(tmp_path):
    with pytest.raises(InputError, match="duplicate sample id 's1'"):
        write_samples(tmp_path / "samples.parquet", [_sample(1), _sample(1)])
    assert not (tmp_path / "samples.parquet").exists()


@pytest.mark.parametrize("bad, message", [
    (dict(errors=[{"name": "knees", "start_s": 3.0, "end_s": 1.0}]), "ends"),
    (dict(errors=[{"name": "knees", "start_s": 1.0, "end_s": 9.0}]), "past the clip's end"),
    (dict(media="../outside.mp4"), "stay inside"),
    (dict(media="/abs/x.mp4"), "relative"),
    (dict(meta="[1]"), "JSON object"),
])
def test_sample_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        _sample(0, **bad)


def test_read_jsonl_names_file_line_and_id(tmp_path):
    path = tmp_path / "p.jsonl"
    good = _prediction(0).model_dump_json()
    bad = json.dumps({**_prediction(1).model_dump(), "status": "maybe"})
    path.write_text(good + "\n" + bad + "\n")
    with pytest.raises(InputError, match=r"p\.jsonl: line 2 \(id 'p1'\): status"):
        read_jsonl(path, Prediction)


def test_read_jsonl_malformed_json(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "x",\n')
    with pytest.raises(InputError, match="line 1: malformed JSON"):
        read_jsonl(path, Prediction)


def test_read_json_malformed_names_position(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1,,}')
    with pytest.raises(InputError, match=r"x\.json: malformed JSON at line 1, column 9"):
        read_json(path)


def test_example_last_message_is_target():
    with pytest.raises(ValueError, match="last message"):
        Example(id="e", sample_id="s", media="m.mp4", target="t",
                messages=[Message(role="user", content="q"), Message(role="assistant", content="other")])


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.jsonl"
    atomic_write_text(path, "old\n")

    def records():
        yield _prediction(0)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_resumable_skips_done_and_drops_torn_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    with ResumableJsonl(path, Prediction) as sink:
        for i in range(3):
            sink.append(_prediction(i))
    # A kill while writing the fourth record leaves a torn last line.
    with open(path, "a") as fh:
        fh.write(_prediction(3).model_dump_json()[:20])
    with ResumableJsonl(path, Prediction) as sink:
        assert sink.done == {"p0", "p1", "p2"}
        for i in range(5):
            sink.append(_prediction(i))  # p0..p2 are skipped
    ids = [r.id for r in read_jsonl(path, Prediction)]
    assert ids == ["p0", "p1", "p2", "p3", "p4"]


def test_replace_dir_keeps_old_folder_on_failure(tmp_path):
    from videotune.core.io import replace_dir

    target = tmp_path / "model"
    with replace_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with replace_dir(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed while saving")
    assert (target / "weights").read_text() == "v1"
    with replace_dir(target) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
