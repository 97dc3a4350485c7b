"""vt-analyze: score predictions (`metrics`) and write a report with plots (`report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console
from rich.table import Table

from videotune.analyze.metrics import aqa_metrics
from videotune.analyze.report import load_history, load_metrics, provenance, summary_rows, write_report
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, read_json, read_jsonl, write_json
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Prediction

app = make_app("Score model predictions against their ground truth and write reports.")
console = Console()


@app.callback()
def _group() -> None:
    """Score model predictions against their ground truth and write reports."""
    # An explicit callback keeps `metrics` and `report` as required subcommands, even if
    # only one is registered, instead of typer collapsing the app into a single command.


class MetricsConfig(CommandConfig):
    """Score predictions.jsonl: accuracy, per-error P/R/F1, span localisation, baselines and bootstrap 95% CIs.

    Writes OUT/metrics.json and OUT/run.json.
    """

    predictions: Path = Field(description="predictions.jsonl written by vt-infer; each meta holds the ground truth")
    task: Literal["aqa"] = Field("aqa", description="task whose metrics to compute (aqa: exercise form)")
    out: Path = Field(description="output folder (created if missing)")
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0: no intervals)")
    seed: int = Field(0, description="seed of the bootstrap resampling")


def run_metrics(config: MetricsConfig) -> None:
    manifest = RunManifest("analyze", "metrics", config.model_dump(mode="json"), config.out, seed=config.seed)
    predictions = read_jsonl(config.predictions, Prediction)
    try:
        metrics = aqa_metrics(predictions, n_bootstrap=config.n_bootstrap, seed=config.seed)
    except InputError as err:
        raise InputError(f"{config.predictions}: {err}") from err
    write_json(config.out / "metrics.json", metrics.model_dump(mode="json"))
    manifest.add_input(config.predictions, "predictions")
    manifest.write(outputs={"metrics": "metrics.json"})

    table = Table(title=f"{config.task} metrics (n={metrics.n})")
    for column in ("metric", "value", "95% CI", "baseline"):
        table.add_column(column)
    for row in summary_rows(metrics):
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote {config.out / 'metrics.json'}")


class ReportConfig(CommandConfig):
    """Write REPORT.md with metric tables and plots (loss curve, exercise confusion, per-error F1) as PNG and PDF.

    Writes OUT/REPORT.md, the plots and OUT/run.json.
    """

    metrics: Path = Field(description="metrics.json written by `vt-analyze metrics`")
    history: Path | None = Field(
        None, description='training history JSON {"train": [{step, epoch, loss}], "val": [...]} for the loss curve'
    )
    out: Path = Field(description="output folder (created if missing)")
    title: str = Field("AQA evaluation", description="title of the report")


def run_report(config: ReportConfig) -> None:
    manifest = RunManifest("analyze", "report", config.model_dump(mode="json"), config.out)
    metrics = load_metrics(config.metrics)
    history = load_history(config.history) if config.history is not None else None
    beside = config.metrics.parent / "run.json"
    scored_by = read_json(beside) if beside.is_file() else None
    target = write_report(metrics, history, config.out, config.title, provenance(metrics, config.metrics, scored_by))
    manifest.add_input(config.metrics, "metrics")
    if config.history is not None:
        manifest.add_input(config.history, "history")
    manifest.write(outputs={"report": target.name})
    console.print(f"wrote {target}")


add_command(
    app, "metrics", MetricsConfig, run_metrics,
    example="vt-analyze metrics --predictions runs/demo/infer/predictions.jsonl --out runs/demo/analyze",
)
add_command(
    app, "report", ReportConfig, run_report,
    example="vt-analyze report --metrics runs/demo/analyze/metrics.json --history runs/demo/train/history.json "
    "--out runs/demo/report --title 'Demo'",
)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
