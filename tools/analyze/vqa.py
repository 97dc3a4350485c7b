"""Metrics of the VQA / curriculum task: exact and normalized-match accuracy, overall and per stage.

The reference answer is the prediction's `reference` (the example's target); the curriculum
stage is `meta.stage` (predictions without one form the stage "unstaged").

Definitions (names as written to metrics.json):

- `exact_accuracy`: the answer equals the reference after stripping surrounding whitespace.
- `normalized_accuracy`: equal after `normalize_answer`, the VQA evaluation's normalisation:
  Unicode NFKC and case folding, punctuation removed (a "." between digits kept), number
  words zero..ten as digits, the articles a/an/the dropped, whitespace collapsed.
- `exact_accuracy/<stage>`, `normalized_accuracy/<stage>`: the same over one stage's questions.
- `baseline_majority/normalized_accuracy` (and per stage): accuracy of always giving the most
  frequent normalized reference of the evaluated set (of the stage). The constant answer is
  fixed on the full set; resamples re-score it (open answers have too many classes to
  recount the majority on every resample).
- latency metrics (common.py).

Failed predictions (status "error") and empty answers count as wrong and stay in every
denominator.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from videotune.analyze import metric_table
from videotune.analyze.bootstrap import point_and_ci, ratio
from videotune.analyze.common import Scored, bootstrap_meta, check_task, latency_functions
from videotune.core.answers import normalize_answer, stage_key
from videotune.core.io import InputError
from videotune.core.schemas import Metrics, Prediction

__all__ = ["normalize_answer", "vqa_scores"]


def vqa_scores(predictions: list[Prediction], n_bootstrap: int = 1000, seed: int = 0) -> Scored:
    """Score VQA predictions (see the module docstring); InputError for a missing reference."""
    check_task(predictions, "vqa")
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    for p in predictions:
        if not p.reference.strip():
            raise InputError(f"prediction {p.id!r}: reference is empty; a VQA prediction must carry its answer")
    n = len(predictions)
    ok = np.array([p.status == "ok" for p in predictions])
    exact = np.array([ok[i] and p.prediction.strip() == p.reference.strip() for i, p in enumerate(predictions)], float)
    norm_ref = [normalize_answer(p.reference) for p in predictions]
    norm_pred = [normalize_answer(p.prediction) if ok[i] else None for i, p in enumerate(predictions)]
    normalized = np.array([a is not None and a == b for a, b in zip(norm_pred, norm_ref)], float)
    stages = [stage_key(p.meta.get("stage")) for p in predictions]
    stage_names = sorted(set(stages))

    def accuracy(correct: np.ndarray, scope: np.ndarray):
        return lambda W: ratio(W @ (correct * scope), W @ scope)

    everywhere = np.ones(n)
    functions = {
        "exact_accuracy": accuracy(exact, everywhere),
        "normalized_accuracy": accuracy(normalized, everywhere),
    }
    majority = Counter(norm_ref).most_common(1)[0][0]
    functions["baseline_majority/normalized_accuracy"] = accuracy(np.array([r == majority for r in norm_ref], float), everywhere)
    per_stage_majority = {}
    for stage in stage_names:
        scope = np.array([s == stage for s in stages], float)
        functions[f"exact_accuracy/{stage}"] = accuracy(exact, scope)
        functions[f"normalized_accuracy/{stage}"] = accuracy(normalized, scope)
        answers = [r for r, s in zip(norm_ref, stages) if s == stage]
        per_stage_majority[stage] = Counter(answers).most_common(1)[0][0]
        constant = np.array([r == per_stage_majority[stage] for r in norm_ref], float)
        functions[f"baseline_majority/normalized_accuracy/{stage}"] = accuracy(constant, scope)
    functions.update(latency_functions(predictions))
    table_functions, table_scores = metric_table.example_functions("vqa", predictions)
    functions.update(table_functions)
    values, ci95 = point_and_ci(functions, n, n_bootstrap, seed)

    per_class = {
        "stages": {stage: {"n": stages.count(stage), "majority_answer": per_stage_majority[stage]} for stage in stage_names},
        "majority_answer": majority,
    }
    meta = {
        "task": "vqa",
        "n": n,
        "n_error_status": int((~ok).sum()),
        "n_empty": int(sum(bool(ok[i]) and not p.prediction.strip() for i, p in enumerate(predictions))),
        "models": sorted({p.model for p in predictions}),
        "bootstrap": bootstrap_meta(n_bootstrap, seed),
        "normalization": "NFKC, casefold, punctuation removed (decimal points kept), number words as digits, "
                         "articles dropped, whitespace collapsed",
    }
    per_example = [
        {"id": p.id, "model": p.model, "scores": {"exact_correct": float(exact[i]), "normalized_correct": float(normalized[i])},
         "stage": stages[i]}
        for i, p in enumerate(predictions)
    ]
    metric_table.add_example_scores(per_example, table_scores)
    return Scored(Metrics(n=n, metrics=values, ci95=ci95, per_class=per_class, meta=meta), per_example)
