import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videotune.core.io import read_jsonl
from videotune.core.schemas import StreamExample
from videotune.core.video import encode_video
from videotune.prep.dst import Source, convert, frame_of, node_state, read_sources, split_by_video, states_at

BIN = Path(sys.executable).parent

# shared/formats/proassist_dst_example.json, as the real releases shape it
EXAMPLE = {
    "video_uid": "assembly_shelf_x", "inferred_goal": "Assemble a small shelf",
    "inferred_knowledge": "Goal\n1. Attach the side panels.\n2. Insert the shelves.", "video_labels": {},
    "conversation": [
        {"role": "system", "content": "You are a proactive assistant."},
        {"role": "user", "content": "Can you guide me through the shelf?", "time": 0.8},
        {"role": "DST_UPDATE", "time": 1.5, "content": [{"id": "S1", "transition": "start"}]},
        {"role": "assistant", "content": "Start by screwing the side panels to the base.", "time": 1.5,
         "labels": "initiative|instruction"},
        {"role": "DST_UPDATE", "time": 6.0, "content": [{"id": "S1", "transition": "complete"}]},
        {"role": "DST_UPDATE", "time": 6.0, "content": [{"id": "S2", "transition": "start"}]},
        {"role": "assistant", "content": "Now slide the shelves into the grooves.", "time": 6.5,
         "labels": "initiative|instruction"},
        {"role": "DST_UPDATE", "time": 10.0, "content": [{"id": "S2", "transition": "complete"}]}],
    "dst": [{"type": "step", "id": "S1", "start_ts": 1.5, "end_ts": 6.0, "name": "Attach the side panels."},
            {"type": "step", "id": "S2", "start_ts": 6.0, "end_ts": 10.0, "name": "Insert the shelves."}],
    "metadata": {"original_video_index": 0, "conversation_index": 0},
}


def _video(path: Path, seconds: float, fps: float = 4.0) -> None:
    frames = (np.full((16, 16, 3), i % 255, dtype=np.uint8) for i in range(round(seconds * fps)))
    encode_video(path, frames, fps)


@pytest.fixture()
def shelf(tmp_path):
    _video(tmp_path / "assembly_shelf_x.mp4", 11.0)
    return tmp_path


def test_state_from_timestamps():
    assert node_state(1.49, 1.5, 6.0) == "not_started"
    assert node_state(1.5, 1.5, 6.0) == "in_progress"  # start_ts <= t
    assert node_state(5.99, 1.5, 6.0) == "in_progress"
    assert node_state(6.0, 1.5, 6.0) == "completed"  # end_ts <= t
    steps = [("S1", 1.5, 6.0), ("S2", 6.0, 10.0)]
    assert states_at(6.0, steps) == {"S1": "completed", "S2": "in_progress"}
    assert states_at(0.0, steps) == {"S1": "not_started", "S2": "not_started"}
    assert frame_of(1.5, [0.0, 0.5, 1.0, 1.5, 2.0]) == 3
    assert frame_of(0.8, [0.0, 0.5, 1.0, 1.5]) == 2  # the first frame at or after the turn
    assert frame_of(9.9, [0.0, 0.5]) == 1


def test_convert_the_format_example(shelf):
    example = convert(Source(Path("x.json"), 0, EXAMPLE), shelf, fps=2.0)
    assert example.id == "assembly_shelf_x#0" and example.video_id == "assembly_shelf_x"
    frames = example.frames
    assert [f.t_s for f in frames[:4]] == [0.0, 0.5, 1.0, 1.5] and len(frames) == 22
    assert frames[2].user == "Can you guide me through the shelf?"  # 0.8 s -> the frame at 1.0 s
    assert frames[3].dst_update and frames[3].dst_delta == {"S1": "in_progress"}
    assert frames[3].speak and frames[3].response.startswith("Start by screwing")
    assert frames[12].t_s == 6.0 and frames[12].dst_delta == {"S1": "completed", "S2": "in_progress"}
    assert not frames[12].speak and frames[13].speak  # the response at 6.5 s is its own frame's
    assert frames[20].t_s == 10.0 and frames[20].dst == {"S1": "completed", "S2": "completed"}
    assert sum(f.dst_update for f in frames) == 3 and sum(f.speak for f in frames) == 2
    # every frame between events repeats the state without an update
    assert not frames[5].dst_update and frames[5].dst == {"S1": "in_progress", "S2": "not_started"}


def _bad(**changes):
    record = json.loads(json.dumps(EXAMPLE))
    for key, value in changes.items():
        record[key] = value
    return record


def test_bad_records_are_refused_with_the_reason(shelf, tmp_path):
    unknown = _bad()
    unknown["conversation"][2]["content"] = [{"id": "S9", "transition": "start"}]
    before = _bad()
    before["conversation"][2], before["conversation"][4] = before["conversation"][4], before["conversation"][2]
    late = _bad()
    late["conversation"][6]["time"] = 30.0
    backwards = _bad(dst=[{"type": "step", "id": "S1", "start_ts": 6.0, "end_ts": 1.5, "name": "a"},
                          {"type": "step", "id": "S2", "start_ts": 6.0, "end_ts": 10.0, "name": "b"}])
    as_string = _bad()
    as_string["conversation"][2]["content"] = json.dumps(as_string["conversation"][2]["content"])
    as_string["video_uid"] = "assembly_shelf_x"
    as_string["metadata"] = {"conversation_index": 1}
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.json").write_text(json.dumps([EXAMPLE, unknown, before, late, backwards, as_string]))
    (inputs / "b.json").write_text('[{"video_uid": "v",\n  "dst": [}]')
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(BIN / "vt-prep"), "dst", "--annotations", str(inputs), "--data-root", str(shelf),
                             "--out", str(out), "--ratios", "1,0,0"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["record"]: r["reason"] for r in rejects}
    assert "unknown node 'S9'" in reasons["video 1 (assembly_shelf_x)"]
    assert "completed at 6.0s before it starts" in reasons["video 2 (assembly_shelf_x)"]
    assert "30.0s is outside the video" in reasons["video 3 (assembly_shelf_x)"]
    assert "completed at 1.5s, before it starts at 6.0s" in reasons["video 4 (assembly_shelf_x)"]
    assert reasons["line 2, column 11"].startswith("malformed JSON")
    assert all(r["file"].endswith(("a.json", "b.json")) for r in rejects)
    # the content given as a JSON string (a pitfall of some releases) is read like the list
    kept = read_jsonl(out / "stream" / "train.jsonl", StreamExample)
    assert [e.id for e in kept] == ["assembly_shelf_x#0", "assembly_shelf_x#1"]
    assert kept[0].frames == kept[1].frames
    strict = subprocess.run([str(BIN / "vt-prep"), "dst", "--annotations", str(inputs), "--data-root", str(shelf),
                             "--out", str(tmp_path / "strict"), "--strict"], capture_output=True, text=True, env=env)
    assert strict.returncode == 2 and "refused" in strict.stderr
    missing = subprocess.run([str(BIN / "vt-prep"), "dst", "--annotations", str(inputs / "b.json"), "--out",
                              str(tmp_path / "none")], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "line 2, column 11" in " ".join(missing.stderr.split())


def test_missing_video_is_a_reject(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([EXAMPLE]))
    sources, rejects = read_sources([tmp_path / "a.json"])
    assert not rejects and len(sources) == 1
    from videotune.prep.dst import convert_all

    examples, rejects = convert_all(sources, tmp_path, 2.0)
    assert not examples and "file not found" in rejects[0].reason


def test_split_by_video(shelf):
    base = convert(Source(Path("x.json"), 0, EXAMPLE), shelf, fps=2.0)
    examples = [base.model_copy(update={"id": f"v{i}#{c}", "video_id": f"v{i}"}) for i in range(10) for c in range(2)]
    splits = split_by_video(examples, (0.6, 0.2, 0.2), seed=0)
    videos = {name: {e.video_id for e in items} for name, items in splits.items()}
    assert [len(videos[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert not (videos["train"] & videos["val"]) and not (videos["train"] & videos["test"])
    assert all(e.split == name for name, items in splits.items() for e in items)
