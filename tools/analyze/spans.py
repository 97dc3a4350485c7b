"""Temporal spans: IoU, one-to-one matching, and average precision of span detection.

AP follows the temporal-action-localisation convention (ActivityNet / THUMOS): every
predicted span of an error class, over all clips, is ranked by a confidence score; a
prediction is a true positive when it is matched one-to-one to a true span of the same class
in the same clip with IoU >= the threshold; AP is the area under the precision-recall curve
with precision made monotone (all-point interpolation), recall over every true span.

Two choices make it *tie-aware*, so that the value never depends on the order in which
equal scores happen to be listed:
- matching within a clip is an optimal assignment (most matches at IoU >= threshold, then the
  largest summed IoU), not a greedy walk down the ranking: spans of one answer share its
  score, so a greedy order among them would be arbitrary;
- the precision-recall curve has one point per distinct score (a tie group enters at once),
  as sklearn's average_precision_score does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from videotune.analyze.bootstrap import ratio

Span = tuple[float, float]


def span_iou(a: Span, b: Span) -> float:
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


def match_spans(true: list[Span], pred: list[Span]) -> list[float]:
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


def match_at_threshold(true: list[Span], pred: list[Span], threshold: float) -> list[bool]:
    """For each predicted span: is it a true positive at IoU >= threshold (one-to-one)?

    The assignment first maximises the number of pairs at or above the threshold, then their
    summed IoU: weights n + IoU for qualifying pairs (n = the larger span count) make k
    matches always outweigh k - 1, whatever their IoUs.
    """
    if not pred:
        return []
    if not true:
        return [False] * len(pred)
    iou = np.array([[span_iou(t, p) for p in pred] for t in true])
    big = float(max(len(true), len(pred)))
    weight = np.where(iou >= threshold, big + iou, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    hit = [False] * len(pred)
    for r, c in zip(rows, cols):
        if weight[r, c] > 0:
            hit[c] = True
    return hit


@dataclass(frozen=True)
class RankedDetections:
    """The predicted spans of one class, ranked, with what average precision needs.

    clip: index of the clip each predicted span belongs to (for resampling clips);
    score: its confidence (-inf when the answer carried none, so it ranks last);
    tp: whether it is a true positive; n_true: true spans of the class per clip.
    """

    clip: np.ndarray
    score: np.ndarray
    tp: np.ndarray
    n_true: np.ndarray

    @classmethod
    def build(cls, clip: list[int], score: list[float], tp: list[bool], n_true: np.ndarray) -> RankedDetections:
        order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
        return cls(
            clip=np.asarray(clip, dtype=int)[order] if clip else np.zeros(0, dtype=int),
            score=np.asarray(score, dtype=float)[order] if score else np.zeros(0),
            tp=np.asarray(tp, dtype=bool)[order] if tp else np.zeros(0, dtype=bool),
            n_true=np.asarray(n_true, dtype=float),
        )

    def _group_ends(self) -> np.ndarray:
        """Index of the last span of each tie group (equal scores) in the ranking."""
        if self.score.size == 0:
            return np.zeros(0, dtype=int)
        # -inf == -inf, so unscored spans form one group, as they should.
        change = np.nonzero(self.score[1:] != self.score[:-1])[0]
        return np.append(change, self.score.size - 1)

    def curve(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall at each tie-group end, per replicate (rows of W)."""
        ends = self._group_ends()
        w = W[:, self.clip] if self.clip.size else np.zeros((W.shape[0], 0))
        tp = np.cumsum(w * self.tp, axis=1)[:, ends] if ends.size else np.zeros((W.shape[0], 0))
        fp = np.cumsum(w * ~self.tp, axis=1)[:, ends] if ends.size else np.zeros((W.shape[0], 0))
        n_true = W @ self.n_true
        precision = np.nan_to_num(ratio(tp, tp + fp), nan=0.0)
        recall = ratio(tp, n_true[:, None])
        return precision, recall

    def average_precision(self, W: np.ndarray) -> np.ndarray:
        """AP per replicate: sum over recall steps of the interpolated precision; NaN if no true span."""
        n_true = W @ self.n_true
        precision, recall = self.curve(W)
        if precision.shape[1] == 0:
            return np.where(n_true > 0, 0.0, np.nan)
        recall = np.nan_to_num(recall, nan=0.0)
        # All-point interpolation: precision at recall r is the best precision at any recall >= r.
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        steps = np.diff(np.concatenate([np.zeros((W.shape[0], 1)), recall], axis=1), axis=1)
        ap = (steps * envelope).sum(axis=1)
        return np.where(n_true > 0, ap, np.nan)
