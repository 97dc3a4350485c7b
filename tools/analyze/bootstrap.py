"""Percentile bootstrap over examples, shared by every task's metrics.

Every metric is written as a function of example weights W (replicates x examples): a row
of ones is the data as given, a bootstrap replicate holds how often each example was drawn.
One definition thus serves the point estimate and every resample, and a metric that is not
a plain mean (BLEU from summed n-gram counts, AP from a ranked list) is recomputed exactly
on each resample instead of being approximated by a mean of per-example values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

# Bounds the memory of one bootstrap chunk (replicates x examples weights, float64).
MAX_WEIGHTS_PER_CHUNK = 2_000_000

WeightedMetric = Callable[[np.ndarray], np.ndarray]


def bootstrap_weights(n: int, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Yield chunks of replicate weights: row b counts how often each example was drawn."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_bootstrap, MAX_WEIGHTS_PER_CHUNK // max(n, 1)))
    done = 0
    while done < n_bootstrap:
        k = min(chunk, n_bootstrap - done)
        draws = rng.integers(0, n, size=(k, n))
        offsets = (np.arange(k) * n)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=k * n).reshape(k, n).astype(float)
        done += k


def percentile_ci(values: np.ndarray) -> tuple[float, float] | None:
    """2.5th and 97.5th percentiles over the resamples where the metric is defined (not NaN)."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (the metric is undefined on that resample)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_mean(values: np.ndarray) -> WeightedMetric:
    """The weighted mean of per-example values, as a metric of the weights."""
    values = np.asarray(values, dtype=float)
    return lambda W: ratio(W @ values, W.sum(axis=1))


def point_and_ci(
    functions: dict[str, WeightedMetric], n: int, n_bootstrap: int, seed: int
) -> tuple[dict[str, float | None], dict[str, tuple[float, float]]]:
    """Point estimates (weights all one) and percentile 95% intervals of every metric.

    All metrics share the same resamples, so their intervals are mutually consistent.
    A metric undefined on the data (NaN) is None and has no interval.
    """
    ones = np.ones((1, n))
    values: dict[str, float | None] = {}
    for name, fn in functions.items():
        v = float(fn(ones)[0])
        values[name] = None if np.isnan(v) else v
    ci95: dict[str, tuple[float, float]] = {}
    if n_bootstrap > 0:
        samples: dict[str, list[np.ndarray]] = {name: [] for name in functions}
        for W in bootstrap_weights(n, n_bootstrap, seed):
            for name, fn in functions.items():
                if values[name] is not None:
                    samples[name].append(fn(W))
        for name, chunks in samples.items():
            if chunks:
                ci = percentile_ci(np.concatenate(chunks))
                if ci is not None:
                    ci95[name] = ci
    return values, ci95
