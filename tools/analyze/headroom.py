"""Headroom: how far each model's current metrics sit above the minimum acceptable values (RQ3.2.1).

Thresholds come from a YAML file:

    minimum:                 # higher is better: value must be >= threshold
      exercise_accuracy: 0.90
      similarity: 0.70
    maximum:                 # lower is better (optional): value must be <= threshold
      latency_p95_s: 2.0

Headroom is the signed distance to the threshold in the metric's own units (value - minimum, or
maximum - value): positive means room to spare (e.g. for a cheaper precision), negative a miss.
Relative headroom divides it by the threshold's magnitude.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError
from rich.console import Console
from rich.table import Table

from videotune.analyze import metric_table
from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, read_json, write_json
from videotune.core.manifest import RunManifest

console = Console()


class Thresholds(BaseModel):
    model_config = {"extra": "forbid"}

    minimum: dict[str, float] = {}
    maximum: dict[str, float] = {}


class MetricHeadroom(BaseModel):
    value: float | None
    threshold: float
    kind: Literal["minimum", "maximum"]
    headroom: float | None
    relative_headroom: float | None
    status: Literal["ok", "below", "above", "missing"]


class HeadroomConfig(CommandConfig):
    """Headroom of each model's metrics over minimum acceptable thresholds (and under maximum ones).

    Writes OUT/headroom.json and OUT/run.json; prints a table. Exit 0 even when a model misses a
    threshold (it is a finding, not a failure); --strict makes a miss or a missing metric exit 1.
    """

    metrics: list[str] = Field(description="metrics.json files, each NAME=PATH or PATH (name: the file's folder)")
    thresholds: Path = Field(description="YAML with `minimum:` (and optionally `maximum:`) metric -> value")
    out: Path = Field(description="output folder (created if missing)")
    strict: bool = Field(False, description="exit 1 when any model misses a threshold or lacks a metric")


def load_thresholds(path: Path) -> Thresholds:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from err
    try:
        thresholds = Thresholds.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5])
        raise InputError(f"{path}: {problems} (expected `minimum:` and/or `maximum:` mappings of metric -> number)") from err
    if not thresholds.minimum and not thresholds.maximum:
        raise InputError(f"{path}: no thresholds (give `minimum:` and/or `maximum:`)")
    both = set(thresholds.minimum) & set(thresholds.maximum)
    if both:
        raise InputError(f"{path}: {sorted(both)} listed under both minimum and maximum")
    # A minimum bounds a metric where higher is better, a maximum one where lower is (metric_table).
    wrong = [f"{name} under minimum: (lower is better)" for name in thresholds.minimum if metric_table.lower_is_better(name)]
    wrong += [f"{name} under maximum: (higher is better)" for name in thresholds.maximum
              if metric_table.higher_is_better(name) and metric_table.spec_of(name) is not None]
    if wrong:
        raise InputError(f"{path}: threshold on the wrong side: {'; '.join(wrong)}")
    return thresholds


def headroom_of(value: float | None, threshold: float, kind: Literal["minimum", "maximum"]) -> MetricHeadroom:
    """Signed distance of `value` to `threshold` (positive: acceptable with room to spare)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MetricHeadroom(value=None, threshold=threshold, kind=kind, headroom=None, relative_headroom=None,
                              status="missing")
    room = value - threshold if kind == "minimum" else threshold - value
    relative = room / abs(threshold) if threshold != 0 else None
    status = "ok" if room >= 0 else ("below" if kind == "minimum" else "above")
    return MetricHeadroom(value=value, threshold=threshold, kind=kind, headroom=room, relative_headroom=relative, status=status)


def model_headroom(metrics: dict[str, float | None], thresholds: Thresholds) -> dict[str, MetricHeadroom]:
    rows = {name: headroom_of(metrics.get(name), t, "minimum") for name, t in thresholds.minimum.items()}
    rows.update({name: headroom_of(metrics.get(name), t, "maximum") for name, t in thresholds.maximum.items()})
    return rows


def parse_sources(entries: list[str]) -> dict[str, Path]:
    """NAME=PATH or PATH (named after its folder) -> {name: path}; names must be unique."""
    sources: dict[str, Path] = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        path_obj = Path(path) if sep else Path(entry)
        label = name if sep else (path_obj.parent.name or path_obj.stem)
        if label in sources:
            raise InputError(f"--metrics: two sources named {label!r}; write NAME=PATH")
        sources[label] = path_obj
    return sources


def read_metric_values(path: Path) -> dict[str, float | None]:
    raw = read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        raise InputError(f"{path}: not a metrics.json (no `metrics` object)")
    return raw["metrics"]


def run_headroom(config: HeadroomConfig) -> dict[str, Any]:
    thresholds = load_thresholds(config.thresholds)
    sources = parse_sources(config.metrics)
    manifest = RunManifest("analyze", "headroom", config.model_dump(mode="json"), config.out)
    manifest.add_input(config.thresholds, "thresholds")
    per_model = {}
    for name, path in sources.items():
        per_model[name] = {k: v.model_dump() for k, v in model_headroom(read_metric_values(path), thresholds).items()}
        manifest.add_input(path, name)
    summary = {
        name: {
            "meets_all": all(r["status"] == "ok" for r in rows.values()),
            "misses": sorted(k for k, r in rows.items() if r["status"] in ("below", "above")),
            "missing": sorted(k for k, r in rows.items() if r["status"] == "missing"),
            "tightest": min(((k, r["relative_headroom"]) for k, r in rows.items() if r["relative_headroom"] is not None),
                            key=lambda item: item[1], default=(None, None))[0],
        }
        for name, rows in per_model.items()
    }
    report = {"thresholds": thresholds.model_dump(), "models": per_model, "summary": summary}
    write_json(config.out / "headroom.json", report)
    manifest.write(outputs={"headroom": "headroom.json"})

    table = Table(title="headroom over thresholds")
    for column in ("model", "metric", "value", "threshold", "headroom", "relative", "status"):
        table.add_column(column)
    for name, rows in per_model.items():
        for metric, r in rows.items():
            table.add_row(name, metric, "-" if r["value"] is None else f"{r['value']:.4g}",
                          f"{'>=' if r['kind'] == 'minimum' else '<='} {r['threshold']:g}",
                          "-" if r["headroom"] is None else f"{r['headroom']:+.4g}",
                          "-" if r["relative_headroom"] is None else f"{r['relative_headroom']:+.1%}", r["status"])
    console.print(table)
    console.print(f"wrote {config.out / 'headroom.json'}")
    if config.strict and not all(s["meets_all"] for s in summary.values()):
        import typer

        raise typer.Exit(1)
    return report
