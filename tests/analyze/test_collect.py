"""vt-analyze collect: the steps' typed summaries become metrics and tables, read from documented files only."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from videotune.analyze.cli import app
from videotune.analyze.plots import headroom
from videotune.core.summaries import JudgeSummary, ProfileSummary, QuantizeSummary, TrainSummary, write_summary

runner = CliRunner()


def _metrics(accuracy: float) -> dict:
    return {"n": 4, "metrics": {"exercise_accuracy": accuracy}, "ci95": {}, "per_class": {},
            "meta": {"task": "aqa", "models": ["x"]}}


def _plan(tmp_path, runs, **extra) -> str:
    plan = {"experiment": "rqX", "model": "tiny", "title": "t", "question": "q?", "runs": runs, **extra}
    path = tmp_path / "collect.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def test_every_step_summary_becomes_metrics_and_tables(tmp_path):
    a, b = tmp_path / "work/a", tmp_path / "work/b"
    for run, accuracy in ((a, 0.5), (b, 0.75)):
        (run / "analyze").mkdir(parents=True)
        (run / "analyze/metrics.json").write_text(json.dumps(_metrics(accuracy)))
        (run / "analyze/run.json").write_text("{}")
        write_summary(run / "train", TrainSummary(trainable_params=100, total_params=400, n_train=16, runtime_s=8.0,
                                                  epoch_times_s=[1.0, 3.0], final_train_loss=0.5, final_val_loss=0.7,
                                                  peak_memory_bytes=2_000_000_000, model_size_bytes=3_000_000))
        (run / "train/loss_history.json").write_text(json.dumps(
            {"train": [{"step": 1, "epoch": 0.5, "loss": 2.0}, {"step": 2, "epoch": 1.0, "loss": 1.0}],
             "val": [{"step": 2, "epoch": 1.0, "loss": 1.5}], "epochs": [{"epoch": 1.0, "epoch_time_s": 1.0}]}))
        write_summary(run / "profile", ProfileSummary(
            n_samples=2, batch_size=1, latency_p50_s=0.2, latency_p95_s=0.3, latency_mean_s=0.25, samples_per_s=4.0,
            tokens_per_s=40.0, peak_memory_bytes=1_500_000_000, model_weights_bytes=5_000_000,
            samples=[{"latency_s": 0.2, "batch_size": 1, "frames": 2, "resolution_px": 32}]))
        write_summary(run / "quantize", QuantizeSummary(method="int8-dynamic", ratio=0.25, weights_bytes_after=10))
    write_summary(b / "judge", JudgeSummary(n=4, rubric="clinical", counts={"ok": 4, "unparseable": 0, "error": 0},
                                            parse_failure_rate=0.0, mean={"safety": 4.5}, overall_mean=4.0))
    plan = _plan(tmp_path, [{"id": "a", "dir": str(a), "settings": {"bits": 8}},
                            {"id": "b", "dir": str(b), "settings": {"bits": 4}}],
                 table={"accuracy": "exercise_accuracy", "latency_s": "profile_latency_p50_s"},
                 relative=[{"column": "gain", "of": "accuracy", "baseline": {"bits": 8}}])
    out = tmp_path / "out"
    result = runner.invoke(app, ["collect", "--plan", plan, "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "runs/b/metrics.json").read_text())["metrics"]
    assert metrics["profile_latency_p50_s"] == 0.2 and metrics["profile_peak_memory_gb"] == 1.5
    assert metrics["profile_model_size_mb"] == 5.0 and metrics["train_epoch_s"] == 2.0
    assert metrics["train_peak_memory_gb"] == 2.0 and metrics["train_model_size_mb"] == 3.0
    assert metrics["train_trainable_params"] == 100 and metrics["train_n_examples"] == 16
    assert metrics["quantize_ratio"] == 0.25 and metrics["quantize_weights_bytes_after"] == 10
    assert metrics["judge_safety"] == 4.5 and metrics["judge_overall"] == 4.0
    with open(out / "grid.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == ["a", "b"] and rows[1]["gain"] == "1.5" and rows[1]["latency_s"] == "0.2"
    assert (out / "grid.md").is_file() and (out / "grid.tex").is_file()
    curves = (out / "curves.csv").read_text().splitlines()
    assert curves[0] == "run,model,split,metric,step,epoch,value" and "a,tiny,train,loss,1,0.5,2.0" in curves
    assert "tiny b,safety,4.5" in (out / "radar.csv").read_text()
    assert "tiny a,a,0.2,1,2,32" in (out / "samples.csv").read_text()
    assert (out / "runs/a/run.json").is_file() and (out / "collect_run.json").is_file()


def test_a_profile_only_run_is_a_profile_task(tmp_path):
    run = tmp_path / "work/b1"
    write_summary(run / "profile", ProfileSummary(n_samples=8, latency_p50_s=0.1, latency_p95_s=0.2, latency_mean_s=0.1,
                                                  samples_per_s=10.0, tokens_per_s=80.0, peak_memory_bytes=10**9))
    out = tmp_path / "out"
    result = runner.invoke(app, ["collect", "--plan", _plan(tmp_path, [{"id": "b1", "dir": str(run)}]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "runs/b1/metrics.json").read_text())
    assert metrics["n"] == 8 and metrics["meta"]["task"] == "profile" and metrics["metrics"]["samples_per_s"] == 10.0


def test_bad_plans_and_summaries_are_named(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("experiment: x\nrunz: []\n")
    result = runner.invoke(app, ["collect", "--plan", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "p.yaml" in result.output
    run = tmp_path / "work/r"
    (run / "analyze").mkdir(parents=True)
    (run / "analyze/metrics.json").write_text(json.dumps(_metrics(0.5)))
    (run / "train").mkdir()
    (run / "train/summary.json").write_text(json.dumps({"tool": "quantize", "method": "bf16"}))
    result = runner.invoke(app, ["collect", "--plan", _plan(tmp_path, [{"id": "r", "dir": str(run)}]),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "train/summary.json" in result.output


def test_headroom_plot_follows_the_metrics_direction():
    import pandas as pd

    data = pd.DataFrame({"model": ["m", "m"], "metric": ["exercise_accuracy", "latency_p50_s"],
                         "current": [0.9, 0.5], "minimum": [0.8, 1.0]})
    assert headroom(data)["headroom"].tolist() == pytest.approx([0.1, 0.5])  # both with room to spare
