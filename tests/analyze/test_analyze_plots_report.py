"""Plots (numbers by hand, every kind drawn as PNG and PDF) and the cross-experiment report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from videotune.analyze import plots
from videotune.analyze.cli import app
from videotune.core.io import InputError

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tools" / "analyze" / "examples" / "aqa_predictions.jsonl"


def test_convergence_and_data_efficiency_numbers():
    data = pd.DataFrame({"run": ["a"] * 5, "step": [10, 20, 30, 40, 50], "accuracy": [0.2, 0.5, 0.9, 0.95, 1.0]})
    row = plots.convergence_steps(data).iloc[0]
    assert (row["steps_to_90pct"], row["steps_to_95pct"], row["steps_to_99pct"]) == (30, 40, 50)
    sizes = pd.DataFrame({"model": ["m"] * 4, "size": [25, 50, 75, 100], "accuracy": [0.5, 0.72, 0.78, 0.8]})
    row = plots.samples_to_reach(sizes).iloc[0]
    assert row["size_for_90pct"] == 50 and row["size_for_95pct"] == 75


def test_pareto_robustness_headroom_numbers():
    front = plots.pareto_front(np.array([1.0, 2.0, 3.0, 2.0]), np.array([0.5, 0.7, 0.6, 0.7]))
    assert front.tolist() == [True, True, False, True]  # (3, .6) is beaten by (2, .7); equal points both stay
    deg = pd.DataFrame({"model": ["m", "m", "m"], "kind": ["clean", "blur", "blur"], "level": [0, 1, 2],
                        "accuracy": [0.8, 0.6, 0.4]})
    assert plots.robustness(deg)["robustness"].tolist() == pytest.approx([0.75, 0.5])
    head = plots.headroom(pd.DataFrame({"model": ["m"], "metric": ["acc"], "current": [0.93], "minimum": [0.9]}))
    assert head["headroom"].iloc[0] == pytest.approx(0.03)


TABLES = {
    "learning_curves": pd.DataFrame({"run": ["a"] * 4, "split": ["train", "train", "val", "val"], "step": [1, 2, 1, 2],
                                     "value": [2.0, 1.5, 1.8, 1.6]}),
    "accuracy_vs_params": pd.DataFrame({"trainable_params": [1e5, 4e5, 1.6e6], "accuracy": [0.5, 0.6, 0.62],
                                        "model": ["m"] * 3, "label": ["r=8", "r=32", "r=128"]}),
    "convergence": pd.DataFrame({"run": ["a"] * 3 + ["b"] * 3, "step": [1, 2, 3] * 2, "accuracy": [0.1, 0.5, 0.6, 0.3, 0.4, 0.5]}),
    "data_efficiency": pd.DataFrame({"model": ["m"] * 3, "size": [10, 20, 40], "accuracy": [0.4, 0.5, 0.55],
                                     "ci_lo": [0.3, 0.4, 0.5], "ci_hi": [0.5, 0.6, 0.6]}),
    "degradation": pd.DataFrame({"model": ["m", "m", "m", "n", "n", "n"], "kind": ["clean", "blur", "blur"] * 2,
                                 "level": [0, 1, 2] * 2, "accuracy": [0.8, 0.7, 0.5, 0.7, 0.6, 0.6]}),
    "temporal_heatmap": pd.DataFrame({"frames": [4, 4, 8, 8], "fps": [15, 30, 15, 30], "accuracy": [0.5, 0.6, 0.6, 0.7]}),
    "latency_violin": pd.DataFrame({"model": ["a"] * 20 + ["b"] * 20,
                                    "total_s": list(np.linspace(0.1, 0.3, 20)) + list(np.linspace(0.2, 0.5, 20))}),
    "batch_scaling": pd.DataFrame({"model": ["m"] * 3, "batch_size": [1, 2, 4], "latency_s": [1.0, 1.2, 1.6],
                                   "throughput": [1.0, 1.7, 2.5]}),
    "resolution_frames_heatmap": pd.DataFrame({"resolution": [224, 224, 448, 448], "frames": [8, 16, 8, 16],
                                               "value": [0.1, 0.2, 0.3, 0.6], "metric": ["latency_s"] * 4}),
    "pareto": pd.DataFrame({"name": ["a", "b", "c"], "accuracy": [0.5, 0.7, 0.6], "latency_s": [0.1, 0.3, 0.4],
                            "memory_gb": [1, 2, 2]}),
    "headroom": pd.DataFrame({"model": ["m", "n"], "metric": ["acc", "acc"], "current": [0.93, 0.85], "minimum": [0.9, 0.9]}),
    "radar": pd.DataFrame({"model": ["m"] * 4, "dimension": ["clinical_accuracy", "actionability", "root_cause", "completeness"],
                           "score": [4, 3, 2, 5]}),
}
TABLES["degradation_heatmap"] = TABLES["degradation"]


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_every_table_kind_draws_png_and_pdf(kind, tmp_path):
    written = plots.PLOTTERS[kind](TABLES[kind], tmp_path, kind)
    assert {p.suffix for p in written} == {".png", ".pdf"}
    for p in written:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") or head.startswith(b"%PDF-")


def test_metrics_kinds_and_missing_columns(tmp_path):
    result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path / "m"), "--n-bootstrap", "0"])
    assert result.exit_code == 0, result.output
    for kind in ("confusion", "pr_curve"):
        result = runner.invoke(app, ["plot", "--kind", kind, "--tables", str(tmp_path / "m" / "metrics.json"),
                                     "--out", str(tmp_path / "p")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "confusion_exercise.pdf").is_file() and (tmp_path / "p" / "confusion_error.png").is_file()
    assert (tmp_path / "p" / "pr_curve.png").is_file()
    with pytest.raises(InputError, match="accuracy"):
        plots.plot_pareto(pd.DataFrame({"name": ["a"], "latency_s": [1], "memory_gb": [1]}), tmp_path)
    table = tmp_path / "profile.csv"
    TABLES["pareto"].to_csv(table, index=False)
    result = runner.invoke(app, ["plot", "--kind", "pareto", "--tables", str(table), "--out", str(tmp_path / "q"),
                                 "--title", "Pareto"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "q" / "run.json").read_text())["outputs"]["plots"] == ["pareto.png", "pareto.pdf"]
    history = tmp_path / "run1" / "history.json"
    history.parent.mkdir()
    history.write_text(json.dumps({"train": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], "val": []}))
    result = runner.invoke(app, ["plot", "--kind", "learning_curves", "--tables", str(history), "--out", str(tmp_path / "l")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", "--kind", "radar", "--tables", str(table), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "dimension" in result.output


def test_results_summary_with_costs_and_recommendations(tmp_path):
    results = tmp_path / "results"
    for experiment, runs in (("rq2_1_1", ("lora_r8", "lora_r64")), ("curriculum", ("exp1", "exp2"))):
        for run in runs:
            result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(results / experiment / run),
                                         "--n-bootstrap", "50", "--seed", str(len(run))])
            assert result.exit_code == 0, result.output
    # Make exp2 a different model with a higher accuracy, as curriculum results would be.
    path = results / "curriculum" / "exp2" / "metrics.json"
    data = json.loads(path.read_text())
    data["metrics"]["exercise_accuracy"], data["meta"]["models"] = 0.9, ["qwen3-vl"]
    data["ci95"]["exercise_accuracy"] = [0.85, 0.95]
    path.write_text(json.dumps(data))
    costs = tmp_path / "costs.csv"
    acc1 = json.loads((results / "curriculum" / "exp1" / "metrics.json").read_text())["metrics"]["exercise_accuracy"]
    costs.write_text("experiment,run,gpu_hours\ncurriculum,exp1,28\ncurriculum,exp2,84\n")
    out = tmp_path / "summary"
    result = runner.invoke(app, ["report", "--results", str(results), "--costs", str(costs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "RESULTS_SUMMARY.md").read_text()
    assert "## Recommendation matrix" in text and "exercise identification" in text and "qwen3-vl" in text
    for stem in ("results", "models_x_experiments", "recommendations"):
        assert (out / f"{stem}.csv").is_file() and (out / f"{stem}.tex").is_file()
    for experiment in ("rq2_1_1", "curriculum"):
        assert (out / experiment / "summary.md").is_file() and (out / experiment / "table.tex").is_file()
        assert (out / experiment / "primary_metric.png").is_file()
    table = pd.read_csv(out / "curriculum" / "table.csv").set_index("run")
    # Seed 001's cost per point: GPU-hours / accuracy in percent; marginal: extra hours per extra point.
    assert table.loc["exp1", "gpu_hours_per_point"] == pytest.approx(28 / (100 * acc1))
    assert table.loc["exp2", "gpu_hours_per_point"] == pytest.approx(84 / 90)
    assert table.loc["exp2", "marginal_gpu_hours_per_point"] == pytest.approx(56 / (100 * (0.9 - acc1)))
    rec = pd.read_csv(out / "recommendations.csv").set_index("use_case")
    assert rec.loc["exercise identification", "best_model"] == "qwen3-vl"


def test_report_needs_metrics_or_results_and_keeps_report_md(tmp_path):
    result = runner.invoke(app, ["report", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--metrics" in result.output
    result = runner.invoke(app, ["report", "--results", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_batch_scaling_reads_a_vt_infer_profile(tmp_path):
    import json

    from videotune.analyze.plots import load_table, plot_batch_scaling

    profile = {"model": "tiny", "batch_scaling": [
        {"batch_size": 1, "status": "ok", "latency_per_sample_s": 0.4, "samples_per_s": 2.5, "peak_memory_bytes": 2e9},
        {"batch_size": 8, "status": "ok", "latency_per_sample_s": 0.1, "samples_per_s": 10.0, "peak_memory_bytes": 3e9},
        {"batch_size": 16, "status": "oom"},
    ]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    table = load_table([path])
    assert table["throughput"].tolist()[:2] == [2.5, 10.0]
    assert table["memory_gb"].tolist()[:2] == [2.0, 3.0]
    assert table["status"].tolist()[2] == "oom"
    plot_batch_scaling(table, tmp_path)
    assert (tmp_path / "batch_scaling.png").stat().st_size > 0
