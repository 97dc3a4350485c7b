"""Metrics of the AQA (exercise form) task, with baselines and bootstrap confidence intervals.

Each prediction's `meta` carries the ground truth of its example: `label` (exercise key),
`errors` ([{name, start_s, end_s}]) and `variant` (plain | temporal | boolean). The model's
text is read by `parse.parse_aqa`.

Definitions (names as written to metrics.json):

- `exercise_accuracy`: share of all predictions whose parsed exercise equals the truth.
  A prediction with status "error", an unparseable answer, or one naming no single exercise
  counts as wrong; none is dropped, so the denominator is always every prediction.
- `baseline_majority/exercise_accuracy`: the same accuracy for a constant prediction of the
  most frequent true exercise of the evaluated set (ties: taxonomy order).
- `mistake_accuracy`: share of predictions whose yes/no reading (a mistake is present or not;
  `ParsedAqa.predicts_mistake`) equals the truth (any error in meta.errors). Unreadable
  answers count as wrong. This is the one score the boolean variant's answers fully support.
  `baseline_majority/mistake_accuracy` is its constant-majority baseline.
- `error_precision/E`, `error_recall/E`, `error_f1/E` for each error E of taxonomy.ERROR_KEYS:
  binary detection of E (named in the answer or not), evaluated over the clips whose
  *ground-truth* exercise can show E. Scoping by the true exercise (not the predicted one)
  keeps the clip set the same for every model, so scores compare across models; an answer
  naming the wrong exercise has its errors read against that wrong exercise (see parse.py)
  and therefore loses them. Unparseable and status-"error" predictions name no error.
  Computed with sklearn's precision_recall_fscore_support(zero_division=0). None when no
  clip of E's exercise is present.
- `error_macro_f1`: mean of the per-error F1 over the errors that have a value.
- `error_seed002_precision/E`, `error_seed002_recall/E`, `error_seed002_f1/E`,
  `error_seed002_macro_f1`: seed 002's per-error scores (UMAP25's evaluation.py): the same
  binary detection, but only over the clips of E's exercise whose answer names that exercise.
  Its evaluation skips a clip whose predicted exercise differs from the true one ("wrong
  exercise type predicted"), so that clip counts neither as a miss nor as a false alarm of
  any error; unparseable and failed answers name no exercise and are skipped too. The clip
  set then differs per model, so these scores are reported under their own name, beside
  the `error_*` ones that every model is scored on alike. sklearn's precision, recall and
  F1 as the seed calls them (zero_division 0).
- `baseline_no_error/error_f1/E`, `baseline_no_error/error_macro_f1`: the same functions
  applied to the constant prediction "no error" (all zeros).
- Temporal localisation, over predictions with meta.variant == "temporal" (None when there
  are none, or when they hold no true span). In each clip, for each error, predicted spans
  of that error are matched one-to-one to its true spans, maximising the summed IoU
  (scipy linear_sum_assignment); a true span left unmatched has IoU 0. IoU of two spans is
  intersection / union with the intersection clipped at 0 (disjoint spans: 0), and a span
  that ends before it starts scores 0.
  `span_r1_iouT` (T in 0.3, 0.5, 0.7): share of all true spans whose matched IoU >= T.
  `span_miou`: mean matched IoU over all true spans. Both are recall-style: predicted spans
  beyond the true ones are not penalised here (they show in the per-error precision).
- `span_ap_iou0.5/E`, `span_map_iou0.5`: average precision of span detection at IoU 0.5
  (spans.py): every predicted span of E over the temporal clips, ranked by the answer's
  confidence `meta.mean_logprob` (the mean token log-probability vt-infer records; all spans
  of one answer share it, answers without one rank last as one tie group), a true positive
  when matched one-to-one to a true span of E in its clip at IoU >= 0.5; all-point
  interpolated precision, one curve point per distinct score (tie-aware); recall over all
  true spans of E. mAP is the mean over errors with a true span. Predictions in clips of the
  other exercise count as false positives. The curves are in per_class["span_pr_iou0.5"].
- `span_seed002_ap/E`, `span_seed002_map`: seed 002's "AP" (Fitness-AQA, Table 4): the
  share of temporal clips showing E whose true span is matched at IoU >= 0.5; no ranking.
  Labelled apart so that published tables can be matched without confusing it with AP.
- `latency_mean_s`, `latency_p50_s`, `latency_p95_s` (common.py): prediction `total_s` over
  ok predictions that were timed.
- per_class["error_confusion"]: error x error co-occurrence (rows true, columns predicted,
  "none" for no error), multi-label: a clip adds one to every (true, predicted) pair.
- `ci95[name]`: percentile bootstrap 95% interval: examples are resampled with replacement
  (numpy default_rng(seed)) n_bootstrap times, every metric (baselines included) recomputed
  on each resample with the same definition, and the 2.5th/97.5th percentiles taken over
  the resamples where it is defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from videotune.analyze import metric_table
from videotune.analyze.bootstrap import point_and_ci
from videotune.analyze.bootstrap import ratio as _ratio
from videotune.analyze.common import Scored, bootstrap_meta, check_task, latency_functions
from videotune.analyze.parse import ParsedAqa, parse_aqa
from videotune.analyze.spans import RankedDetections, match_at_threshold, match_spans, span_iou  # noqa: F401
from videotune.core.io import InputError
from videotune.core.schemas import Metrics, Prediction
from videotune.core.taxonomy import ERROR_KEYS, EXERCISES, exercise_of_error

IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
# The IoU at which span detections count for AP, as in seed 002 (Fitness-AQA, Table 4).
AP_IOU = 0.5
UNPARSED = "unparsed"
NO_ERROR = "none"
# Where vt-infer writes the confidence of an answer: its mean token log-probability.
SCORE_KEY = "mean_logprob"


# --------------------------------------------------------------------------- per-clip facts


@dataclass(frozen=True)
class _Clip:
    id: str
    true_exercise: str
    true_errors: dict[str, list[tuple[float, float]]]
    variant: str
    status_error: bool
    parsed: ParsedAqa | None  # None when the prediction has status "error"
    score: float  # confidence of the answer (meta.mean_logprob); -inf when absent

    @property
    def pred_exercise(self) -> str | None:
        return self.parsed.exercise if self.parsed else None

    @property
    def pred_errors(self) -> set[str]:
        return set(self.parsed.errors) if self.parsed else set()

    @property
    def pred_mistake(self) -> bool | None:
        return self.parsed.predicts_mistake if self.parsed else None


def _clip(pred: Prediction) -> _Clip:
    meta = pred.meta
    label = meta.get("label")
    if label not in EXERCISES:
        raise InputError(
            f"prediction {pred.id!r}: meta.label is {label!r}; an aqa prediction must carry its example's "
            f"exercise, one of {', '.join(EXERCISES)}"
        )
    raw_errors = meta.get("errors", [])
    if not isinstance(raw_errors, list):
        raise InputError(f"prediction {pred.id!r}: meta.errors must be a list of {{name, start_s, end_s}}")
    true_errors: dict[str, list[tuple[float, float]]] = {}
    for err in raw_errors:
        try:
            name, start, end = err["name"], float(err["start_s"]), float(err["end_s"])
        except (TypeError, KeyError, ValueError) as exc:
            raise InputError(f"prediction {pred.id!r}: meta.errors entry {err!r} needs name, start_s, end_s") from exc
        if name not in ERROR_KEYS:
            raise InputError(f"prediction {pred.id!r}: unknown error {name!r}; known: {', '.join(ERROR_KEYS)}")
        if exercise_of_error(name) != label:
            raise InputError(f"prediction {pred.id!r}: error {name!r} does not belong to exercise {label!r}")
        true_errors.setdefault(name, []).append((start, end))
    status_error = pred.status == "error"
    raw_score = meta.get(SCORE_KEY)
    try:
        score = float(raw_score) if raw_score is not None else -math.inf
    except (TypeError, ValueError) as exc:
        raise InputError(f"prediction {pred.id!r}: meta.{SCORE_KEY} must be a number, got {raw_score!r}") from exc
    if math.isnan(score):
        score = -math.inf
    return _Clip(
        id=pred.id,
        true_exercise=label,
        true_errors=true_errors,
        variant=str(meta.get("variant", "plain")),
        status_error=status_error,
        parsed=None if status_error else parse_aqa(pred.prediction),
        score=score,
    )


# --------------------------------------------------------------------------- weighted metrics
#
# Every metric is a function of example weights W (replicates x examples): all ones is the
# data as given, a bootstrap replicate holds how often each example was drawn. One
# definition thus serves the point estimate and every resample.


def _accuracy(W: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return _ratio(W @ correct.astype(float), W.sum(axis=1))


def _majority_accuracy(W: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """Accuracy of a constant prediction of the most frequent true class (ties: lowest index).

    Each constant prediction is scored by `_accuracy`, the function that scores the model.
    """
    counts = np.stack([W @ (truth == c).astype(float) for c in range(classes)], axis=1)
    majority = counts.argmax(axis=1)
    per_class = np.stack([_accuracy(W, truth == c) for c in range(classes)], axis=1)
    return per_class[np.arange(len(W)), majority]


def _prf_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from counts, with sklearn's zero_division=0 convention."""
    precision = np.nan_to_num(_ratio(tp, tp + fp), nan=0.0)
    recall = np.nan_to_num(_ratio(tp, tp + fn), nan=0.0)
    f1 = np.nan_to_num(_ratio(2 * tp, 2 * tp + fp + fn), nan=0.0)
    return precision, recall, f1


def _detection(W: np.ndarray, scope: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray):
    """Weighted precision, recall, F1 of binary detection over the in-scope clips (NaN if none)."""
    s = scope.astype(float)
    tp = W @ (s * (y_true & y_pred))
    fp = W @ (s * (~y_true & y_pred))
    fn = W @ (s * (y_true & ~y_pred))
    defined = (W @ s) > 0
    return tuple(np.where(defined, v, np.nan) for v in _prf_counts(tp, fp, fn))


def _sklearn_prf(scope: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float] | None:
    if not scope.any():
        return None
    p, r, f, _ = precision_recall_fscore_support(
        y_true[scope], y_pred[scope], average="binary", pos_label=True, labels=[False, True], zero_division=0
    )
    return float(p), float(r), float(f)


def _nanmean_rows(columns: list[np.ndarray]) -> np.ndarray:
    stacked = np.stack(columns, axis=1)
    defined = ~np.isnan(stacked)
    return _ratio(np.nansum(stacked, axis=1), defined.sum(axis=1).astype(float))


# --------------------------------------------------------------------------- span detection (AP)


def _span_detections(clips: list[_Clip], temporal: np.ndarray) -> dict[str, RankedDetections]:
    """Per error class: every predicted span of the temporal clips, ranked, with TP at IoU >= AP_IOU."""
    out = {}
    for e in ERROR_KEYS:
        clip_idx, scores, tps = [], [], []
        n_true = np.zeros(len(clips))
        for i, c in enumerate(clips):
            if not temporal[i]:
                continue
            true = c.true_errors.get(e, [])
            n_true[i] = len(true)
            predicted = c.parsed.errors.get(e, []) if c.parsed else []
            for hit in match_at_threshold(true, predicted, AP_IOU):
                clip_idx.append(i)
                scores.append(c.score)
                tps.append(hit)
        out[e] = RankedDetections.build(clip_idx, scores, tps, n_true)
    return out


def _seed002_success(clips: list[_Clip], temporal: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per error: (clip shows the error in a temporal clip, its best matched IoU >= AP_IOU).

    Seed 002 defines the AP of a class as "the sum of videos with a successful prediction in
    that class over all videos in the same class", a prediction being successful when its IoU
    with the true segment reaches the threshold. A clip counts as successful when one of its
    true spans of the error is matched (one-to-one) at IoU >= 0.5; Fitness-AQA has one span
    per error per clip, where "one" and "every" coincide. No confidence enters: this is a
    recall over clips, reported under its own name so that published tables can be matched.
    """
    out = {}
    for e in ERROR_KEYS:
        has = np.zeros(len(clips), dtype=bool)
        ok = np.zeros(len(clips), dtype=bool)
        for i, c in enumerate(clips):
            true = c.true_errors.get(e, [])
            if not temporal[i] or not true:
                continue
            has[i] = True
            predicted = c.parsed.errors.get(e, []) if c.parsed else []
            ok[i] = max(match_spans(true, predicted)) >= AP_IOU
        out[e] = (has, ok)
    return out


def _pr_points(det: RankedDetections) -> dict:
    """The precision-recall curve at unit weights (one point per distinct score), for plots."""
    precision, recall = det.curve(np.ones((1, det.n_true.size)))
    ends = det._group_ends()
    return {
        "precision": [float(x) for x in precision[0]],
        "recall": [None if np.isnan(x) else float(x) for x in recall[0]],
        # None: answers without a confidence, ranked last.
        "score": [None if np.isinf(s) else float(s) for s in det.score[ends]],
        "n_true": int(det.n_true.sum()),
        "n_pred": int(det.score.size),
    }


def _error_confusion(clips: list[_Clip]) -> dict:
    """Error x error co-occurrence: rows true errors, columns predicted ones, plus "none".

    Errors are multi-label, so a clip adds one count to every (true, predicted) pair it has;
    a clip with no true error is row "none", an answer naming none (unparseable and failed
    answers included) is column "none".
    """
    labels = [*ERROR_KEYS, NO_ERROR]
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for c in clips:
        rows = list(c.true_errors) or [NO_ERROR]
        cols = sorted(c.pred_errors) or [NO_ERROR]
        for r in rows:
            for col in cols:
                matrix[index[r], index[col]] += 1
    return {"labels": labels, "matrix": matrix.tolist()}


# --------------------------------------------------------------------------- entry point


def aqa_metrics(predictions: list[Prediction], n_bootstrap: int = 1000, seed: int = 0) -> Metrics:
    """Score AQA predictions (see the module docstring for every definition)."""
    return aqa_scores(predictions, n_bootstrap=n_bootstrap, seed=seed).metrics


def aqa_scores(predictions: list[Prediction], n_bootstrap: int = 1000, seed: int = 0) -> Scored:
    """Score AQA predictions: metrics.json content and per-example scores.

    Raises InputError (naming the prediction) when a prediction's meta lacks its ground truth.
    `n_bootstrap=0` skips the intervals.
    """
    check_task(predictions, "aqa")
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    clips = [_clip(p) for p in predictions]
    n = len(clips)

    exercise_keys = list(EXERCISES)
    ex_index = {key: i for i, key in enumerate(exercise_keys)}
    true_ex = np.array([ex_index[c.true_exercise] for c in clips])
    pred_ex = np.array([ex_index.get(c.pred_exercise, -1) for c in clips])  # -1: none named

    true_mistake = np.array([bool(c.true_errors) for c in clips])
    mistake_right = np.array([c.pred_mistake is not None and c.pred_mistake == bool(c.true_errors) for c in clips])

    scope = {e: np.array([c.true_exercise == exercise_of_error(e) for c in clips]) for e in ERROR_KEYS}
    # Seed 002 scores an error only on the clips whose exercise the answer got right.
    seed_scope = {e: scope[e] & (pred_ex == true_ex) for e in ERROR_KEYS}
    y_true = {e: np.array([e in c.true_errors for c in clips]) for e in ERROR_KEYS}
    y_pred = {e: np.array([e in c.pred_errors for c in clips]) for e in ERROR_KEYS}
    y_none = np.zeros(n, dtype=bool)

    # Temporal: per clip, the number of true spans and their matched IoUs, so that a
    # resample of clips pools exactly the true spans of the clips drawn.
    temporal = np.array([c.variant == "temporal" for c in clips])
    n_spans = np.zeros(n)
    iou_sum = np.zeros(n)
    hits = {t: np.zeros(n) for t in IOU_THRESHOLDS}
    for i, c in enumerate(clips):
        if not temporal[i]:
            continue
        predicted = c.parsed.errors if c.parsed else {}
        for name, true_spans in c.true_errors.items():
            matched = np.array(match_spans(true_spans, predicted.get(name, [])))
            n_spans[i] += len(matched)
            iou_sum[i] += matched.sum()
            for t in IOU_THRESHOLDS:
                hits[t][i] += (matched >= t).sum()
    detections = _span_detections(clips, temporal)
    seed002 = _seed002_success(clips, temporal)

    classes = len(exercise_keys)
    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "exercise_accuracy": lambda W: _accuracy(W, pred_ex == true_ex),
        "baseline_majority/exercise_accuracy": lambda W: _majority_accuracy(W, true_ex, classes),
        "mistake_accuracy": lambda W: _accuracy(W, mistake_right),
        "baseline_majority/mistake_accuracy": lambda W: _majority_accuracy(W, true_mistake.astype(int), 2),
    }
    for e in ERROR_KEYS:
        for k, kind in enumerate(("precision", "recall", "f1")):
            functions[f"error_{kind}/{e}"] = lambda W, e=e, k=k: _detection(W, scope[e], y_true[e], y_pred[e])[k]
    functions["error_macro_f1"] = lambda W: _nanmean_rows([functions[f"error_f1/{e}"](W) for e in ERROR_KEYS])
    for e in ERROR_KEYS:
        for k, kind in enumerate(("precision", "recall", "f1")):
            functions[f"error_seed002_{kind}/{e}"] = (
                lambda W, e=e, k=k: _detection(W, seed_scope[e], y_true[e], y_pred[e])[k])
    functions["error_seed002_macro_f1"] = lambda W: _nanmean_rows(
        [functions[f"error_seed002_f1/{e}"](W) for e in ERROR_KEYS])
    for e in ERROR_KEYS:
        functions[f"baseline_no_error/error_f1/{e}"] = lambda W, e=e: _detection(W, scope[e], y_true[e], y_none)[2]
    functions["baseline_no_error/error_macro_f1"] = lambda W: _nanmean_rows(
        [functions[f"baseline_no_error/error_f1/{e}"](W) for e in ERROR_KEYS]
    )
    for t in IOU_THRESHOLDS:
        functions[f"span_r1_iou{t}"] = lambda W, t=t: _ratio(W @ hits[t], W @ n_spans)
    functions["span_miou"] = lambda W: _ratio(W @ iou_sum, W @ n_spans)
    for e in ERROR_KEYS:
        functions[f"span_ap_iou{AP_IOU}/{e}"] = detections[e].average_precision
    functions[f"span_map_iou{AP_IOU}"] = lambda W: _nanmean_rows(
        [functions[f"span_ap_iou{AP_IOU}/{e}"](W) for e in ERROR_KEYS]
    )
    for e in ERROR_KEYS:
        has, ok = seed002[e]
        functions[f"span_seed002_ap/{e}"] = lambda W, has=has, ok=ok: _ratio(W @ ok.astype(float), W @ has.astype(float))
    functions["span_seed002_map"] = lambda W: _nanmean_rows([functions[f"span_seed002_ap/{e}"](W) for e in ERROR_KEYS])
    functions.update(latency_functions(predictions))
    table_functions, table_scores = metric_table.example_functions("aqa", predictions)
    functions.update(table_functions)

    values, ci95 = point_and_ci(functions, n, n_bootstrap, seed)
    # Point estimates of detection come from sklearn itself; the weighted formula above
    # (the same zero_division=0 convention) serves the resamples.
    for e in ERROR_KEYS:
        for prefix, clips_of, pred in (("error", scope, y_pred[e]), ("baseline_no_error/error", scope, y_none),
                                       ("error_seed002", seed_scope, y_pred[e])):
            prf = _sklearn_prf(clips_of[e], y_true[e], pred)
            for kind, v in zip(("precision", "recall", "f1"), prf or (None, None, None)):
                if f"{prefix}_{kind}/{e}" in values:
                    values[f"{prefix}_{kind}/{e}"] = v
    for f1, macro in (("error_f1", "error_macro_f1"), ("baseline_no_error/error_f1", "baseline_no_error/error_macro_f1"),
                      ("error_seed002_f1", "error_seed002_macro_f1")):
        f1s = [values[f"{f1}/{e}"] for e in ERROR_KEYS if values[f"{f1}/{e}"] is not None]
        values[macro] = float(np.mean(f1s)) if f1s else None

    labels = [*exercise_keys, UNPARSED]
    confusion = confusion_matrix(
        [c.true_exercise for c in clips], [c.pred_exercise or UNPARSED for c in clips], labels=labels
    )
    errors_table = {}
    for e in ERROR_KEYS:
        s, t, p = scope[e], y_true[e], y_pred[e]
        errors_table[e] = {
            "exercise": exercise_of_error(e),
            "n_clips": int(s.sum()),
            "support": int((s & t).sum()),
            "tp": int((s & t & p).sum()),
            "fp": int((s & ~t & p).sum()),
            "fn": int((s & t & ~p).sum()),
            "tn": int((s & ~t & ~p).sum()),
        }
    unparseable = [c.id for c in clips if c.parsed is not None and not c.parsed.parseable]
    per_class = {
        "exercise_confusion": {"labels": labels, "matrix": confusion.tolist()},
        "error_confusion": _error_confusion(clips),
        "errors": errors_table,
        f"span_pr_iou{AP_IOU}": {e: _pr_points(detections[e]) for e in ERROR_KEYS},
        "parse_failures": len(unparseable),
        # A few ids to look at; the count above is the full number.
        "parse_failure_ids": unparseable[:20],
    }
    temporal_clips = [c for i, c in enumerate(clips) if temporal[i]]
    meta = {
        "task": "aqa",
        "n": n,
        "n_error_status": sum(c.status_error for c in clips),
        "n_unparseable": len(unparseable),
        "n_no_exercise": sum(c.pred_exercise is None for c in clips),
        "n_temporal": int(temporal.sum()),
        "n_boolean": sum(c.variant == "boolean" for c in clips),
        "n_true_spans": int(n_spans.sum()),
        "n_temporal_unscored": sum(math.isinf(c.score) for c in temporal_clips),
        "models": sorted({p.model for p in predictions}),
        "bootstrap": bootstrap_meta(n_bootstrap, seed),
        "error_scope": "clips whose ground-truth exercise can show the error",
        "error_seed002_scope": "clips whose ground-truth exercise can show the error and whose answer names "
                               "that exercise (seed 002: a wrong exercise skips the clip)",
        "ap_score": (
            f"meta.{SCORE_KEY}: mean token log-probability of the answer (vt-infer); all spans of one "
            "answer share it; answers without one rank last, as one tie group"
        ),
        "ap_definition": (
            f"span_ap_iou{AP_IOU}: ranked detections over temporal clips, one-to-one TP at IoU >= {AP_IOU}, "
            "all-point interpolated precision, one PR point per distinct score (tie-aware); "
            "span_seed002_ap: share of temporal clips showing the error whose span is matched at IoU >= "
            f"{AP_IOU} (seed 002's definition, no ranking)"
        ),
    }
    per_example = []
    for i, c in enumerate(clips):
        per_example.append({
            "id": c.id,
            "model": predictions[i].model,
            "scores": {
                "exercise_correct": float(pred_ex[i] == true_ex[i]),
                "mistake_correct": float(mistake_right[i]),
                # Every in-scope error decision right (the clip's error set read exactly).
                "errors_correct": float(all(y_true[e][i] == y_pred[e][i] for e in ERROR_KEYS if scope[e][i])),
                "span_miou": float(iou_sum[i] / n_spans[i]) if n_spans[i] else None,
            },
        })
    metric_table.add_example_scores(per_example, table_scores)
    return Scored(Metrics(n=n, metrics=values, ci95=ci95, per_class=per_class, meta=meta), per_example)
