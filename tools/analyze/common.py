"""What every task's metrics share: the task check, latency metrics, and the scored result.

Latency metrics come from the timing vt-infer writes into each prediction (`total_s`), so
that efficiency and quality are read off the same file and compared on the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from videotune.analyze.bootstrap import WeightedMetric, ratio
from videotune.core.io import InputError
from videotune.core.schemas import Metrics, Prediction

PER_EXAMPLE_NAME = "per_example.jsonl"


@dataclass
class Scored:
    """metrics.json, and one row per prediction (`id`, `model`, `scores`) for `vt-analyze compare`.

    A per-example score is None where the metric does not apply to that example.
    """

    metrics: Metrics
    per_example: list[dict[str, Any]] = field(default_factory=list)


def check_task(predictions: list[Prediction], task: str) -> None:
    """Refuse predictions that say they belong to another task (meta.task, written by vt-prep).

    Scoring feedback predictions as VQA, say, would produce numbers that mean nothing;
    predictions without meta.task are accepted as the task asked for.
    """
    if not predictions:
        raise InputError("no predictions to score")
    for p in predictions:
        declared = p.meta.get("task")
        if declared is not None and declared != task:
            raise InputError(f"prediction {p.id!r}: meta.task is {declared!r}, but --task {task} was asked for")


def weighted_quantile(values: np.ndarray, q: float) -> WeightedMetric:
    """The q-quantile of values under example weights: the smallest value whose cumulative
    weight share reaches q (numpy's method="inverted_cdf"); NaN where a row has no weight.

    Values that are NaN (examples without a measurement) carry no weight.
    """
    defined = ~np.isnan(values)
    order = np.argsort(np.where(defined, values, np.inf), kind="stable")
    order = order[defined[order]]
    sorted_values = values[order]

    def fn(W: np.ndarray) -> np.ndarray:
        w = W[:, order]
        cum = np.cumsum(w, axis=1)
        total = cum[:, -1] if cum.shape[1] else np.zeros(W.shape[0])
        out = np.full(W.shape[0], np.nan)
        has = total > 0
        if sorted_values.size and has.any():
            idx = np.argmax(cum[has] >= q * total[has, None] - 1e-12 * total[has, None], axis=1)
            out[has] = sorted_values[idx]
        return out

    return fn


def latency_functions(predictions: list[Prediction]) -> dict[str, WeightedMetric]:
    """`latency_mean_s`, `latency_p50_s`, `latency_p95_s` of `total_s` over ok predictions that were timed.

    Failed predictions and untimed ones (total_s 0, e.g. hand-written files) are left out:
    they measure nothing. With no timed prediction the metrics are undefined (None).
    """
    seconds = np.array([p.total_s if p.status == "ok" and p.total_s > 0 else np.nan for p in predictions])
    timed = (~np.isnan(seconds)).astype(float)
    filled = np.nan_to_num(seconds, nan=0.0)
    return {
        "latency_mean_s": lambda W: ratio(W @ filled, W @ timed),
        "latency_p50_s": weighted_quantile(seconds, 0.5),
        "latency_p95_s": weighted_quantile(seconds, 0.95),
    }


def bootstrap_meta(n_bootstrap: int, seed: int) -> dict[str, Any]:
    return {"n": n_bootstrap, "seed": seed, "method": "percentile, examples resampled with replacement"}
