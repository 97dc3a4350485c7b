"""The error probes: labels from examples, probe scores on known features, and the command's outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from videotune.core.io import read_jsonl
from videotune.core.schemas import Example
from videotune.train.probe import keypoint_features, labels, probe

BIN = Path(sys.executable).parent


def _example(i, exercise, errors):
    return Example.model_validate({
        "id": f"c{i}", "sample_id": f"c{i}", "media": f"videos/c{i}.mp4", "frames": {"n": 2, "timestamps_s": [0.0, 0.5]},
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "target": "a",
        "meta": {"label": exercise, "errors": [{"name": e, "start_s": 0.0, "end_s": 1.0} for e in errors]}})


def test_labels_cover_every_error_of_the_exercises_present():
    found = labels([_example(0, "squat", ["knees_inward"]), _example(1, "overhead_press", []),
                    _example(2, "squat", ["knees_inward", "knees_forward"])])
    assert set(found) == {"elbows", "knees", "knees_forward", "knees_inward", "exercise"}
    assert found["knees_inward"].tolist() == [1, 0, 1] and found["knees_forward"].tolist() == [0, 0, 1]
    assert found["elbows"].tolist() == [0, 0, 0] and found["exercise"].tolist() == [1, 0, 1]


def test_probe_finds_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    y = {"knees": rng.integers(0, 2, 200), "exercise": rng.integers(0, 2, 200)}
    signal = np.column_stack([y["knees"] + 0.1 * rng.normal(size=200), y["exercise"], rng.normal(size=(200, 5))])
    noise = rng.normal(size=(200, 7))
    train, test = slice(0, 120), slice(120, 200)
    split = lambda x: (x[train], {k: v[train] for k, v in y.items()}, x[test], {k: v[test] for k, v in y.items()})  # noqa: E731
    clean = probe(*split(signal), c=1.0)
    assert clean["error_f1/knees"] == 1.0 and clean["exercise_accuracy"] == 1.0
    assert probe(*split(noise), c=1.0)["error_f1/knees"] < 0.8


def test_command_writes_both_probes(gym_raw, gym_examples, tiny_model, tmp_path):
    examples = read_jsonl(gym_examples, Example)
    assert keypoint_features(examples[:2], gym_raw).shape == (2, 4 * 23 * 5)  # 4 frames x 23 joints x (2D + 3D)
    (tmp_path / "train.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in examples[:10]))
    (tmp_path / "test.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in examples[10:]))
    result = subprocess.run(
        [str(BIN / "python"), "-m", "videotune.train.probe", "--model", str(tiny_model),
         "--train-examples", str(tmp_path / "train.jsonl"), "--test-examples", str(tmp_path / "test.jsonl"),
         "--data-root", str(gym_raw), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert set(scores) == {str(tiny_model), "keypoints (ceiling)"}
    for row in scores.values():
        assert {"exercise_accuracy", "error_macro_f1", "error_f1/knees_inward"} <= set(row)
    assert "| keypoints (ceiling) |" in (tmp_path / "out" / "probe.md").read_text()
