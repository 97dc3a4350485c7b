"""Results across experiments: per-experiment summary.md and the master RESULTS_SUMMARY.md.

Layout read: RESULTS/<experiment>/<run>/metrics.json (any depth below the experiment; the run
is the folder path below it). Each metrics.json says its task and model (meta.task,
meta.models). Written:

- OUT/<experiment>/summary.md, OUT/<experiment>/table.{csv,md,tex}: one row per run with the
  task's headline metrics and their 95% intervals, the best run by the experiment's primary
  metric, and (with a costs file) GPU-hours per accuracy point (seed 001's cost-benefit:
  GPU-hours / accuracy in percent, and the marginal GPU-hours per extra point over the
  cheapest run), plus a bar chart of the primary metric with its intervals;
- OUT/RESULTS_SUMMARY.md, OUT/results.{csv,md,tex} (every metric of every run, long form),
  OUT/models_x_experiments.{csv,md,tex} (each model's best run per experiment on the primary
  metric), OUT/recommendations.{csv,md,tex}: use case -> best model, with the runner-up and
  whether their 95% intervals overlap (then the data do not separate them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotune.analyze import metric_table
from videotune.analyze.report import load_metrics, plt, save_figure
from videotune.analyze.tables import fmt, markdown_table, write_table
from videotune.core.io import InputError, atomic_write_text
from videotune.core.schemas import Metrics


@dataclass(frozen=True)
class UseCase:
    name: str
    metric: str
    goal: str = "max"  # max | min
    experiments: tuple[str, ...] = ()  # empty: every experiment that reports the metric


DEFAULT_USE_CASES = (
    UseCase("exercise identification", "exercise_accuracy"),
    UseCase("form-error detection", "error_macro_f1"),
    UseCase("temporal error localisation", "span_map_iou0.5"),
    UseCase("corrective feedback text", "bertscore_f1"),
    UseCase("clinical VQA", "normalized_accuracy"),
    UseCase("lowest latency", "latency_p50_s", "min"),
)


@dataclass
class Run:
    experiment: str
    run: str
    path: Path
    metrics: Metrics

    @property
    def task(self) -> str:
        return str(self.metrics.meta.get("task", "aqa"))

    @property
    def model(self) -> str:
        models = self.metrics.meta.get("models") or []
        return ", ".join(map(str, models)) if models else self.run

    def value(self, metric: str) -> float | None:
        return self.metrics.metrics.get(metric)

    def ci(self, metric: str) -> tuple[float, float] | None:
        ci = self.metrics.ci95.get(metric)
        return (float(ci[0]), float(ci[1])) if ci else None


def discover(results: Path, runs_glob: str = "**/metrics.json") -> dict[str, list[Run]]:
    """Experiments and their runs under RESULTS (see the module docstring); `runs_glob` (relative to an
    experiment's folder) picks its runs' metrics.json files, e.g. `*/runs/*/metrics.json`."""
    results = Path(results)
    if not results.is_dir():
        raise InputError(f"{results}: not a folder of experiments")
    experiments: dict[str, list[Run]] = {}
    for exp_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        runs = []
        for path in sorted(exp_dir.glob(runs_glob)):
            rel = path.parent.relative_to(exp_dir)
            runs.append(Run(exp_dir.name, str(rel) if str(rel) != "." else exp_dir.name, path, load_metrics(path)))
        if runs:
            experiments[exp_dir.name] = runs
    if not experiments:
        raise InputError(f"{results}: no <experiment>/<run>/metrics.json found")
    return experiments


def load_costs(path: Path) -> dict[tuple[str, str], float]:
    """(experiment, run) -> GPU-hours, from a CSV with columns experiment, run, gpu_hours."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    table = pd.read_csv(path)
    missing = {"experiment", "run", "gpu_hours"} - set(table.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return {(str(e), str(r)): float(h) for e, r, h in zip(table["experiment"], table["run"], table["gpu_hours"])}


def load_use_cases(path: Path) -> tuple[UseCase, ...]:
    """Use cases from YAML: a list of {use_case, metric, goal: max|min, experiments: [...]}."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else None
    if not isinstance(raw, list):
        raise InputError(f"{path}: expected a YAML list of {{use_case, metric, goal, experiments}}")
    cases = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "use_case" not in item or "metric" not in item:
            raise InputError(f"{path}: entry {i} needs use_case and metric")
        goal = str(item.get("goal", "min" if metric_table.lower_is_better(str(item["metric"])) else "max"))
        if goal not in ("max", "min"):
            raise InputError(f"{path}: entry {i}: goal must be max or min")
        cases.append(UseCase(str(item["use_case"]), str(item["metric"]), goal, tuple(map(str, item.get("experiments", [])))))
    return tuple(cases)


def headline_metrics(runs: list[Run]) -> list[str]:
    """The headline metrics (metric_table) of the runs' tasks that at least one run reports, in table order."""
    names: list[str] = []
    for run in runs:
        for name in metric_table.headline_names(run.task, run.metrics.metrics):
            if name not in names and any(r.value(name) is not None for r in runs):
                names.append(name)
    return names


def primary_metric(runs: list[Run]) -> str | None:
    names = headline_metrics(runs)
    return next((n for n in names if metric_table.higher_is_better(n)), names[0] if names else None)


def _better(a: float, b: float, goal: str) -> bool:
    return a > b if goal == "max" else a < b


def best_run(runs: list[Run], metric: str, goal: str = "max") -> Run | None:
    scored = [r for r in runs if r.value(metric) is not None]
    if not scored:
        return None
    best = scored[0]
    for r in scored[1:]:
        if _better(r.value(metric), best.value(metric), goal):
            best = r
    return best


def experiment_rows(runs: list[Run], metrics: list[str], costs: dict[tuple[str, str], float] | None) -> list[dict[str, Any]]:
    """One row per run: value and interval of each metric, and the cost columns where known."""
    primary = primary_metric(runs)
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.run, "model": run.model, "task": run.task, "n": run.metrics.n}
        for m in metrics:
            ci = run.ci(m)
            row[m] = run.value(m)
            row[f"{m} ci_lo"], row[f"{m} ci_hi"] = (ci if ci else (None, None))
        if costs is not None:
            hours = costs.get((run.experiment, run.run))
            row["gpu_hours"] = hours
            value = run.value(primary) if primary else None
            row["gpu_hours_per_point"] = hours / (100 * value) if hours is not None and value else None
        rows.append(row)
    if costs is not None and primary:
        costed = [r for r in rows if r["gpu_hours"] is not None and r.get(primary) is not None]
        if costed:
            cheapest = min(costed, key=lambda r: r["gpu_hours"])
            for r in costed:
                gain = 100 * (r[primary] - cheapest[primary])
                extra = r["gpu_hours"] - cheapest["gpu_hours"]
                r["marginal_gpu_hours_per_point"] = extra / gain if gain > 0 else None
    return rows


def _md_rows(rows: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    """Value and interval in one readable cell per metric."""
    out = []
    for row in rows:
        cells = {k: v for k, v in row.items() if not k.endswith((" ci_lo", " ci_hi"))}
        for m in metrics:
            lo, hi = row.get(f"{m} ci_lo"), row.get(f"{m} ci_hi")
            cells[m] = fmt(row.get(m)) + (f" [{fmt(lo)}, {fmt(hi)}]" if lo is not None else "")
        out.append(cells)
    return out


def _bar_chart(runs: list[Run], metric: str, out_dir: Path, stem: str) -> list[Path]:
    labels = [r.run for r in runs]
    values = [r.value(metric) for r in runs]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(runs) + 2), 4))
    heights = [v if v is not None else 0.0 for v in values]
    errors = [[0, 0] if r.ci(metric) is None or v is None else [v - r.ci(metric)[0], r.ci(metric)[1] - v]
              for r, v in zip(runs, values)]
    ax.bar(range(len(runs)), heights, yerr=np.array(errors).T if errors else None, capsize=3, color="C0")
    ax.set_xticks(range(len(runs)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (95% bootstrap intervals)")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, out_dir, stem)


def write_experiment_summary(experiment: str, runs: list[Run], out_dir: Path,
                             costs: dict[tuple[str, str], float] | None = None, flat: bool = False,
                             preface: str | None = None) -> Path:
    """OUT/<experiment>/summary.md (OUT/summary.md if flat), table.{csv,md,tex} and the primary metric's bar chart.

    `preface` (markdown: the question, the grid, the plots) replaces the title line and heads the page.
    """
    exp_dir = Path(out_dir) if flat else Path(out_dir) / experiment
    exp_dir.mkdir(parents=True, exist_ok=True)
    metrics = headline_metrics(runs)
    primary = primary_metric(runs)
    rows = experiment_rows(runs, metrics, costs)
    columns = ["run", "model", "task", "n"]
    for m in metrics:
        columns += [m, f"{m} ci_lo", f"{m} ci_hi"]
    cost_cols = ["gpu_hours", "gpu_hours_per_point", "marginal_gpu_hours_per_point"] if costs is not None else []
    write_table(exp_dir, "table", columns + cost_cols, rows, caption=f"{experiment}: results per run (95% bootstrap CIs)")
    parts = [f"# {experiment}", "", f"{len(runs)} run(s); metrics with percentile bootstrap 95% intervals.", ""]
    parts += [markdown_table(["run", "model", "n", *metrics, *cost_cols], _md_rows(rows, metrics)), ""]
    if primary:
        best = best_run(runs, primary, "min" if metric_table.lower_is_better(primary) else "max")
        if best is not None:
            ci = best.ci(primary)
            parts += [f"Best run by `{primary}`: **{best.run}** ({best.model}) at {fmt(best.value(primary))}"
                      + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "") + ".", ""]
        _bar_chart(runs, primary, exp_dir, "primary_metric")
        parts += [f"![{primary} per run](primary_metric.png)", "", "[PDF](primary_metric.pdf)", ""]
    if cost_cols:
        parts += ["Cost: `gpu_hours_per_point` = GPU-hours / (primary metric in percent); "
                  "`marginal_gpu_hours_per_point` = extra GPU-hours per extra point over the cheapest run.", ""]
    parts += ["Tables: [CSV](table.csv), [LaTeX](table.tex). Sources: "
              + ", ".join(f"`{r.path}`" for r in runs) + ".", ""]
    target = exp_dir / "summary.md"
    text = "\n".join(parts)
    if preface is not None:
        text = preface + "\n" + text.split("\n", 1)[-1].strip() + "\n"
    atomic_write_text(target, text)
    return target


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def recommendations(experiments: dict[str, list[Run]], use_cases: tuple[UseCase, ...]) -> list[dict[str, Any]]:
    """Use case -> best model over the runs reporting its metric (best run per model compared)."""
    rows = []
    for case in use_cases:
        runs = [r for exp, rs in experiments.items() for r in rs
                if (not case.experiments or exp in case.experiments) and r.value(case.metric) is not None]
        if not runs:
            continue
        per_model: dict[str, Run] = {}
        for r in runs:
            if r.model not in per_model or _better(r.value(case.metric), per_model[r.model].value(case.metric), case.goal):
                per_model[r.model] = r
        ranked = sorted(per_model.values(), key=lambda r: r.value(case.metric), reverse=case.goal == "max")
        best = ranked[0]
        second = ranked[1] if len(ranked) > 1 else None
        overlap = _overlap(best.ci(case.metric), second.ci(case.metric)) if second else None
        rows.append({
            "use_case": case.name, "metric": case.metric, "goal": case.goal, "best_model": best.model,
            "experiment": best.experiment, "run": best.run, "value": best.value(case.metric),
            "runner_up": second.model if second else None,
            "runner_up_value": second.value(case.metric) if second else None,
            "separated_at_95": None if overlap is None else not overlap,
        })
    return rows


def write_one_experiment(results: Path, experiment: str, out_dir: Path, costs_path: Path | None = None,
                         runs_glob: str = "**/metrics.json", preface: str | None = None) -> Path:
    """RESULTS holds the runs of one experiment (RESULTS/<run>/metrics.json): OUT/summary.md and its tables."""
    results = Path(results)
    paths = sorted(results.glob(runs_glob)) if results.is_dir() else []
    if not paths:
        raise InputError(f"{results}: no <run>/metrics.json found")
    runs = [Run(experiment, str(p.parent.relative_to(results)), p, load_metrics(p)) for p in paths]
    costs = load_costs(costs_path) if costs_path is not None else None
    return write_experiment_summary(experiment, runs, out_dir, costs, flat=True, preface=preface)


def write_results_summary(results: Path, out_dir: Path, costs_path: Path | None = None,
                          use_cases_path: Path | None = None, runs_glob: str = "**/metrics.json") -> Path:
    """Every experiment's summary and the master RESULTS_SUMMARY.md; returns its path."""
    experiments = discover(results, runs_glob)
    costs = load_costs(costs_path) if costs_path is not None else None
    use_cases = load_use_cases(use_cases_path) if use_cases_path is not None else DEFAULT_USE_CASES
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for experiment, runs in experiments.items():
        write_experiment_summary(experiment, runs, out_dir, costs)

    long_rows = []
    for experiment, runs in experiments.items():
        for r in runs:
            for name, value in r.metrics.metrics.items():
                ci = r.ci(name)
                long_rows.append({"experiment": experiment, "run": r.run, "model": r.model, "task": r.task,
                                  "metric": name, "value": value, "ci_lo": ci[0] if ci else None,
                                  "ci_hi": ci[1] if ci else None, "n": r.metrics.n})
    write_table(out_dir, "results", ["experiment", "run", "model", "task", "metric", "value", "ci_lo", "ci_hi", "n"],
                long_rows, caption="All metrics of all runs (95% bootstrap CIs)")

    models = sorted({r.model for runs in experiments.values() for r in runs})
    primaries = {exp: primary_metric(runs) for exp, runs in experiments.items()}
    wide_cols = ["model", *[f"{exp}: {m}" for exp, m in primaries.items() if m]]
    wide_rows = []
    for model in models:
        row: dict[str, Any] = {"model": model}
        for exp, metric in primaries.items():
            if not metric:
                continue
            mine = [r for r in experiments[exp] if r.model == model]
            best = best_run(mine, metric, "min" if metric_table.lower_is_better(metric) else "max")
            row[f"{exp}: {metric}"] = best.value(metric) if best else None
        wide_rows.append(row)
    write_table(out_dir, "models_x_experiments", wide_cols, wide_rows,
                caption="Each model's best run per experiment, on the experiment's primary metric")

    rec_rows = recommendations(experiments, use_cases)
    rec_cols = ["use_case", "metric", "goal", "best_model", "value", "experiment", "run", "runner_up",
                "runner_up_value", "separated_at_95"]
    write_table(out_dir, "recommendations", rec_cols, rec_rows, caption="Recommendation matrix: use case to best model")

    parts = ["# Results summary", "",
             f"{sum(len(r) for r in experiments.values())} runs in {len(experiments)} experiment(s), "
             f"{len(models)} model(s), read from `{results}`. Values with percentile bootstrap 95% intervals "
             "in each experiment's summary.", ""]
    parts += ["## Models x experiments", "", "Each cell: the model's best run on the experiment's primary metric.", "",
              markdown_table(wide_cols, wide_rows), ""]
    parts += ["## Recommendation matrix", "",
              "`separated_at_95`: no when the 95% intervals of the best and the runner-up overlap "
              "(the data do not tell them apart).", "", markdown_table(rec_cols, rec_rows) if rec_rows else
              "No use case has a metric that these results report.", ""]
    parts += ["## Experiments", ""]
    for experiment, runs in experiments.items():
        primary = primaries[experiment]
        best = best_run(runs, primary, "min" if metric_table.lower_is_better(primary) else "max") if primary else None
        line = f"- [{experiment}]({experiment}/summary.md): {len(runs)} run(s)"
        if best is not None:
            line += f"; best `{primary}` {fmt(best.value(primary))} ({best.run})"
        parts.append(line)
    parts += ["", "Tables: [all results](results.csv) ([LaTeX](results.tex)), "
              "[models x experiments](models_x_experiments.csv) ([LaTeX](models_x_experiments.tex)), "
              "[recommendations](recommendations.csv) ([LaTeX](recommendations.tex)).", ""]
    target = out_dir / "RESULTS_SUMMARY.md"
    atomic_write_text(target, "\n".join(parts))
    return target
