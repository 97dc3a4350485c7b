"""vt-analyze report --experiment (one experiment's runs) and --runs-glob (which metrics.json are runs)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from videotune.analyze.cli import app
from videotune.analyze.summary import write_one_experiment, write_results_summary
from videotune.core.io import InputError


def _write(path, task, metrics, model):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"n": 4, "metrics": metrics, "ci95": {}, "per_class": {},
                                "meta": {"task": task, "models": [model]}}))


def test_one_experiment_writes_a_flat_summary(tmp_path):
    runs = tmp_path / "runs"
    _write(runs / "b1" / "metrics.json", "profile", {"samples_per_s": 10.0, "latency_p50_s": 0.1}, "m")
    _write(runs / "b4" / "metrics.json", "profile", {"samples_per_s": 30.0, "latency_p50_s": 0.05}, "m")
    target = write_one_experiment(runs, "rq3_1_2", tmp_path / "out")
    assert target == tmp_path / "out" / "summary.md"
    text = target.read_text()
    assert text.startswith("# rq3_1_2")
    assert "Best run by `samples_per_s`: **b4**" in text  # throughput is the profile task's primary metric
    assert (tmp_path / "out" / "table.tex").is_file() and (tmp_path / "out" / "primary_metric.png").is_file()
    with pytest.raises(InputError, match="no <run>/metrics.json"):
        write_one_experiment(tmp_path / "empty", "x", tmp_path / "out2")


def test_runs_glob_leaves_other_metrics_out(tmp_path):
    results = tmp_path / "results"
    _write(results / "rq1_3_3" / "m1" / "runs" / "clean" / "metrics.json", "aqa", {"exercise_accuracy": 0.9}, "m1")
    _write(results / "rq1_3_3" / "m2" / "runs" / "clean" / "metrics.json", "aqa", {"exercise_accuracy": 0.7}, "m2")
    # raw step outputs and unrelated results: not runs of the grid
    _write(results / "rq1_3_3" / "_work" / "m1" / "clean" / "analyze" / "metrics.json", "aqa",
           {"exercise_accuracy": 0.9}, "models/x")
    _write(results / "demo" / "analyze" / "metrics.json", "aqa", {"exercise_accuracy": 0.5}, "demo")
    write_results_summary(results, tmp_path / "out", runs_glob="*/runs/*/metrics.json")
    summary = (tmp_path / "out" / "RESULTS_SUMMARY.md").read_text()
    assert "2 runs in 1 experiment(s), 2 model(s)" in summary
    assert not (tmp_path / "out" / "demo").exists()
    rows = (tmp_path / "out" / "recommendations.csv").read_text()
    assert "m1" in rows and "models/x" not in rows


def test_cli_experiment_option(tmp_path):
    runs = tmp_path / "runs"
    _write(runs / "a" / "metrics.json", "aqa", {"exercise_accuracy": 0.4}, "m")
    result = CliRunner().invoke(app, ["report", "--results", str(runs), "--experiment", "rq2_1_1",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "summary.md").read_text().startswith("# rq2_1_1")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["experiment"] == "rq2_1_1"
