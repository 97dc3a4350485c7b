"""REPORT.md with tables and plots from a metrics.json (and, optionally, a training history).

Plots are written as PNG (embedded in the Markdown by relative links, so the folder can be
moved or published as is) and as PDF (for papers). Every file is written atomically.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot's import
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from videotune.analyze import metric_table  # noqa: E402
from videotune.core.io import InputError, atomic_write_text, read_json  # noqa: E402
from videotune.core.schemas import Metrics  # noqa: E402
from videotune.core.taxonomy import ERROR_DISPLAY, ERROR_KEYS, EXERCISES  # noqa: E402

REPORT_NAME = "REPORT.md"


# --------------------------------------------------------------------------- helpers


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _display(label: str) -> str:
    """An exercise key as answers write it ("OHP"); other labels ("unparsed") as they are."""
    return EXERCISES[label].display if label in EXERCISES else label


def _md_cell(value: Any) -> str:
    # A pipe inside a cell would split it.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_figure(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """Save as PNG and PDF, each to a temp file beside the target and renamed over it."""
    written = []
    for ext in ("png", "pdf"):
        target = out_dir / f"{stem}.{ext}"
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            # The temp name ends in .tmp, so the format is given explicitly.
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    plt.close(fig)
    return written


def baseline_of(metrics: dict[str, float | None], name: str, task: str | None = None) -> tuple[str, float | None] | None:
    """The baseline entry of a metric, as metric_table names it (`<kind>/<name>`), if the metrics hold one."""
    key = metric_table.baseline_key(name, task)
    return (key, metrics[key]) if key is not None and key in metrics else None


def validate_history(history: dict[str, Any], source: str = "history") -> dict[str, list[dict[str, float]]]:
    """Check a training history `{"train": [{step, epoch, loss}], "val": [...]}`; InputError if malformed.

    Entries whose loss is missing or not finite are skipped (a diverged step has no point to plot).
    `source` names the history in error messages (its file, when read from one).
    """
    if not isinstance(history, dict):
        raise InputError(f"{source}: must be a JSON object with 'train' and/or 'val' lists")
    clean: dict[str, list[dict[str, float]]] = {}
    for part in ("train", "val"):
        entries = history.get(part, [])
        if not isinstance(entries, list):
            raise InputError(f"{source}: [{part!r}] must be a list of {{step, epoch, loss}}")
        rows = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "step" not in entry:
                raise InputError(f"{source}: [{part!r}][{i}] must be an object with step, epoch, loss")
            loss = entry.get("loss")
            try:
                loss = float(loss) if loss is not None else None
                step = float(entry["step"])
                epoch = float(entry["epoch"]) if entry.get("epoch") is not None else None
            except (TypeError, ValueError) as exc:
                raise InputError(f"{source}: [{part!r}][{i}]: step, epoch and loss must be numbers") from exc
            if loss is None or not math.isfinite(loss):
                continue
            rows.append({"step": step, "epoch": epoch, "loss": loss})
        clean[part] = rows
    return clean


def load_metrics(path: Path) -> Metrics:
    """Read and validate a metrics.json; InputError naming the file if it is not one."""
    raw = read_json(path)
    try:
        return Metrics.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in err.errors()[:5])
        raise InputError(f"{path}: not a metrics.json ({problems})") from err


def load_history(path: Path) -> dict[str, list[dict[str, float]]]:
    """Read and validate a training history JSON file (see validate_history)."""
    return validate_history(read_json(path), source=str(path))


def provenance(metrics: Metrics, metrics_path: Path, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """What the report states about where its numbers come from.

    `manifest` is the run.json written beside metrics.json (None when absent): it names the
    predictions file and its hash, the code version and commit that scored them.
    """
    info: dict[str, Any] = {"metrics": str(metrics_path)}
    models = metrics.meta.get("models")
    if models:
        info["model"] = ", ".join(map(str, models))
    if manifest:
        for spec in (manifest.get("inputs") or {}).values():
            if isinstance(spec, dict) and spec.get("path"):
                info[f"input {Path(spec['path']).name}"] = f"{spec['path']} (sha256 {str(spec.get('sha256', ''))[:12]})"
        for key in ("version", "git_commit", "ended_at"):
            if manifest.get(key):
                info[{"ended_at": "scored at", "git_commit": "git commit"}.get(key, key)] = manifest[key]
    return info


def summary_rows(metrics: Metrics) -> list[tuple[str, str, str, str]]:
    """(name, value, 95% CI, baseline) of what metric_table prints for the metrics' task, for a terminal."""
    rows = []
    task = str(metrics.meta.get("task", "aqa"))
    for name in metric_table.printed_names(task):
        if name not in metrics.metrics:
            continue
        if name.startswith("latency_") and metrics.metrics[name] is None:
            continue  # untimed predictions (hand-written files): nothing to show
        ci = metrics.ci95.get(name)
        baseline = baseline_of(metrics.metrics, name, task)
        rows.append((
            name,
            _fmt(metrics.metrics[name]),
            f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "n/a",
            _fmt(baseline[1]) if baseline else "",
        ))
    return rows


# --------------------------------------------------------------------------- plots


def plot_loss_curve(history: dict[str, list[dict[str, float]]], out_dir: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4))
    train, val = history.get("train", []), history.get("val", [])
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train", linewidth=1)
    if val:
        ax.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="val", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    return save_figure(fig, out_dir, "loss_curve")


def plot_confusion(confusion: dict[str, Any], out_dir: Path) -> list[Path]:
    labels = confusion["labels"]
    matrix = confusion["matrix"]
    display = dict(zip(labels, confusion.get("display") or [_display(lab) for lab in labels]))
    row_labels = [lab for lab in labels if lab != "unparsed"]  # truth is never "unparsed"
    rows = [matrix[labels.index(lab)] for lab in row_labels]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(labels), 1.4 + 1.0 * len(row_labels)))
    image = ax.imshow(rows, cmap="Blues", aspect="auto")
    peak = max((max(r) for r in rows), default=0)
    for i, row in enumerate(rows):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_xticks(range(len(labels)), [display[lab] for lab in labels])
    ax.set_yticks(range(len(row_labels)), [display[lab] for lab in row_labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Exercise confusion")
    fig.colorbar(image, ax=ax)
    return save_figure(fig, out_dir, "confusion_exercise")


def plot_error_f1(metrics: dict[str, float | None], out_dir: Path) -> list[Path]:
    import numpy as np

    x = np.arange(len(ERROR_KEYS))
    model = [metrics.get(f"error_f1/{e}") for e in ERROR_KEYS]
    base = [metrics.get(f"baseline_no_error/error_f1/{e}") for e in ERROR_KEYS]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for offset, values, label in ((-width / 2, model, "model"), (width / 2, base, "baseline: always no error")):
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + offset, heights, width, label=label)
        for bar, v in zip(bars, values):
            ax.annotate(_fmt(v, 2), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [ERROR_DISPLAY[e] for e in ERROR_KEYS])
    ax.set_ylim(0, 1.2)  # headroom for the value labels and the legend above the bars
    ax.set_ylabel("F1")
    ax.set_title("Error detection F1")
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    return save_figure(fig, out_dir, "error_f1")


# --------------------------------------------------------------------------- report


def write_report(
    metrics: Metrics,
    history: dict | None,
    out_dir: Path,
    title: str,
    run_info: dict | None = None,
) -> Path:
    """Write REPORT.md, loss_curve / confusion_exercise / error_f1 plots (PNG + PDF) into out_dir.

    `history` is `{"train": [{step, epoch, loss}], "val": [...]}` or None (no loss curve).
    `run_info` is shown as provenance (e.g. model, predictions file and hash, git commit).
    Returns the path of REPORT.md.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    values = metrics.metrics
    parts = [f"# {title}", ""]

    if run_info:
        parts += ["## Run", "", _table(["field", "value"], [[k, v] for k, v in run_info.items()]), ""]

    meta = metrics.meta
    counts = [[k, meta[k]] for k in ("n", "n_error_status", "n_unparseable", "n_no_exercise",
                                     "n_temporal", "n_boolean", "n_true_spans") if k in meta]
    parts += ["## Data", "", _table(["count", "value"], counts or [["n", metrics.n]]), ""]
    boot = meta.get("bootstrap", {})
    if boot:
        parts += [f"Confidence intervals: {boot.get('method', 'bootstrap')}, {boot.get('n')} resamples, "
                  f"seed {boot.get('seed')}.", ""]

    rows = []
    for name, value in values.items():
        if name.startswith("baseline_"):
            continue
        ci = metrics.ci95.get(name)
        baseline = baseline_of(values, name, metrics.meta.get("task"))
        rows.append([
            f"`{name}`",
            _fmt(value),
            f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "n/a",
            "" if baseline is None else f"{_fmt(baseline[1])} (`{baseline[0].split('/', 1)[0]}`)",
        ])
    parts += ["## Metrics", "", _table(["metric", "value", "95% CI", "baseline"], rows), ""]
    parts += [
        "n/a: undefined for this data (no clip of the exercise, or no temporal prediction). "
        "Per-error scores are over the clips whose true exercise can show the error; "
        "an error with support 0 has F1 0 by the zero_division=0 convention. "
        "Span scores are over true spans of temporal-variant clips.",
        "",
    ]

    errors = metrics.per_class.get("errors", {})
    if errors:
        error_rows = []
        for e in ERROR_KEYS:
            row = errors.get(e)
            if row is None:
                continue
            error_rows.append([
                ERROR_DISPLAY[e],
                _display(str(row.get("exercise"))),
                _fmt(values.get(f"error_precision/{e}")),
                _fmt(values.get(f"error_recall/{e}")),
                _fmt(values.get(f"error_f1/{e}")),
                _fmt(values.get(f"baseline_no_error/error_f1/{e}")),
                row.get("support"), row.get("n_clips"), row.get("tp"), row.get("fp"), row.get("fn"),
            ])
        parts += ["## Errors", "", _table(
            ["error", "exercise", "precision", "recall", "F1", "baseline F1", "support", "clips", "tp", "fp", "fn"],
            error_rows), ""]
        plot_error_f1(values, out_dir)
        parts += ["![Error detection F1 against the always-no-error baseline](error_f1.png)", "",
                  "[PDF](error_f1.pdf)", ""]

    confusion = metrics.per_class.get("exercise_confusion")
    if confusion:
        labels, matrix = confusion["labels"], confusion["matrix"]
        shown = confusion.get("display") or [_display(lab) for lab in labels]
        rows = [[f"**{shown[i]}**", *matrix[i]] for i, lab in enumerate(labels) if lab != "unparsed"]
        parts += ["## Exercise confusion", "", "Rows: true exercise; columns: predicted.", "",
                  _table(["true \\ predicted", *shown], rows), ""]
        plot_confusion(confusion, out_dir)
        parts += ["![Exercise confusion matrix](confusion_exercise.png)", "", "[PDF](confusion_exercise.pdf)", ""]
    failures = metrics.per_class.get("parse_failures")
    if failures is not None:
        ids = metrics.per_class.get("parse_failure_ids", [])
        parts += [f"Unparseable answers: {failures}" + (f" (e.g. {', '.join(map(str, ids[:5]))})" if ids else "."), ""]

    parts += ["## Training", ""]
    if history is not None:
        clean = validate_history(history)
        plot_loss_curve(clean, out_dir)
        final = [f"{part}: last loss {_fmt(clean[part][-1]['loss'])} at step {_fmt(clean[part][-1]['step'], 0)}"
                 for part in ("train", "val") if clean.get(part)]
        parts += ["![Training and validation loss](loss_curve.png)", "", "[PDF](loss_curve.pdf)", ""]
        parts += [("; ".join(final) + ".") if final else "The history holds no finite loss.", ""]
    else:
        parts += ["No training history was given.", ""]

    target = out_dir / REPORT_NAME
    atomic_write_text(target, "\n".join(parts))
    return target
