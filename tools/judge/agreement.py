"""Agreement of judge scores with expert ratings, per rubric dimension.

For each dimension, over the ids that have both an `ok` verdict and an expert score:
quadratic-weighted Cohen's kappa (sklearn, labels fixed to 1..5 so an unused level still
counts as a possible one), Spearman's rho (scipy), exact and within-1 agreement, and n;
with bootstrap 95% intervals over items. Verdicts that are unparseable or error are not
scored and so not compared, but their count is reported: dropping them silently would
flatter the judge.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from videotune.core.io import InputError
from videotune.core.schemas import Metrics, Verdict
from videotune.judge.ratings import ExpertRating

LABELS = [1, 2, 3, 4, 5]
STATS = ("weighted_kappa", "spearman", "exact_agreement", "within1_agreement")


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def dimension_stats(judge: np.ndarray, expert: np.ndarray) -> dict[str, float | None]:
    """The four statistics for paired 1..5 scores; None where a statistic is undefined (e.g. constant scores)."""
    with warnings.catch_warnings():
        # Constant input makes kappa and rho undefined (nan + a warning): reported as None.
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(judge, expert, weights="quadratic", labels=LABELS)
        rho = spearmanr(judge, expert).statistic if len(judge) > 1 else float("nan")
    diff = np.abs(judge - expert)
    return {
        "weighted_kappa": _finite(kappa),
        "spearman": _finite(rho),
        "exact_agreement": float(np.mean(diff == 0)),
        "within1_agreement": float(np.mean(diff <= 1)),
    }


def agreement(
    verdicts: Sequence[Verdict], ratings: Sequence[ExpertRating], n_bootstrap: int = 1000, seed: int = 0
) -> Metrics:
    by_id = {v.id: v for v in verdicts}
    rated = [r for r in ratings if r.id in by_id]
    joined = [(by_id[r.id], r) for r in rated if by_id[r.id].status == "ok"]
    dims = sorted({d for v, r in joined for d in v.scores if d in r.scores})
    if not dims:
        raise InputError("no id has both an ok verdict and an expert score on a common dimension")
    rng = np.random.default_rng(seed)
    metrics: dict[str, float | None] = {}
    ci95: dict[str, tuple[float, float]] = {}
    per_class: dict[str, Any] = {}
    for dim in dims:
        pairs = np.array([(v.scores[dim], r.scores[dim]) for v, r in joined if dim in v.scores and dim in r.scores])
        judge, expert = pairs[:, 0], pairs[:, 1]
        stats = dimension_stats(judge, expert)
        per_class[dim] = {"n": len(pairs), **stats}
        for name, value in stats.items():
            metrics[f"{name}/{dim}"] = value
        if n_bootstrap and len(pairs) > 1:
            draws: dict[str, list[float]] = {name: [] for name in STATS}
            for _ in range(n_bootstrap):
                idx = rng.integers(0, len(pairs), len(pairs))
                for name, value in dimension_stats(judge[idx], expert[idx]).items():
                    if value is not None:
                        draws[name].append(value)
            for name, values in draws.items():
                # Percentile intervals; a statistic undefined in most resamples gets none.
                if len(values) >= 0.5 * n_bootstrap:
                    lo, hi = np.percentile(values, [2.5, 97.5])
                    ci95[f"{name}/{dim}"] = (round(float(lo), 4), round(float(hi), 4))
    for name in STATS:
        values = [metrics[f"{name}/{d}"] for d in dims if metrics[f"{name}/{d}"] is not None]
        # Macro mean over dimensions, the one-number summary papers quote.
        metrics[name] = float(np.mean(values)) if values else None
    metrics = {k: (round(v, 4) if v is not None else None) for k, v in metrics.items()}
    return Metrics(
        n=len(joined),
        metrics=metrics,
        ci95=ci95,
        per_class=per_class,
        meta={
            "dimensions": dims,
            "n_verdicts": len(verdicts),
            "n_expert": len(ratings),
            "n_expert_without_verdict": len(ratings) - len(rated),
            "n_judge_unscored": len(rated) - len(joined),
            "n_bootstrap": n_bootstrap,
            "seed": seed,
        },
    )
