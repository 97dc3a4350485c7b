"""vt-analyze end to end: metrics then report on a small predictions file; bad input exits 2."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from videotune.analyze.cli import app
from videotune.analyze.report import validate_history, write_report
from videotune.core.io import InputError
from videotune.core.schemas import Metrics

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tools" / "analyze" / "examples" / "aqa_predictions.jsonl"
runner = CliRunner()


def flat(text: str) -> str:
    # rich wraps long lines (file paths included) at the terminal width.
    return text.replace("\n", "")


def history() -> dict:
    return {
        "train": [{"step": s, "epoch": s / 10, "loss": 2.0 - 0.1 * s} for s in range(1, 11)],
        "val": [{"step": 5, "epoch": 0.5, "loss": 1.7}, {"step": 10, "epoch": 1.0, "loss": 1.4}],
    }


def test_metrics_then_report(tmp_path):
    out = tmp_path / "analyze"
    result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(out),
                                 "--n-bootstrap", "200", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "exercise_accuracy" in result.output
    metrics = Metrics.model_validate(json.loads((out / "metrics.json").read_text()))
    assert metrics.n == 10 and metrics.meta["n_error_status"] == 1
    assert metrics.ci95 and metrics.metrics["span_miou"] is not None
    run = json.loads((out / "run.json").read_text())
    assert run["tool"] == "analyze" and run["command"] == "metrics" and run["seed"] == 3
    assert run["inputs"]["predictions"]["path"] == str(EXAMPLE)
    assert len(run["inputs"]["predictions"]["sha256"]) == 64

    hist = tmp_path / "history.json"
    hist.write_text(json.dumps(history()))
    report_dir = tmp_path / "report"
    result = runner.invoke(app, ["report", "--metrics", str(out / "metrics.json"), "--loss-history", str(hist),
                                 "--out", str(report_dir), "--title", "Example run"])
    assert result.exit_code == 0, result.output
    text = (report_dir / "REPORT.md").read_text()
    assert text.startswith("# Example run")
    for stem in ("loss_curve", "confusion_exercise", "error_f1"):
        png = report_dir / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (report_dir / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert f"]({stem}.png)" in text  # relative link, so the folder can move
    assert "aqa_predictions.jsonl" in text  # provenance from the run.json beside metrics.json
    assert "| `exercise_accuracy` |" in text and "`baseline_majority`" in text
    assert not list(report_dir.glob(".*.tmp"))  # no temp files left behind
    run = json.loads((report_dir / "run.json").read_text())
    assert set(run["inputs"]) == {"metrics", "loss_history"}


def test_report_without_history(tmp_path):
    result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path),
                                 "--n-bootstrap", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "--metrics", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "error_f1.png").is_file()
    assert not (tmp_path / "r" / "loss_curve.png").exists()
    assert "No training history" in (tmp_path / "r" / "REPORT.md").read_text()


def test_malformed_predictions_exit_2_naming_the_file(tmp_path):
    bad = tmp_path / "broken_predictions.jsonl"
    bad.write_text(EXAMPLE.read_text().splitlines()[0] + "\n{not json\n")
    result = runner.invoke(app, ["metrics", "--predictions", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert str(bad) in flat(result.output) and "line 2" in result.output
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_missing_ground_truth_exit_2_naming_file_and_record(tmp_path):
    bad = tmp_path / "no_truth.jsonl"
    bad.write_text(json.dumps({"id": "clip-7", "model": "m", "prompt": "", "prediction": "Squat",
                               "reference": "", "status": "ok", "meta": {}}) + "\n")
    result = runner.invoke(app, ["metrics", "--predictions", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert str(bad) in flat(result.output) and "clip-7" in result.output


def test_bad_metrics_or_history_exit_2(tmp_path):
    not_metrics = tmp_path / "metrics.json"
    not_metrics.write_text('{"foo": 1}')
    result = runner.invoke(app, ["report", "--metrics", str(not_metrics), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and str(not_metrics) in flat(result.output)

    runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path / "m"), "--n-bootstrap", "0"])
    hist = tmp_path / "history.json"
    hist.write_text('{"train": 3}')
    result = runner.invoke(app, ["report", "--metrics", str(tmp_path / "m" / "metrics.json"),
                                 "--loss-history", str(hist), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and str(hist) in flat(result.output)


def test_usage_errors_exit_2(tmp_path):
    assert runner.invoke(app, []).exit_code == 2  # a subcommand is required
    # Streaming metrics need the reference stream examples: without --references, refused with a message.
    result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path), "--task", "stream"])
    assert result.exit_code == 2 and "stream" in result.output
    result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path), "--task", "unknown"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path),
                                 "--n-bootstrap", "-1"])
    assert result.exit_code == 2


def test_help_carries_an_example():
    for command in ("metrics", "compare", "plot", "report"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and f"vt-analyze {command}" in result.output


def test_readme_first_block_runs(tmp_path, monkeypatch):
    readme = (REPO / "tools" / "analyze" / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    command = block.replace("\\\n", " ").replace("runs/example", str(tmp_path))
    monkeypatch.chdir(REPO)
    for part in command.split("&&"):
        argv = shlex.split(part)
        assert argv[0] == "vt-analyze"
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "REPORT.md").is_file()


def test_write_report_direct(tmp_path):
    metrics = Metrics(
        n=2,
        metrics={"exercise_accuracy": 0.5, "baseline_majority/exercise_accuracy": 0.5, "span_miou": None},
        ci95={"exercise_accuracy": (0.0, 1.0)},
        per_class={"exercise_confusion": {"labels": ["squat", "overhead_press", "unparsed"],
                                          "matrix": [[1, 0, 0], [0, 0, 1], [0, 0, 0]]}},
        meta={"n": 2},
    )
    path = write_report(metrics, history(), tmp_path, "T", {"model": "m|x"})
    text = path.read_text()
    assert "| `exercise_accuracy` | 0.5000 | [0.0000, 1.0000] | 0.5000 (`baseline_majority`) |" in text
    assert "| `span_miou` | n/a | n/a |  |" in text
    assert "m\\|x" in text  # a pipe in a value does not break the table
    assert (tmp_path / "confusion_exercise.png").is_file() and (tmp_path / "loss_curve.png").is_file()


def test_validate_history_skips_non_finite_losses():
    clean = validate_history({"train": [{"step": 1, "epoch": 0, "loss": 1.0}, {"step": 2, "epoch": 0, "loss": None},
                                        {"step": 3, "epoch": 0, "loss": float("nan")}]})
    assert clean == {"train": [{"step": 1.0, "epoch": 0.0, "loss": 1.0}], "val": []}
    with pytest.raises(InputError):
        validate_history({"val": [{"epoch": 1, "loss": 1.0}]})


def test_console_script_entry_point(tmp_path):
    # The installed `vt-analyze` (pyproject: videotune.analyze.cli:main) maps bad input to exit 2.
    import os
    import shutil
    import subprocess
    import sys

    script = Path(sys.executable).parent / "vt-analyze"
    exe = str(script) if script.is_file() else shutil.which("vt-analyze")
    if exe is None:
        pytest.skip("vt-analyze is not installed in this environment")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    proc = subprocess.run([exe, "metrics", "--predictions", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "400"})
    assert proc.returncode == 2, proc.stderr
    assert str(bad) in flat(proc.stderr) and "model: Field required" in flat(proc.stderr)
