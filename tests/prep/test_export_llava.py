import json

import pytest
from import_helpers import run_prep

from videotune.core.io import InputError, write_jsonl
from videotune.core.schemas import Example, FrameSpec, Message
from videotune.prep.export import LlavaExportOptions, export_llava, to_llava

TIMING = "The video lasts for 3.00 seconds, and 2 frames are uniformly sampled from it. These frames are located at 0.00s, 2.92s."


def _example(eid="e1", frames=True, messages=None, split="train"):
    messages = messages or [Message(role="user", content=f"{TIMING}\nWhat is wrong?"),
                            Message(role="assistant", content="Knees cave in.")]
    return Example(id=eid, sample_id=f"s-{eid}", media="videos/a.mp4" if frames else "images/a.png",
                   frames=FrameSpec(n=2, timestamps_s=[0.0, 2.92]) if frames else None, messages=messages,
                   target=messages[-1].content, meta={"split": split})


def test_video_record_in_llava_form():
    record = to_llava(_example(), LlavaExportOptions())
    assert record == {"id": "e1", "video": "videos/a.mp4", "split": "train", "conversations": [
        {"from": "human", "value": f"<video>\n{TIMING}\nWhat is wrong?"}, {"from": "gpt", "value": "Knees cave in."}]}


def test_options_and_images():
    image = _example(frames=False, split="", messages=[
        Message(role="system", content="You are a radiologist."), Message(role="user", content="Lesion?"),
        Message(role="assistant", content="yes"), Message(role="user", content="Where?"),
        Message(role="assistant", content="left")])
    record = to_llava(image, LlavaExportOptions(ids="sample", media_prefix="/data/clinic/"))
    assert record["id"] == "s-e1" and record["image"] == "/data/clinic/images/a.png" and "split" not in record
    assert [t["from"] for t in record["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert record["conversations"][0]["value"] == "<image>\nYou are a radiologist.\nLesion?"
    stripped = to_llava(_example(), LlavaExportOptions(time_instruction="strip"))
    assert stripped["conversations"][0]["value"] == "<video>\nWhat is wrong?"


def test_turns_must_alternate():
    bad = _example(messages=[Message(role="user", content="a"), Message(role="user", content="b"),
                             Message(role="assistant", content="c")])
    with pytest.raises(InputError, match="message 1 is from user"):
        to_llava(bad, LlavaExportOptions())


def test_duplicate_ids_across_files_are_refused(tmp_path):
    sources = [(tmp_path / "train.jsonl", [_example("a")]), (tmp_path / "val.jsonl", [_example("a")])]
    with pytest.raises(InputError, match="val.jsonl: id 'a' is also in .*train.jsonl"):
        export_llava(sources, LlavaExportOptions())


def test_cli_writes_json_and_its_manifest(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [_example("a"), _example("b", frames=False)])
    write_jsonl(tmp_path / "val.jsonl", [_example("c", split="val")])
    out = tmp_path / "llava" / "all.json"
    result = run_prep("export", "llava", "--examples", f"{tmp_path / 'train.jsonl'},{tmp_path / 'val.jsonl'}", "--out", out)
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == ["a", "b", "c"] and "image" in records[1] and records[2]["split"] == "val"
    run = json.loads((out.parent / "all.run.json").read_text())
    assert set(run["inputs"]) == {str(tmp_path / "train.jsonl"), str(tmp_path / "val.jsonl")}
    assert run["outputs"] == {"llava": "all.json", "n_records": 3}
    assert run_prep("export", "llava", "--examples", tmp_path / "train.jsonl", "--out", tmp_path / "x.txt").exit_code == 2
    assert run_prep("export", "llava", "--examples", tmp_path / "nope.jsonl", "--out", out).exit_code == 2
