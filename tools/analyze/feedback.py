"""Metrics of the feedback (physiotherapy guidance) task: text metrics and exercise accuracy.

Text metrics are those of text.py, each with a bootstrap 95% interval. The exercise is read
from the descriptive label: QVED labels read "step-ups - knees caving; keep knees over
toes", so the exercise is the part before the first " - " only (exercise names carry
hyphens themselves: "step-ups"); a label without " - " is all exercise (vt-prep's gym
labels: "squat").

Definitions (names as written to metrics.json):

- `exercise_accuracy`: share of all predictions whose exercise equals the true one. The true
  exercise comes from meta.label (the reference when there is no label). The predicted one
  is, in order: the part of the answer before its first " - " when that is a known exercise;
  else the one exercise named in that part (or, failing that, in the whole answer), matched
  as a whole word, longest name first, with any run of spaces, hyphens or underscores
  between words and an optional plural "s". Known exercises are the true exercises of the
  evaluated set, with their taxonomy aliases where a label is a taxonomy key ("squat" also
  reads "Squat", "back squat"). An answer naming no known exercise, or two, is "unparsed";
  it and failed predictions count as wrong and stay in the denominator.
- `baseline_majority/exercise_accuracy`: the same for a constant prediction of the most
  frequent true exercise (recomputed on each resample).
- text metrics (text.py): `embedding_similarity`, `bertscore_f1`, `meteor`, `rouge_l`,
  `bleu_1`..`bleu_4`, `cider` (where Java exists).
- latency metrics (common.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix

from videotune.analyze import metric_table
from videotune.analyze.bootstrap import point_and_ci, ratio, weighted_mean
from videotune.analyze.common import Scored, bootstrap_meta, check_task, latency_functions
from videotune.analyze.text import TextModels, bleu_from_stats, score_texts
from videotune.core.schemas import Metrics, Prediction
from videotune.core.taxonomy import EXERCISES

SEPARATOR = " - "
UNPARSED = "unparsed"


def normalize_name(name: str) -> str:
    """Comparison key of an exercise name: case-folded, spaces/hyphens/underscores as one space."""
    return " ".join(re.split(r"[\s_\-]+", unicodedata.normalize("NFKC", name).casefold().strip())).strip()


def exercise_of_label(label: str) -> str:
    """The exercise of a descriptive label: the text before the first " - " (all of it if none)."""
    return label.split(SEPARATOR, 1)[0].strip()


def exercise_vocabulary(true_exercises: list[str]) -> dict[str, str]:
    """Spelling (normalized) -> exercise key, from the true exercises and their taxonomy aliases."""
    vocab: dict[str, str] = {}
    for exercise in true_exercises:
        key = normalize_name(exercise)
        vocab[key] = key
        taxonomy = EXERCISES.get(exercise) or EXERCISES.get(key.replace(" ", "_"))
        if taxonomy is not None:
            for alias in (taxonomy.display, taxonomy.key, *taxonomy.aliases):
                vocab.setdefault(normalize_name(alias), key)
    return vocab


def _patterns(vocab: dict[str, str]) -> list[tuple[str, re.Pattern[str]]]:
    pairs = []
    for spelling, key in vocab.items():
        words = [re.escape(w) for w in spelling.split(" ") if w]
        body = r"[\s_\-]+".join(words)
        pairs.append((len(spelling), key, re.compile(rf"(?<!\w){body}s?(?!\w)")))
    pairs.sort(key=lambda p: -p[0])
    return [(key, pattern) for _, key, pattern in pairs]


def _named(text: str, patterns: list[tuple[str, re.Pattern[str]]]) -> set[str]:
    """Exercises named in text, longest name first, each match blanked so shorter names cannot reuse it."""
    work = unicodedata.normalize("NFKC", text).casefold()
    found = set()
    for key, pattern in patterns:
        for match in list(pattern.finditer(work)):
            found.add(key)
            work = work[:match.start()] + " " * (match.end() - match.start()) + work[match.end():]
    return found


def parse_exercise(text: str, vocab: dict[str, str], patterns: list[tuple[str, re.Pattern[str]]] | None = None) -> str | None:
    """The exercise an answer names (see the module docstring), or None."""
    patterns = patterns if patterns is not None else _patterns(vocab)
    head = text.split(SEPARATOR, 1)[0] if SEPARATOR in text else None
    if head is not None and normalize_name(head) in vocab:
        return vocab[normalize_name(head)]
    for region in ([head, text] if head is not None else [text]):
        named = _named(region, patterns)
        if len(named) == 1:
            return named.pop()
        if len(named) > 1:
            return None  # two exercises named: commits to neither
    return None


def _majority_accuracy(W: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """Accuracy of always predicting the resample's most frequent true class (ties: lowest index)."""
    counts = np.stack([W @ (truth == c).astype(float) for c in range(classes)], axis=1)
    return ratio(counts.max(axis=1), W.sum(axis=1))


def feedback_scores(
    predictions: list[Prediction], models: TextModels, n_bootstrap: int = 1000, seed: int = 0, batch_size: int = 64
) -> Scored:
    """Score feedback predictions (see the module docstring); InputError for foreign predictions."""
    check_task(predictions, "feedback")
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    n = len(predictions)
    failed = [p.status == "error" for p in predictions]
    texts = score_texts([p.prediction for p in predictions], [p.reference for p in predictions], models,
                        batch_size=batch_size, failed=failed)

    labels = [str(p.meta.get("label") or p.reference) for p in predictions]
    true_names = [exercise_of_label(label) for label in labels]
    vocab = exercise_vocabulary(true_names)
    patterns = _patterns(vocab)
    truth = [normalize_name(t) for t in true_names]
    guessed = [None if failed[i] else parse_exercise(p.prediction, vocab, patterns) for i, p in enumerate(predictions)]
    classes = sorted(set(truth))
    index = {c: i for i, c in enumerate(classes)}
    true_idx = np.array([index[t] for t in truth])
    correct = np.array([g is not None and g == t for g, t in zip(guessed, truth)], dtype=float)

    functions: dict[str, Any] = {
        "exercise_accuracy": weighted_mean(correct),
        "baseline_majority/exercise_accuracy": lambda W: _majority_accuracy(W, true_idx, len(classes)),
    }
    for name, values in texts.per_example.items():
        functions[name] = weighted_mean(values)
    for order in (1, 2, 3, 4):
        functions[f"bleu_{order}"] = lambda W, order=order: np.array(
            [bleu_from_stats(row, order) for row in W @ texts.bleu_stats]
        )
    functions.update(latency_functions(predictions))
    table_functions, table_scores = metric_table.example_functions("feedback", predictions)
    functions.update(table_functions)
    values, ci95 = point_and_ci(functions, n, n_bootstrap, seed)

    display: dict[str, str] = {}
    for name, key in zip(true_names, truth):
        display.setdefault(key, name)
    confusion_labels = [*classes, UNPARSED]
    matrix = confusion_matrix(truth, [g or UNPARSED for g in guessed], labels=confusion_labels)
    per_class = {
        "exercise_confusion": {"labels": confusion_labels, "matrix": matrix.tolist(),
                               "display": [display.get(c, c) for c in confusion_labels]},
        "exercise_support": dict(Counter(truth)),
        "parse_failures": sum(g is None and not f for g, f in zip(guessed, failed)),
        "parse_failure_ids": [p.id for p, g, f in zip(predictions, guessed, failed) if g is None and not f][:20],
    }
    meta = {
        "task": "feedback",
        "n": n,
        "n_error_status": sum(failed),
        "n_unparseable": per_class["parse_failures"],
        "models": sorted({p.model for p in predictions}),
        "bootstrap": bootstrap_meta(n_bootstrap, seed),
        "exercise_rule": "label text before the first ' - '; answers read as in feedback.py",
        "text_metrics": texts.meta,
        "absent_metrics": texts.absent,
    }
    per_example = []
    for i, p in enumerate(predictions):
        scores = {"exercise_correct": float(correct[i])}
        scores.update({name: float(values_[i]) for name, values_ in texts.per_example.items()})
        per_example.append({"id": p.id, "model": p.model, "scores": scores,
                            "stats": {"bleu": [float(x) for x in texts.bleu_stats[i]]}})
    metric_table.add_example_scores(per_example, table_scores)
    return Scored(Metrics(n=n, metrics=values, ci95=ci95, per_class=per_class, meta=meta), per_example)
