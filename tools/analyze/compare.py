"""Statistical comparison of models scored on the same examples (per_example.jsonl of `metrics`).

Pairwise, for every pair of models (A listed before B) and every metric, over the examples
both have a score for:
- `diff` = mean(B) - mean(A), with a paired bootstrap 95% interval (the same examples drawn
  for both models on each resample; percentile interval);
- a binary metric (every score 0 or 1: right/wrong) gets McNemar's exact test
  (statsmodels, binomial on the discordant pairs); effect size: the discordant odds ratio
  n(A wrong, B right) / n(A right, B wrong);
- any other per-example score gets the Wilcoxon signed-rank test (scipy, two-sided,
  zero differences dropped as in Wilcoxon's original method); effect size: the matched-pairs
  rank-biserial correlation (W+ - W-) / (W+ + W-) (Kerby 2014);
- corpus BLEU (`bleu_1`..`bleu_4`, from the per-example sacrebleu statistics) has no
  per-example score, so its p-value is the paired bootstrap's: two-sided, twice the smaller
  share of resampled differences on either side of 0 (as sacrebleu's paired bootstrap);
- Holm's step-down correction (statsmodels) over all pairwise tests of one run: `p_holm`.

Each pairwise row also states which way the metric is better (`better`: higher | lower, from
metric_table) and which model the observed difference favours (`favours`; empty when equal).

Across several models (3 or more), per metric: one-way ANOVA (scipy f_oneway; effect size
eta squared) and Kruskal-Wallis (scipy kruskal; effect size epsilon squared H / (n - 1)),
which treat the models' scores as independent groups, and the Friedman test, which uses the
pairing; each test's p-values are Holm-corrected across metrics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotune.analyze import metric_table
from videotune.analyze.bootstrap import bootstrap_weights, percentile_ci
from videotune.core.io import InputError

BLEU_ORDERS = (1, 2, 3, 4)


@dataclass
class ModelScores:
    """One model's per-example scores, keyed by example id."""

    label: str
    source: str
    scores: dict[str, dict[str, float | None]]  # id -> metric -> value
    bleu: dict[str, list[float]]  # id -> sacrebleu statistics (feedback only)


def read_per_example(path: Path, label: str | None = None) -> ModelScores:
    """Read a per_example.jsonl; InputError naming the file and line when malformed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    scores: dict[str, dict[str, float | None]] = {}
    bleu: dict[str, list[float]] = {}
    models = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rid, values = str(row["id"]), row["scores"]
            if not isinstance(values, dict):
                raise TypeError("scores must be an object")
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}: line {lineno}: not a per-example row ({err})") from err
        if rid in scores:
            raise InputError(f"{path}: duplicate id {rid!r}")
        scores[rid] = {k: (None if v is None else float(v)) for k, v in values.items()}
        if "bleu" in (row.get("stats") or {}):
            bleu[rid] = [float(x) for x in row["stats"]["bleu"]]
        models.add(str(row.get("model", "")))
    if not scores:
        raise InputError(f"{path}: no rows")
    if label is None:
        label = ", ".join(sorted(m for m in models if m)) or path.parent.name
    return ModelScores(label=label, source=str(path), scores=scores, bleu=bleu)


def paired_matrix(models: list[ModelScores], metric: str, ids: list[str]) -> np.ndarray:
    """(models x examples) values of one metric; NaN where a model has no score."""
    return np.array([[np.nan if (v := m.scores[i].get(metric)) is None else v for i in ids] for m in models], float)


def is_binary(values: np.ndarray) -> bool:
    finite = values[~np.isnan(values)]
    return finite.size > 0 and bool(np.isin(finite, (0.0, 1.0)).all())


# --------------------------------------------------------------------------- tests


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test on paired right(1)/wrong(0) outcomes of A and B."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = a.astype(bool), b.astype(bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    result = mcnemar(table, exact=True)
    n10, n01 = table[0][1], table[1][0]
    odds = math.inf if n10 == 0 and n01 > 0 else (float("nan") if n10 == 0 else n01 / n10)
    return {"test": "McNemar exact", "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "effect_size": odds, "effect_size_name": "discordant odds ratio (B right/A wrong : A right/B wrong)",
            "table": table}


def wilcoxon_signed_rank(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Wilcoxon signed-rank test of B - A, with the matched-pairs rank-biserial correlation."""
    from scipy.stats import rankdata, wilcoxon

    d = b - a
    nonzero = d[d != 0]
    if nonzero.size == 0:
        # Identical scores everywhere: no evidence of a difference (scipy refuses this case).
        return {"test": "Wilcoxon signed-rank", "statistic": 0.0, "p_value": 1.0, "effect_size": 0.0,
                "effect_size_name": "rank-biserial r"}
    result = wilcoxon(b, a, zero_method="wilcox", alternative="two-sided")
    ranks = rankdata(np.abs(nonzero))
    w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    return {"test": "Wilcoxon signed-rank", "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "effect_size": float((w_plus - w_minus) / (w_plus + w_minus)), "effect_size_name": "rank-biserial r"}


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (statsmodels multipletests); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()


def omnibus(groups: list[np.ndarray]) -> list[dict[str, Any]]:
    """One-way ANOVA, Kruskal-Wallis and Friedman across k >= 3 paired groups of equal length."""
    from scipy.stats import f_oneway, friedmanchisquare, kruskal

    values = np.concatenate(groups)
    n = values.size
    grand = values.mean()
    ss_total = float(((values - grand) ** 2).sum())
    ss_between = float(sum(g.size * (g.mean() - grand) ** 2 for g in groups))
    out = []
    constant = ss_total == 0
    anova = f_oneway(*groups) if not constant else None
    out.append({"test": "one-way ANOVA", "statistic": float(anova.statistic) if anova else float("nan"),
                "p_value": float(anova.pvalue) if anova else 1.0,
                "effect_size": ss_between / ss_total if not constant else 0.0, "effect_size_name": "eta squared"})
    kw = kruskal(*groups) if not constant else None
    out.append({"test": "Kruskal-Wallis", "statistic": float(kw.statistic) if kw else float("nan"),
                "p_value": float(kw.pvalue) if kw else 1.0,
                "effect_size": float(kw.statistic) / (n - 1) if kw else 0.0, "effect_size_name": "epsilon squared"})
    try:
        fr = friedmanchisquare(*groups)
        fr_stat, fr_p = float(fr.statistic), float(fr.pvalue)
    except ValueError:
        fr_stat, fr_p = float("nan"), float("nan")
    if constant:
        fr_stat, fr_p = float("nan"), 1.0
    k, m = len(groups), groups[0].size
    out.append({"test": "Friedman", "statistic": fr_stat, "p_value": fr_p,
                # Kendall's W = chi2 / (m (k - 1)).
                "effect_size": fr_stat / (m * (k - 1)) if not math.isnan(fr_stat) else float("nan"),
                "effect_size_name": "Kendall's W"})
    for row in out:
        if isinstance(row["p_value"], float) and math.isnan(row["p_value"]):
            row["p_value"] = float("nan")
    return out


# --------------------------------------------------------------------------- comparison


def _bootstrap_diffs(fn_a, fn_b, n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    if n_bootstrap <= 0:
        return np.zeros(0)
    return np.concatenate([fn_b(W) - fn_a(W) for W in bootstrap_weights(n, n_bootstrap, seed)])


def _corpus_bleu(stats: np.ndarray, order: int):
    from videotune.analyze.text import bleu_from_stats

    return lambda W: np.array([bleu_from_stats(row, order) for row in W @ stats])


def compare_models(
    models: list[ModelScores], metrics: list[str] | None = None, n_bootstrap: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, list[dict[str, Any]]]:
    """Pairwise and (k >= 3) omnibus comparisons; returns {"pairwise": rows, "omnibus": rows}."""
    from videotune.analyze.text import bleu_from_stats

    if len(models) < 2:
        raise InputError("compare needs at least two per_example.jsonl files")
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise InputError(f"model labels must differ (got {labels}); pass --labels")
    ids = sorted(models[0].scores)
    for m in models[1:]:
        missing, extra = set(ids) - set(m.scores), set(m.scores) - set(ids)
        if missing or extra:
            some = sorted(missing | extra)[:5]
            raise InputError(
                f"{m.source}: paired tests need the same examples in every file; {len(missing | extra)} ids differ "
                f"from {models[0].source} (e.g. {', '.join(some)})"
            )
    available = sorted(set.intersection(*[{k for row in m.scores.values() for k in row} for m in models]))
    has_bleu = all(len(m.bleu) == len(ids) for m in models)
    if has_bleu:
        available += [f"bleu_{o}" for o in BLEU_ORDERS]
    chosen = metrics or available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise InputError(f"metrics not in every file: {', '.join(unknown)} (available: {', '.join(available)})")

    pairwise: list[dict[str, Any]] = []
    omni: list[dict[str, Any]] = []
    for metric in chosen:
        if metric.startswith("bleu_") and has_bleu and metric not in {k for m in models for r in m.scores.values() for k in r}:
            order = int(metric.split("_")[1])
            stats = [np.array([m.bleu[i] for i in ids]) for m in models]
            n = len(ids)
            for a in range(len(models)):
                for b in range(a + 1, len(models)):
                    point_a = bleu_from_stats(stats[a].sum(axis=0), order)
                    point_b = bleu_from_stats(stats[b].sum(axis=0), order)
                    diffs = _bootstrap_diffs(_corpus_bleu(stats[a], order), _corpus_bleu(stats[b], order), n, n_bootstrap, seed)
                    ci = percentile_ci(diffs) if diffs.size else None
                    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())) if diffs.size else float("nan")
                    pairwise.append({"metric": metric, "model_a": labels[a], "model_b": labels[b], "n": n,
                                     "mean_a": point_a, "mean_b": point_b, "diff": point_b - point_a,
                                     "ci_lo": ci[0] if ci else None, "ci_hi": ci[1] if ci else None,
                                     "test": "paired bootstrap (corpus BLEU)", "statistic": None, "p_value": p,
                                     "effect_size": point_b - point_a, "effect_size_name": "BLEU difference"})
            continue
        matrix = paired_matrix(models, metric, ids)
        complete = ~np.isnan(matrix).any(axis=0)
        values = matrix[:, complete]
        n = int(complete.sum())
        if n == 0:
            continue
        binary = is_binary(values)
        for a in range(len(models)):
            for b in range(a + 1, len(models)):
                xa, xb = values[a], values[b]
                diffs = _bootstrap_diffs(lambda W, x=xa: (W @ x) / W.sum(axis=1), lambda W, x=xb: (W @ x) / W.sum(axis=1),
                                         n, n_bootstrap, seed)
                ci = percentile_ci(diffs) if diffs.size else None
                test = mcnemar_exact(xa, xb) if binary else wilcoxon_signed_rank(xa, xb)
                test.pop("table", None)
                pairwise.append({"metric": metric, "model_a": labels[a], "model_b": labels[b], "n": n,
                                 "mean_a": float(xa.mean()), "mean_b": float(xb.mean()),
                                 "diff": float(xb.mean() - xa.mean()),
                                 "ci_lo": ci[0] if ci else None, "ci_hi": ci[1] if ci else None, **test})
        if len(models) >= 3:
            for row in omnibus([values[k] for k in range(len(models))]):
                omni.append({"metric": metric, "n": n, "k": len(models),
                             **{f"mean[{labels[k]}]": float(values[k].mean()) for k in range(len(models))}, **row})

    for row in pairwise:
        higher = metric_table.higher_is_better(row["metric"])
        row["better"] = "higher" if higher else "lower"
        diff = row["diff"]
        row["favours"] = "" if not diff or math.isnan(diff) else (
            row["model_b"] if (diff > 0) == higher else row["model_a"])
    for row, adjusted in zip(pairwise, holm([r["p_value"] for r in pairwise])):
        row["p_holm"] = adjusted
        row["significant"] = bool(adjusted < alpha) if not math.isnan(adjusted) else None
    for test in {r["test"] for r in omni}:
        rows = [r for r in omni if r["test"] == test]
        for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
            row["p_holm"] = adjusted
            row["significant"] = bool(adjusted < alpha) if not math.isnan(adjusted) else None
    return {"pairwise": pairwise, "omnibus": omni}


PAIRWISE_COLUMNS = ["metric", "better", "model_a", "model_b", "n", "mean_a", "mean_b", "diff", "ci_lo", "ci_hi", "favours",
                    "test",
                    "statistic", "p_value", "p_holm", "significant", "effect_size", "effect_size_name"]


def omnibus_columns(labels: list[str]) -> list[str]:
    return ["metric", "n", "k", *[f"mean[{lab}]" for lab in labels], "test", "statistic", "p_value", "p_holm",
            "significant", "effect_size", "effect_size_name"]
