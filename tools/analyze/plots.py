"""The plots the research questions ask for, each a function of a table (pandas DataFrame).

Every `plot_<kind>(data, out_dir, stem, title)` writes OUT/stem.png and OUT/stem.pdf and
returns their paths; the numbers a plot shows are computed by plain functions beside it
(`convergence_steps`, `samples_to_reach`, `robustness`, `pareto_front`, `headroom`) so that
they can be tabulated and tested without drawing. The columns each kind reads are listed in
KINDS (and in the README); `vt-analyze plot` loads CSV, JSON or JSONL tables into them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from videotune.analyze import metric_table
from videotune.analyze.report import plt, save_figure
from videotune.core.io import InputError

# kind -> (required columns, optional columns, what it shows)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "learning_curves": (("run", "step", "value"), ("split", "metric"), "loss/metric over steps per run (RQ1.1.2)"),
    "accuracy_vs_params": (("trainable_params", "accuracy"), ("model", "label"), "accuracy vs trainable parameters (RQ1.1.1)"),
    "convergence": (("run", "step", "accuracy"), (), "steps to 90/95/99% of final accuracy (RQ1.1.2)"),
    "data_efficiency": (("model", "size", "accuracy"), ("ci_lo", "ci_hi"), "accuracy vs training-set size (RQ1.1.3)"),
    "degradation": (("model", "kind", "level", "accuracy"), (), "accuracy vs degradation level per kind (RQ1.3.3)"),
    "degradation_heatmap": (("model", "kind", "level", "accuracy"), (),
                            "model x (kind, level) accuracy, or robustness when a kind 'clean' row exists (RQ1.3.3)"),
    "temporal_heatmap": (("frames", "fps", "accuracy"), ("model",), "accuracy over frames x fps (RQ1.2)"),
    "latency_violin": (("model", "latency_s"), (), "latency distribution per model (RQ3.1.1)"),
    "batch_scaling": (("model", "batch_size"), ("latency_s", "throughput", "memory_gb"), "latency/throughput/memory vs batch (RQ3.1.2)"),
    "resolution_frames_heatmap": (("resolution", "frames", "value"), ("model", "metric"), "a value over resolution x frames (RQ3.1.3)"),
    "pareto": (("name", "accuracy", "latency_s", "memory_gb"), (), "accuracy vs latency x memory, frontier marked (RQ3.1.3)"),
    "headroom": (("model", "metric", "current", "minimum"), (),
                 "room to the acceptable bound per metric, in its better direction (RQ3.2.1)"),
    "radar": (("model", "dimension", "score"), (), "judge dimensions per model (RQ5.2.1)"),
    "confusion": ((), (), "exercise and error confusion matrices from a metrics.json (RQ4.1.2, RQ2.1.1)"),
    "pr_curve": ((), (), "span-detection precision-recall curves from a metrics.json (RQ2.1.1)"),
}
_EPS = 1e-12
# Columns that other files name differently (predictions.jsonl: model, total_s).
ALIASES = {"latency_s": ("total_s",), "name": ("model", "run", "config")}


def require(data: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The table with the kind's columns (aliases renamed); InputError naming what is missing."""
    required, _, _ = KINDS[kind]
    data = data.copy()
    for column in required:
        if column not in data.columns:
            for alias in ALIASES.get(column, ()):
                if alias in data.columns:
                    data[column] = data[alias]
                    break
    missing = [c for c in required if c not in data.columns]
    if missing:
        raise InputError(f"plot {kind}: the data lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, data.columns))})")
    if data.empty:
        raise InputError(f"plot {kind}: the data has no rows")
    return data


def _finish(fig, ax, out_dir: Path, stem: str, title: str | None, legend: bool = True) -> list[Path]:
    if title:
        ax.set_title(title)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return save_figure(fig, Path(out_dir), stem)


# --------------------------------------------------------------------------- numbers


def convergence_steps(data: pd.DataFrame, fractions: tuple[float, ...] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """Per run: the first step whose accuracy reaches fraction x the final (last-step) accuracy."""
    rows = []
    for run, group in data.sort_values("step").groupby("run", sort=True):
        final = float(group["accuracy"].iloc[-1])
        row: dict[str, Any] = {"run": run, "final_accuracy": final, "final_step": float(group["step"].iloc[-1])}
        for f in fractions:
            # The tolerance keeps float rounding (0.9 * 0.8 = 0.7200000000000001) from hiding a hit.
            reached = group[group["accuracy"] >= f * final - _EPS] if final > 0 else group.iloc[0:0]
            row[f"steps_to_{round(f * 100)}pct"] = float(reached["step"].iloc[0]) if len(reached) else None
        rows.append(row)
    return pd.DataFrame(rows)


def samples_to_reach(data: pd.DataFrame, fractions: tuple[float, ...] = (0.9, 0.95)) -> pd.DataFrame:
    """Per model: the smallest training size whose accuracy reaches fraction x the model's best."""
    rows = []
    for model, group in data.sort_values("size").groupby("model", sort=True):
        best = float(group["accuracy"].max())
        row: dict[str, Any] = {"model": model, "max_accuracy": best}
        for f in fractions:
            reached = group[group["accuracy"] >= f * best - _EPS]
            row[f"size_for_{round(f * 100)}pct"] = float(reached["size"].iloc[0]) if len(reached) else None
        rows.append(row)
    return pd.DataFrame(rows)


def robustness(data: pd.DataFrame) -> pd.DataFrame:
    """Degraded accuracy / clean accuracy per model, kind and level (rows of kind "clean" give the clean one)."""
    clean = data[data["kind"] == "clean"].groupby("model")["accuracy"].mean()
    out = data[data["kind"] != "clean"].copy()
    out["robustness"] = [a / clean[m] if m in clean and clean[m] > 0 else np.nan for m, a in zip(out["model"], out["accuracy"])]
    return out


def pareto_front(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats (cost <= and accuracy >=, one of them strictly)."""
    cost, accuracy = np.asarray(cost, float), np.asarray(accuracy, float)
    front = np.ones(cost.size, dtype=bool)
    for i in range(cost.size):
        dominated = (cost <= cost[i]) & (accuracy >= accuracy[i]) & ((cost < cost[i]) | (accuracy > accuracy[i]))
        front[i] = not dominated.any()
    return front


def headroom(data: pd.DataFrame) -> pd.DataFrame:
    """Signed room to the acceptable bound per model and metric, in the metric's better direction
    (metric_table): current - bound where higher is better, bound - current where lower is."""
    out = data.copy()
    sign = np.array([1.0 if metric_table.higher_is_better(str(m)) else -1.0 for m in out["metric"]])
    out["headroom"] = sign * (out["current"] - out["minimum"])
    return out


# --------------------------------------------------------------------------- plots


def plot_learning_curves(data: pd.DataFrame, out_dir: Path, stem: str = "learning_curves", title: str | None = None):
    data = require(data, "learning_curves")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    split = data["split"] if "split" in data.columns else pd.Series(["" for _ in range(len(data))], index=data.index)
    for (run, part), group in data.assign(split=split).groupby(["run", "split"], sort=True):
        group = group.sort_values("step")
        style = "o-" if part == "val" else "-"
        ax.plot(group["step"], group["value"], style, label=f"{run} {part}".strip(), linewidth=1.2, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel(str(data["metric"].iloc[0]) if "metric" in data.columns else "value")
    ax.grid(alpha=0.3)
    return _finish(fig, ax, out_dir, stem, title or "Learning curves")


def plot_accuracy_vs_params(data: pd.DataFrame, out_dir: Path, stem: str = "accuracy_vs_params", title: str | None = None):
    data = require(data, "accuracy_vs_params")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups = data.groupby("model", sort=True) if "model" in data.columns else [("", data)]
    for model, group in groups:
        group = group.sort_values("trainable_params")
        ax.plot(group["trainable_params"], group["accuracy"], "o-", label=str(model) or None)
        if "label" in group.columns:
            for x, y, lab in zip(group["trainable_params"], group["accuracy"], group["label"]):
                ax.annotate(str(lab), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3, which="both")
    return _finish(fig, ax, out_dir, stem, title or "Accuracy vs trainable parameters")


def plot_convergence(data: pd.DataFrame, out_dir: Path, stem: str = "convergence", title: str | None = None):
    data = require(data, "convergence")
    table = convergence_steps(data)
    columns = [c for c in table.columns if c.startswith("steps_to_")]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(table) + 2), 4.5))
    x = np.arange(len(table))
    width = 0.8 / len(columns)
    for k, column in enumerate(columns):
        heights = [v if v is not None and not (isinstance(v, float) and math.isnan(v)) else 0 for v in table[column]]
        ax.bar(x + (k - (len(columns) - 1) / 2) * width, heights, width, label=column.replace("steps_to_", "").replace("pct", "% of final"))
    ax.set_xticks(x, [str(r) for r in table["run"]], rotation=30, ha="right")
    ax.set_ylabel("steps")
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, ax, out_dir, stem, title or "Convergence: steps to a share of the final accuracy")


def plot_data_efficiency(data: pd.DataFrame, out_dir: Path, stem: str = "data_efficiency", title: str | None = None):
    data = require(data, "data_efficiency")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for model, group in data.groupby("model", sort=True):
        group = group.sort_values("size")
        ax.plot(group["size"], group["accuracy"], "o-", label=str(model))
        if {"ci_lo", "ci_hi"} <= set(group.columns):
            ax.fill_between(group["size"], group["ci_lo"], group["ci_hi"], alpha=0.2)
    ax.set_xlabel("training examples (or fraction)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    return _finish(fig, ax, out_dir, stem, title or "Data efficiency")


def plot_degradation(data: pd.DataFrame, out_dir: Path, stem: str = "degradation", title: str | None = None):
    data = require(data, "degradation")
    kinds = [k for k in sorted(data["kind"].unique()) if k != "clean"]
    clean = data[data["kind"] == "clean"].groupby("model")["accuracy"].mean()
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(3.6 * max(1, len(kinds)), 3.8), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for model, group in data[data["kind"] == kind].groupby("model", sort=True):
            group = group.sort_values("level")
            (line,) = ax.plot(list(group["level"]), list(group["accuracy"]), "o-", label=str(model))
            if model in clean:
                # the clean clips as a reference line: no level of a kind stands for "clean"
                # (lighting 0 %, say, but not CRF 0 or blur 0 px)
                ax.axhline(float(clean[model]), color=line.get_color(), linestyle="--", linewidth=1, alpha=0.7,
                           label=f"{model} (clean)")
        ax.set_title(str(kind))
        ax.set_xlabel("level")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    if title:
        fig.suptitle(title)
    return _finish(fig, axes[0][-1], out_dir, stem, None)


def _heatmap(ax, matrix: np.ndarray, rows: list[str], cols: list[str], fmt: str = "{:.3f}", cmap: str = "viridis"):
    image = ax.imshow(matrix, aspect="auto", cmap=cmap)
    finite = matrix[np.isfinite(matrix)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else fmt.format(v), ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(v) and v < middle else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    return image


def _pivot_heatmap(data: pd.DataFrame, y: str, x: str, value: str, out_dir: Path, stem: str, title: str,
                   xlabel: str, ylabel: str, facet: str | None = None, cmap: str = "viridis"):
    facets = sorted(data[facet].unique()) if facet and facet in data.columns else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(4.8 * len(facets), 4.2), squeeze=False)
    for ax, f in zip(axes[0], facets):
        part = data if f is None else data[data[facet] == f]
        table = part.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
        image = _heatmap(ax, table.to_numpy(float), [str(v) for v in table.index], [str(v) for v in table.columns], cmap=cmap)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(str(f) if f is not None else title, fontsize=9)
        fig.colorbar(image, ax=ax)
    if facets != [None]:
        fig.suptitle(title)
    return _finish(fig, axes[0][-1], out_dir, stem, None, legend=False)


def plot_degradation_heatmap(data: pd.DataFrame, out_dir: Path, stem: str = "degradation_heatmap", title: str | None = None):
    data = require(data, "degradation_heatmap")
    has_clean = (data["kind"] == "clean").any()
    table = robustness(data) if has_clean else data.assign(robustness=data["accuracy"])
    table = table.assign(condition=[f"{k}@{lv}" for k, lv in zip(table["kind"], table["level"])])
    name = "robustness (degraded / clean)" if has_clean else "accuracy"
    return _pivot_heatmap(table, "model", "condition", "robustness", out_dir, stem, title or f"Degradation: {name}",
                          "kind @ level", "model")


def plot_temporal_heatmap(data: pd.DataFrame, out_dir: Path, stem: str = "temporal_heatmap", title: str | None = None):
    data = require(data, "temporal_heatmap")
    return _pivot_heatmap(data, "frames", "fps", "accuracy", out_dir, stem, title or "Accuracy over frames x fps",
                          "fps", "frames", facet="model")


def plot_resolution_frames_heatmap(data: pd.DataFrame, out_dir: Path, stem: str = "resolution_frames_heatmap",
                                   title: str | None = None):
    data = require(data, "resolution_frames_heatmap")
    metric = str(data["metric"].iloc[0]) if "metric" in data.columns else "value"
    return _pivot_heatmap(data, "resolution", "frames", "value", out_dir, stem, title or f"{metric} over resolution x frames",
                          "frames", "resolution", facet="model", cmap="magma")


def plot_latency_violin(data: pd.DataFrame, out_dir: Path, stem: str = "latency_violin", title: str | None = None):
    data = require(data, "latency_violin")
    models = sorted(data["model"].unique())
    samples = [data.loc[data["model"] == m, "latency_s"].dropna().to_numpy(float) for m in models]
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(models) + 2), 4.5))
    ax.violinplot([s if s.size else np.array([np.nan]) for s in samples], showmedians=True)
    for k, s in enumerate(samples, start=1):
        if s.size:
            ax.annotate(f"p50 {np.percentile(s, 50):.3f}s\np95 {np.percentile(s, 95):.3f}s", (k, float(s.max())),
                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xticks(range(1, len(models) + 1), [str(m) for m in models], rotation=20, ha="right")
    ax.set_ylabel("latency (s)")
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, ax, out_dir, stem, title or "Latency per sample", legend=False)


def plot_batch_scaling(data: pd.DataFrame, out_dir: Path, stem: str = "batch_scaling", title: str | None = None):
    data = require(data, "batch_scaling")
    panels = [c for c in ("latency_s", "throughput", "memory_gb") if c in data.columns]
    if not panels:
        raise InputError("plot batch_scaling: the data needs latency_s, throughput or memory_gb")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    for ax, column in zip(axes[0], panels):
        for model, group in data.groupby("model", sort=True):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group[column], "o-", label=str(model))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _finish(fig, axes[0][-1], out_dir, stem, None)


def plot_pareto(data: pd.DataFrame, out_dir: Path, stem: str = "pareto", title: str | None = None):
    data = require(data, "pareto")
    cost = data["latency_s"].to_numpy(float) * data["memory_gb"].to_numpy(float)
    accuracy = data["accuracy"].to_numpy(float)
    front = pareto_front(cost, accuracy)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(cost[~front], accuracy[~front], color="0.6", label="dominated")
    order = np.argsort(cost[front])
    ax.plot(cost[front][order], accuracy[front][order], "o-", color="C3", label="Pareto frontier")
    for c, a, name in zip(cost, accuracy, data["name"]):
        ax.annotate(str(name), (c, a), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency (s) x memory (GB)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3, which="both")
    return _finish(fig, ax, out_dir, stem, title or "Accuracy vs cost")


def plot_headroom(data: pd.DataFrame, out_dir: Path, stem: str = "headroom", title: str | None = None):
    data = headroom(require(data, "headroom"))
    metrics, models = sorted(data["metric"].unique()), sorted(data["model"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(metrics) + 2), 4.5))
    x = np.arange(len(metrics))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        part = data[data["model"] == model].set_index("metric")
        heights = [float(part.loc[m, "headroom"]) if m in part.index else 0.0 for m in metrics]
        bars = ax.bar(x + (k - (len(models) - 1) / 2) * width, heights, width, label=str(model))
        for bar, h in zip(bars, heights):
            ax.annotate(f"{h:+.3f}", (bar.get_x() + bar.get_width() / 2, h), ha="center",
                        va="bottom" if h >= 0 else "top", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, metrics, rotation=20, ha="right")
    ax.set_ylabel("room to the acceptable bound")
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, ax, out_dir, stem, title or "Accuracy headroom before compression")


def plot_radar(data: pd.DataFrame, out_dir: Path, stem: str = "radar", title: str | None = None):
    data = require(data, "radar")
    dims = list(dict.fromkeys(data["dimension"]))
    angles = np.linspace(0, 2 * np.pi, len(dims), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(5.5, 5.5), subplot_kw={"polar": True})
    for model, group in data.groupby("model", sort=True):
        means = group.groupby("dimension")["score"].mean()
        values = [float(means.get(d, np.nan)) for d in dims]
        ax.plot([*angles, angles[0]], [*values, values[0]], "o-", label=str(model), linewidth=1.2)
        ax.fill([*angles, angles[0]], [*values, values[0]], alpha=0.1)
    ax.set_xticks(angles, dims, fontsize=8)
    ax.set_ylim(0, max(5.0, float(data["score"].max())))
    return _finish(fig, ax, out_dir, stem, title or "Judge dimensions")


def _matrix_plot(confusion: dict, out_dir: Path, stem: str, title: str, xlabel: str, ylabel: str):
    labels = confusion.get("display") or confusion["labels"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(labels), 1.4 + 0.8 * len(labels)))
    image = ax.imshow(matrix, cmap="Blues", aspect="auto")
    peak = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > peak / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax)
    return _finish(fig, ax, out_dir, stem, title, legend=False)


def plot_confusion(per_class: dict, out_dir: Path, stem: str = "confusion", title: str | None = None) -> list[Path]:
    """The exercise confusion (and, for AQA, the error x error co-occurrence) of a metrics.json."""
    written = []
    if "exercise_confusion" in per_class:
        written += _matrix_plot(per_class["exercise_confusion"], out_dir, f"{stem}_exercise",
                                title or "Exercise confusion", "predicted", "true")
    if "error_confusion" in per_class:
        written += _matrix_plot(per_class["error_confusion"], out_dir, f"{stem}_error",
                                "Error co-occurrence (true x predicted)", "predicted", "true")
    if not written:
        raise InputError("plot confusion: the metrics.json has no exercise_confusion or error_confusion")
    return written


def plot_pr_curve(per_class: dict, out_dir: Path, stem: str = "pr_curve", title: str | None = None) -> list[Path]:
    """Precision-recall curves of span detection, one per error (per_class["span_pr_iou0.5"])."""
    curves = next((v for k, v in per_class.items() if k.startswith("span_pr_iou")), None)
    if not curves:
        raise InputError("plot pr_curve: the metrics.json has no span_pr_iou* curves (an AQA metrics.json is needed)")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for error, curve in curves.items():
        recall = [r for r in curve["recall"] if r is not None]
        if not recall:
            continue
        precision = curve["precision"][:len(recall)]
        ax.step([0.0, *recall], [precision[0], *precision], where="post", marker="o", markersize=3,
                label=f"{error} (n={curve['n_true']})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    return _finish(fig, ax, out_dir, stem, title or "Span detection precision-recall (IoU 0.5)")


PLOTTERS = {
    "learning_curves": plot_learning_curves,
    "accuracy_vs_params": plot_accuracy_vs_params,
    "convergence": plot_convergence,
    "data_efficiency": plot_data_efficiency,
    "degradation": plot_degradation,
    "degradation_heatmap": plot_degradation_heatmap,
    "temporal_heatmap": plot_temporal_heatmap,
    "latency_violin": plot_latency_violin,
    "batch_scaling": plot_batch_scaling,
    "resolution_frames_heatmap": plot_resolution_frames_heatmap,
    "pareto": plot_pareto,
    "headroom": plot_headroom,
    "radar": plot_radar,
    "confusion": plot_confusion,
    "pr_curve": plot_pr_curve,
}
# Kinds drawn from a metrics.json's per_class rather than from a table.
FROM_METRICS = {"confusion", "pr_curve"}


def _profile_batch_rows(profile: dict, path: Path) -> pd.DataFrame:
    """vt-infer profile's batch-scaling records as batch_scaling rows (model, batch_size, latency_s,
    throughput in samples/s, memory_gb); out-of-memory and skipped sizes keep their status and no values."""
    rows = []
    for record in profile["batch_scaling"]:
        peak = record.get("peak_memory_bytes")
        rows.append({
            "model": profile.get("model") or path.parent.name,
            "batch_size": record.get("batch_size"),
            "status": record.get("status"),
            "latency_s": record.get("latency_per_sample_s"),
            "throughput": record.get("samples_per_s"),
            "memory_gb": peak / 1e9 if peak is not None else None,
        })
    return pd.DataFrame(rows)


def load_table(paths: list[Path]) -> pd.DataFrame:
    """Rows of CSV, JSON (a list of records, a training history {"train": [...], "val": [...]}, or a
    vt-infer profile.json's batch_scaling) and JSONL files.

    A history becomes learning-curve rows (run = its folder's name, value = loss); every row
    gets `source` (the file it came from).
    """
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        try:
            if path.suffix == ".csv":
                frame = pd.read_csv(path)
            elif path.suffix == ".jsonl":
                frame = pd.read_json(path, lines=True)
            else:
                raw = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(raw, dict) and "batch_scaling" in raw:
                    frame = _profile_batch_rows(raw, path)
                elif isinstance(raw, dict) and ({"train", "val"} & set(raw)):
                    rows = [{"run": path.parent.name, "split": part, "step": r.get("step"), "value": r.get("loss"),
                             "metric": "loss"} for part in ("train", "val") for r in raw.get(part, []) if isinstance(r, dict)]
                    frame = pd.DataFrame(rows)
                elif isinstance(raw, list):
                    frame = pd.DataFrame(raw)
                else:
                    raise ValueError("expected a list of records or a training history")
        except ValueError as err:  # JSON, CSV and pandas parse errors all derive from it
            raise InputError(f"{path}: not a readable table ({err})") from err
        frames.append(frame.assign(source=str(path)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
