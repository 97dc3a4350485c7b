"""summary.json: each step's typed figures, written validated and read back by kind."""

from __future__ import annotations

import json

import pytest

from videotune.core.io import InputError
from videotune.core.summaries import (
    JudgeSummary,
    ProfileSummary,
    QuantizeSummary,
    TrainSummary,
    read_summary,
    write_summary,
)


def test_each_summary_round_trips_by_its_tool(tmp_path):
    for i, summary in enumerate([
        TrainSummary(trainable_params=10, total_params=20, n_train=4, runtime_s=1.5, epoch_times_s=[0.7, 0.8]),
        ProfileSummary(n_samples=2, latency_p50_s=0.1, samples=[{"latency_s": 0.1, "batch_size": 1, "frames": 2,
                                                                  "resolution_px": 32}]),
        QuantizeSummary(method="int8-dynamic", ratio=0.3),
        JudgeSummary(n=2, rubric="clinical", counts={"ok": 2, "unparseable": 0, "error": 0}, mean={"safety": 4.0}),
    ]):
        path = write_summary(tmp_path / str(i), summary)
        assert read_summary(path) == summary


def test_a_judge_summary_without_tool_reads_as_judge(tmp_path):
    # vt-judge score's summary.json as it has always been written
    raw = {"n": 1, "rubric": "r", "judge": "j", "counts": {"ok": 1, "unparseable": 0, "error": 0},
           "parse_failure_rate": 0.0, "error_rate": 0.0, "mean": {"clarity": 3.0}, "overall_mean": 3.0}
    (tmp_path / "summary.json").write_text(json.dumps(raw))
    assert isinstance(read_summary(tmp_path / "summary.json"), JudgeSummary)


@pytest.mark.parametrize("raw, problem", [
    ({"tool": "train", "trainable_params": -1, "total_params": 1, "n_train": 1, "runtime_s": 1}, "trainable_params"),
    ({"tool": "profile", "latency": 1}, "latency"),
    ({"tool": "nope"}, "tool"),
])
def test_a_malformed_summary_is_named(tmp_path, raw, problem):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match=problem) as err:
        read_summary(path)
    assert str(path) in str(err.value)
