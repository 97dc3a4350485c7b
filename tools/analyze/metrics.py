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
- `ci95[name]`: percentile bootstrap 95% interval: examples are resampled with replacement
  (numpy default_rng(seed)) n_bootstrap times, every metric (baselines included) recomputed
  on each resample with the same definition, and the 2.5th/97.5th percentiles taken over
  the resamples where it is defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from videotune.analyze.parse import ParsedAqa, parse_aqa
from videotune.core.io import InputError
from videotune.core.schemas import Metrics, Prediction
from videotune.core.taxonomy import ERROR_KEYS, EXERCISES, exercise_of_error

IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
UNPARSED = "unparsed"
# Bounds the memory of one bootstrap chunk (replicates x examples weights, float64).
_MAX_WEIGHTS_PER_CHUNK = 2_000_000


# --------------------------------------------------------------------------- spans


def span_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two (start, end) spans; 0 when disjoint or when either is reversed."""
    (s1, e1), (s2, e2) = a, b
    if e1 < s1 or e2 < s2:
        return 0.0
    # Clipped at 0: a negative overlap means the spans are disjoint, not that they overlap
    # by its absolute value.
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = (e1 - s1) + (e2 - s2) - inter
    if union <= 0.0:
        # Both spans are instants: they coincide or they do not.
        return 1.0 if (s1, e1) == (s2, e2) else 0.0
    return inter / union


def match_spans(true: list[tuple[float, float]], pred: list[tuple[float, float]]) -> list[float]:
    """For each true span, the IoU of the predicted span matched to it one-to-one (0 if none).

    The assignment maximises the summed IoU, so two predicted spans never share a true span
    and a true span never takes two predicted ones.
    """
    if not true:
        return []
    if not pred:
        return [0.0] * len(true)
    iou = np.array([[span_iou(t, p) for p in pred] for t in true])
    rows, cols = linear_sum_assignment(iou, maximize=True)
    matched = [0.0] * len(true)
    for r, c in zip(rows, cols):
        matched[r] = float(iou[r, c])
    return matched


# --------------------------------------------------------------------------- per-clip facts


@dataclass(frozen=True)
class _Clip:
    id: str
    true_exercise: str
    true_errors: dict[str, list[tuple[float, float]]]
    variant: str
    status_error: bool
    parsed: ParsedAqa | None  # None when the prediction has status "error"

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
    return _Clip(
        id=pred.id,
        true_exercise=label,
        true_errors=true_errors,
        variant=str(meta.get("variant", "plain")),
        status_error=status_error,
        parsed=None if status_error else parse_aqa(pred.prediction),
    )


# --------------------------------------------------------------------------- weighted metrics
#
# Every metric is a function of example weights W (replicates x examples): all ones is the
# data as given, a bootstrap replicate holds how often each example was drawn. One
# definition thus serves the point estimate and every resample.


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


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


# --------------------------------------------------------------------------- bootstrap


def _bootstrap_weights(n: int, n_bootstrap: int, seed: int):
    """Yield chunks of replicate weights: row b counts how often each example was drawn."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_bootstrap, _MAX_WEIGHTS_PER_CHUNK // max(n, 1)))
    done = 0
    while done < n_bootstrap:
        k = min(chunk, n_bootstrap - done)
        draws = rng.integers(0, n, size=(k, n))
        offsets = (np.arange(k) * n)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=k * n).reshape(k, n).astype(float)
        done += k


def _percentile_ci(values: np.ndarray) -> tuple[float, float] | None:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- entry point


def aqa_metrics(predictions: list[Prediction], n_bootstrap: int = 1000, seed: int = 0) -> Metrics:
    """Score AQA predictions (see the module docstring for every definition).

    Raises InputError (naming the prediction) when a prediction's meta lacks its ground truth.
    `n_bootstrap=0` skips the intervals.
    """
    if not predictions:
        raise InputError("no predictions to score")
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
        functions[f"baseline_no_error/error_f1/{e}"] = lambda W, e=e: _detection(W, scope[e], y_true[e], y_none)[2]
    functions["baseline_no_error/error_macro_f1"] = lambda W: _nanmean_rows(
        [functions[f"baseline_no_error/error_f1/{e}"](W) for e in ERROR_KEYS]
    )
    for t in IOU_THRESHOLDS:
        functions[f"span_r1_iou{t}"] = lambda W, t=t: _ratio(W @ hits[t], W @ n_spans)
    functions["span_miou"] = lambda W: _ratio(W @ iou_sum, W @ n_spans)

    ones = np.ones((1, n))
    values: dict[str, float | None] = {}
    for name, fn in functions.items():
        v = float(fn(ones)[0])
        values[name] = None if np.isnan(v) else v
    # Point estimates of detection come from sklearn itself; the weighted formula above
    # (the same zero_division=0 convention) serves the resamples.
    for e in ERROR_KEYS:
        for prefix, pred in (("error", y_pred[e]), ("baseline_no_error/error", y_none)):
            prf = _sklearn_prf(scope[e], y_true[e], pred)
            for kind, v in zip(("precision", "recall", "f1"), prf or (None, None, None)):
                if f"{prefix}_{kind}/{e}" in values:
                    values[f"{prefix}_{kind}/{e}"] = v
    for prefix in ("", "baseline_no_error/"):
        f1s = [values[f"{prefix}error_f1/{e}"] for e in ERROR_KEYS if values[f"{prefix}error_f1/{e}"] is not None]
        values[f"{prefix}error_macro_f1"] = float(np.mean(f1s)) if f1s else None

    ci95: dict[str, tuple[float, float]] = {}
    if n_bootstrap > 0:
        samples: dict[str, list[np.ndarray]] = {name: [] for name in functions}
        for W in _bootstrap_weights(n, n_bootstrap, seed):
            for name, fn in functions.items():
                samples[name].append(fn(W))
        for name, chunks in samples.items():
            if values[name] is None:
                continue
            ci = _percentile_ci(np.concatenate(chunks))
            if ci is not None:
                ci95[name] = ci

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
        "errors": errors_table,
        "parse_failures": len(unparseable),
        # A few ids to look at; the count above is the full number.
        "parse_failure_ids": unparseable[:20],
    }
    meta = {
        "task": "aqa",
        "n": n,
        "n_error_status": sum(c.status_error for c in clips),
        "n_unparseable": len(unparseable),
        "n_no_exercise": sum(c.pred_exercise is None for c in clips),
        "n_temporal": int(temporal.sum()),
        "n_boolean": sum(c.variant == "boolean" for c in clips),
        "n_true_spans": int(n_spans.sum()),
        "models": sorted({p.model for p in predictions}),
        "bootstrap": {"n": n_bootstrap, "seed": seed, "method": "percentile, examples resampled with replacement"},
        "error_scope": "clips whose ground-truth exercise can show the error",
    }
    return Metrics(n=n, metrics=values, ci95=ci95, per_class=per_class, meta=meta)
