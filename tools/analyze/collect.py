"""`vt-analyze collect`: gather the runs of one experiment into metrics files and tables.

A plan (YAML or JSON, schema `CollectPlan`; experiments/expand.py writes one per experiment and
model) lists the runs, each with its work folder and settings, and which metric each grid
column shows. From each run folder collect reads only documented artifacts:

- `analyze/metrics.json` (vt-analyze metrics; schema core.schemas.Metrics) and its run.json;
- `train/summary.json`, `profile/summary.json`, `quantize/summary.json`, `judge/summary.json`
  (the steps' typed summaries, core.summaries), and `train/loss_history.json` (vt-train);
- the experiment's `headroom.json` (vt-analyze headroom), where the plan names one.

Written into OUT:

- `runs/<id>/metrics.json`: the run's metrics, with the steps' figures added under their
  metric_table names (`profile_*` beside a metrics.json, unprefixed for a profile-only run;
  `train_*`, `quantize_*`, `judge_*`), `meta.models` set to the model, `meta.run`,
  `meta.axes` (the run's settings), `meta.experiment`, `meta.sources`; beside it the run.json
  of the command that scored it and `<step>_run.json` of the steps before;
- `grid.{csv,md,tex}`: one row per run, the varied settings and the plan's table columns (plus
  relative columns such as robustness = accuracy / accuracy of the clean run);
- `curves.*` (loss curves), `radar.*` (judge scores), `samples.*` (per-sample latency),
  `headroom.*` where the runs produce them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from videotune.analyze.report import load_history, load_metrics
from videotune.analyze.tables import write_table
from videotune.core.io import InputError, atomic_write_text, read_json
from videotune.core.summaries import JudgeSummary, ProfileSummary, QuantizeSummary, TrainSummary, read_summary


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanRun(_Plan):
    id: str = Field(min_length=1)
    dir: Path  # the run's work folder (its step folders below it)
    settings: dict[str, Any] = {}  # what varies; scalar settings not in `hidden` become grid columns


class RelativeColumn(_Plan):
    column: str
    of: str  # a table column
    baseline: dict[str, Any]  # settings that pick the reference run


class PlotSpec(_Plan):
    kind: str
    stem: str
    title: str | None = None


class CollectPlan(_Plan):
    experiment: str
    model: str
    title: str = ""
    question: str = ""
    data: str = ""  # the data set, for the summary
    size: str = ""
    pipeline: str = ""  # the dvc.yaml that ran the experiment (its dvc.lock is the run record)
    spec: str = ""
    runs: list[PlanRun] = Field(min_length=1)
    hidden: list[str] = []
    table: dict[str, str] = {}  # column -> metric
    relative: list[RelativeColumn] = []
    name_column: bool = False
    headroom: Path | None = None  # vt-analyze headroom's headroom.json
    plots: list[PlotSpec] = []


def load_plan(path: Path) -> CollectPlan:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from err
    try:
        return CollectPlan.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in err.errors()[:5])
        raise InputError(f"{path}: not a collect plan ({problems})") from err


# --------------------------------------------------------------------------- step figures as metrics


def profile_figures(summary: ProfileSummary) -> dict[str, float]:
    """The profile's figures under their metric_table names (bytes as GB / MB)."""
    values: dict[str, float] = {}
    if summary.model_weights_bytes is not None:
        values["model_size_mb"] = summary.model_weights_bytes / 1e6
    if summary.latency_p50_s is None:  # no configuration ran (every one out of memory)
        return values
    values.update({"latency_p50_s": summary.latency_p50_s, "latency_p95_s": summary.latency_p95_s,
                   "latency_mean_s": summary.latency_mean_s, "samples_per_s": summary.samples_per_s,
                   "tokens_per_s": summary.tokens_per_s})
    if summary.peak_memory_bytes is not None:
        values["peak_memory_gb"] = summary.peak_memory_bytes / 1e9
    return {k: float(v) for k, v in values.items() if v is not None}


def train_figures(summary: TrainSummary) -> dict[str, float]:
    values: dict[str, float | None] = {
        "train_trainable_params": summary.trainable_params, "train_total_params": summary.total_params,
        "train_runtime_s": summary.runtime_s, "train_final_train_loss": summary.final_train_loss,
        "train_final_val_loss": summary.final_val_loss,
        "train_peak_memory_gb": (summary.peak_memory_bytes or 0) / 1e9 or None,
        "train_model_size_mb": (summary.model_size_bytes or 0) / 1e6 or None,
    }
    if summary.epoch_times_s:
        values["train_epoch_s"] = sum(summary.epoch_times_s) / len(summary.epoch_times_s)
    values["train_n_examples"] = summary.n_train
    return {k: float(v) for k, v in values.items() if v is not None}


def quantize_figures(summary: QuantizeSummary) -> dict[str, float]:
    fields = summary.model_dump(exclude={"tool", "method"})
    return {f"quantize_{k}": float(v) for k, v in fields.items() if v is not None}


def judge_figures(summary: JudgeSummary) -> dict[str, float | None]:
    values: dict[str, float | None] = {f"judge_{dim}": score for dim, score in summary.mean.items()}
    values["judge_overall"] = summary.overall_mean
    values["judge_parse_failure_rate"] = summary.parse_failure_rate
    return values


def _summary(path: Path, kind: type) -> Any:
    if not path.is_file():
        return None
    summary = read_summary(path)
    if not isinstance(summary, kind):
        raise InputError(f"{path}: a {summary.tool} summary where a {kind.__name__} was expected")
    return summary


# --------------------------------------------------------------------------- collect


def collect(plan: CollectPlan, out: Path) -> dict[str, int]:
    """Write OUT (see the module docstring); returns the number of rows of each table written."""
    out = Path(out)
    runs_dir = out / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs_dir.mkdir(parents=True)
    several = len(plan.runs) > 1
    rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    radar: list[dict[str, Any]] = []
    axes: list[str] = []
    for run in plan.runs:
        item = run.settings
        axes += [k for k in item if k not in axes and not isinstance(item[k], (dict, list)) and k not in plan.hidden]
        metrics_path = run.dir / "analyze" / "metrics.json"
        profile = _summary(run.dir / "profile" / "summary.json", ProfileSummary)
        sources = [p for p in (metrics_path, run.dir / "profile" / "summary.json") if p.is_file()]
        if not sources:
            raise InputError(f"{run.dir}: run {run.id} has neither analyze/metrics.json nor profile/summary.json")
        if metrics_path.is_file():
            metrics = load_metrics(metrics_path).model_dump(mode="json")
            run_json = metrics_path.parent / "run.json"
        else:
            metrics = {"n": 0, "metrics": {}, "ci95": {}, "per_class": {}, "meta": {"task": "profile"}}
            run_json = run.dir / "profile" / "run.json"
        values = metrics["metrics"]
        if profile is not None:
            metrics["n"] = metrics["n"] or (profile.n_samples if profile.latency_p50_s is not None else 0)
            prefix = "" if metrics["meta"].get("task") == "profile" else "profile_"
            # The profile's latency is measured under controlled conditions; generate's (if any) stays as is.
            for key, value in profile_figures(profile).items():
                values.setdefault(prefix + key, value)
            samples += [{"model": f"{plan.model} {run.id}" if several else plan.model, "run": run.id,
                         "latency_s": s.latency_s, "batch_size": s.batch_size, "frames": s.frames,
                         "resolution": s.resolution_px} for s in profile.samples]
        train = _summary(run.dir / "train" / "summary.json", TrainSummary)
        if train is not None:
            for key, value in train_figures(train).items():
                values.setdefault(key, value)
        history = run.dir / "train" / "loss_history.json"
        if history.is_file():
            load_history(history)  # validated; the points are taken as written (steps stay integers)
            raw = read_json(history)
            for split in ("train", "val"):
                curves += [{"run": run.id, "model": plan.model, "split": split, "metric": "loss", "step": pt["step"],
                            "epoch": pt.get("epoch"), "value": pt["loss"]}
                           for pt in raw.get(split, []) if pt.get("loss") is not None]
        judged = _summary(run.dir / "judge" / "summary.json", JudgeSummary)
        if judged is not None:
            for key, value in judge_figures(judged).items():
                values.setdefault(key, value)
            radar += [{"model": plan.model if not several else f"{plan.model} {run.id}", "dimension": dim,
                       "score": score} for dim, score in judged.mean.items()]
        quantized = _summary(run.dir / "quantize" / "summary.json", QuantizeSummary)
        if quantized is not None:
            for key, value in quantize_figures(quantized).items():
                values.setdefault(key, value)
        metrics["meta"].update({"models": [plan.model], "run": run.id, "axes": item, "experiment": plan.experiment,
                                "sources": [str(p) for p in sources]})
        (runs_dir / run.id).mkdir()
        atomic_write_text(runs_dir / run.id / "metrics.json", json.dumps(metrics, indent=1))
        if run_json.is_file():
            shutil.copyfile(run_json, runs_dir / run.id / "run.json")
        for step in ("train", "profile", "quantize"):
            step_json = run.dir / step / "run.json"
            if step_json.is_file() and step_json != run_json:
                shutil.copyfile(step_json, runs_dir / run.id / f"{step}_run.json")
        row: dict[str, Any] = {"run": run.id, "model": plan.model, **{k: v for k, v in item.items() if k in axes}}
        if plan.name_column:
            row["name"] = run.id
        for column, source in plan.table.items():
            row[column] = values.get(source)
        rows.append(row)
    for relative in plan.relative:
        # e.g. robustness = accuracy / accuracy of the clean run (seed 000, RQ1.3.3)
        ref = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in relative.baseline.items())]
        base_value = ref[0].get(relative.of) if ref else None
        for r in rows:
            v = r.get(relative.of)
            r[relative.column] = v / base_value if v is not None and base_value else None
    columns = ["run", "model", *(["name"] if plan.name_column else []), *axes, *plan.table,
               *[r.column for r in plan.relative]]
    name = f"{plan.experiment} on {plan.model}"
    written = {"grid": len(rows)}
    write_table(out, "grid", columns, rows, caption=f"{name}: {plan.title}")
    if curves:
        write_table(out, "curves", ["run", "model", "split", "metric", "step", "epoch", "value"], curves,
                    caption=f"{plan.experiment}: training and validation loss per run")
        written["curves"] = len(curves)
    if radar:
        write_table(out, "radar", ["model", "dimension", "score"], radar, caption=f"{plan.experiment}: judge scores (1-5)")
        written["radar"] = len(radar)
    if samples:
        write_table(out, "samples", list(samples[0]), samples, caption=f"{plan.experiment}: per-sample latency")
        written["samples"] = len(samples)
    if plan.headroom is not None and plan.headroom.is_file():
        report = read_json(plan.headroom)
        hrows = [{"model": model, "metric": metric, "current": r.get("value"), "minimum": r.get("threshold"),
                  "kind": r.get("kind"), "headroom": r.get("headroom"), "status": r.get("status")}
                 for model, per in report.get("models", {}).items() for metric, r in per.items()
                 if r.get("kind") == "minimum"]
        write_table(out, "headroom", ["model", "metric", "current", "minimum", "kind", "headroom", "status"], hrows,
                    caption=f"{plan.experiment}: headroom over the minimum acceptable values")
        written["headroom"] = len(hrows)
    return written


def experiment_preface(plan: CollectPlan, out: Path) -> str:
    """What summary.md says above the per-run tables: the question, the grid and the plots."""
    grid = (out / "grid.md").read_text(encoding="utf-8").strip() if (out / "grid.md").is_file() else ""
    links = ["[CSV](grid.csv), [LaTeX](grid.tex)"]
    for stem, what in (("samples", "per-sample latency [CSV](samples.csv)"), ("headroom", "[headroom](headroom.csv)"),
                       ("curves", "loss curves [CSV](curves.csv)")):
        if (out / f"{stem}.csv").is_file():
            links.append(what)
    parts = [f"# {plan.experiment}: {plan.title}", "", f"**Question.** {plan.question}", "",
             f"Model `{plan.model}`, data `{plan.data}`, size `{plan.size}`, {len(plan.runs)} run(s); pipeline "
             f"`{plan.pipeline}` (its dvc.lock is the run record), spec `{plan.spec}`.", "", "## Grid", "", grid, "",
             ", ".join(links) + ".", ""]
    if plan.plots:
        parts += ["## Plots", ""]
        for plot in plan.plots:
            parts += [f"![{plot.kind}](plots/{plot.stem}/{plot.stem}.png)", "",
                      f"[PDF](plots/{plot.stem}/{plot.stem}.pdf)", ""]
    parts += ["## Per run", ""]
    return "\n".join(parts)
