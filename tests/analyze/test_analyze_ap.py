"""Span-detection AP (tie-aware), seed 002's variant, error confusion and latency: hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from videotune.analyze.common import latency_functions, weighted_quantile
from videotune.analyze.metrics import aqa_metrics, aqa_scores
from videotune.analyze.spans import RankedDetections, match_at_threshold
from videotune.core.schemas import Prediction

SQ = "The subject is performing a Squat. "
OHP = "The subject is performing a OHP. "


def pred(pid, label, errors, text, score=None, variant="temporal", status="ok", total_s=0.0):
    meta = {"label": label, "errors": [{"name": n, "start_s": s, "end_s": e} for n, s, e in errors],
            "duration_s": 6.0, "variant": variant}
    if score is not None:
        meta["mean_logprob"] = score
    return Prediction(id=pid, model="m", prompt="q", prediction=text, reference="", status=status, meta=meta,
                      total_s=total_s)


def ap(clip, score, tp, n_true):
    det = RankedDetections.build(clip, score, tp, np.asarray(n_true, float))
    return float(det.average_precision(np.ones((1, len(n_true))))[0])


def activitynet_ap(tp_sorted, n_true):
    """The ActivityNet formula (interpolated_prec_rec), written out independently: distinct scores only."""
    tp = np.cumsum(tp_sorted)
    fp = np.cumsum(~np.asarray(tp_sorted))
    rec, prec = tp / n_true, tp / (tp + fp)
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1:] != mrec[0:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def test_ap_by_hand():
    # Ranked TP, FP, TP with 3 true spans: points (P 1, R 1/3), (1/2, 1/3), (2/3, 2/3).
    # Interpolated: 1/3 * 1 + 1/3 * 2/3 = 5/9.
    assert ap([0, 1, 2], [0.9, 0.8, 0.7], [True, False, True], [1, 1, 1]) == pytest.approx(5 / 9)
    assert ap([], [], [], [1, 0]) == 0.0  # true spans, no prediction
    assert np.isnan(ap([0], [0.5], [False], [0, 0]))  # no true span: undefined
    assert ap([0, 1], [0.2, 0.9], [True, True], [1, 1]) == pytest.approx(1.0)


def test_ap_matches_the_activitynet_formula_on_distinct_scores():
    rng = np.random.default_rng(0)
    for _ in range(100):
        m = int(rng.integers(1, 15))
        score = rng.permutation(m).astype(float)
        tp = rng.random(m) < 0.5
        n_true = int(tp.sum() + rng.integers(0, 3)) or 1
        order = np.argsort(-score)
        ours = ap(list(range(m)), list(score), list(tp), [n_true] + [0] * (m - 1))
        assert ours == pytest.approx(activitynet_ap(tp[order], n_true))


def test_ap_is_tie_aware():
    # Same score, one TP one FP, one true span: one curve point (P 1/2, R 1) whatever the order.
    assert ap([0, 1], [0.5, 0.5], [True, False], [1, 0]) == pytest.approx(0.5)
    assert ap([1, 0], [0.5, 0.5], [False, True], [0, 1]) == pytest.approx(0.5)
    # Missing confidences (-inf) rank last, as one tie group.
    assert ap([0, 1, 2], [-np.inf, 0.1, -np.inf], [True, False, True], [1, 1, 1]) == pytest.approx(
        0.0 * (0) + (2 / 3) * (2 / 3))


def test_weighted_ap_equals_ap_of_duplicated_clips():
    # A bootstrap weight of 2 on a clip must equal listing that clip twice.
    weighted = RankedDetections.build([0, 1, 2], [0.9, 0.8, 0.7], [True, False, True], np.array([1.0, 1.0, 1.0]))
    w = np.array([[2.0, 1.0, 0.0]])
    dup = ap([0, 1, 2], [0.9, 0.9, 0.8], [True, True, False], [1, 1, 1])
    assert float(weighted.average_precision(w)[0]) == pytest.approx(dup)


def test_matching_at_threshold_counts_first_then_iou():
    # One prediction overlapping two true spans: it takes the one it reaches 0.5 with.
    assert match_at_threshold([(0.0, 2.0), (1.0, 3.0)], [(1.0, 2.9)], 0.5) == [True]
    # Disjoint spans are never a hit (IoU 0, not |negative overlap|).
    assert match_at_threshold([(0.0, 1.0)], [(2.0, 3.0)], 0.5) == [False]
    # Two predictions, one true span: one TP, one FP.
    assert sorted(match_at_threshold([(0.0, 2.0)], [(0.0, 2.0), (0.1, 2.0)], 0.5)) == [False, True]


def clips():
    return [
        # a: knees_forward exact (IoU 1), confident
        pred("a", "squat", [("knees_forward", 1, 3)], SQ + "knees forward from 1.0s to 3.0s.", -0.1),
        # b: knees_forward disjoint (IoU 0): FP, and its true span missed
        pred("b", "squat", [("knees_forward", 0, 1)], SQ + "knees forward from 2.0s to 3.0s.", -0.2),
        # c: clean squat, but the answer names a span: FP
        pred("c", "squat", [], SQ + "knees forward from 0.0s to 1.0s.", -0.3),
        # d: knees_forward IoU 1/3 (1..3 vs 2..4): FP at 0.5, least confident
        pred("d", "squat", [("knees_forward", 1, 3)], SQ + "knees forward from 2.0s to 4.0s.", -0.4),
        # e: unparseable answer on an elbows clip: no prediction, its true span still counts
        pred("e", "overhead_press", [("elbows", 0, 2)], "¿?", -0.05),
        # f: elbows matched (0..2 vs 0..1.5: IoU 0.75); no confidence recorded -> ranked last
        pred("f", "overhead_press", [("elbows", 0, 2)], OHP + "elbows from 0.0s to 1.5s."),
        # g: not temporal: ignored by span metrics
        pred("g", "overhead_press", [("elbows", 0, 2)], OHP + "elbows from 0.0s to 2.0s.", -0.01, variant="plain"),
    ]


def test_span_ap_and_seed002_through_aqa_metrics():
    m = aqa_metrics(clips(), n_bootstrap=0)
    v = m.metrics
    # knees_forward: ranked a TP, b FP, c FP, d FP; 3 true spans (a, b, d) -> AP = 1/3 * 1.
    assert v["span_ap_iou0.5/knees_forward"] == pytest.approx(1 / 3)
    # elbows: one prediction (f, TP), 2 true spans (e, f) -> P 1 at R 1/2 -> AP 1/2.
    assert v["span_ap_iou0.5/elbows"] == pytest.approx(0.5)
    # No true span of knees_inward or knees in temporal clips: undefined, left out of the mean.
    assert v["span_ap_iou0.5/knees_inward"] is None and v["span_ap_iou0.5/knees"] is None
    assert v["span_map_iou0.5"] == pytest.approx((1 / 3 + 0.5) / 2)
    # Seed 002: share of clips showing the error whose span is matched at IoU >= 0.5.
    assert v["span_seed002_ap/knees_forward"] == pytest.approx(1 / 3)  # a of a, b, d
    assert v["span_seed002_ap/elbows"] == pytest.approx(1 / 2)  # f of e, f
    assert v["span_seed002_map"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m.meta["n_temporal_unscored"] == 1
    curve = m.per_class["span_pr_iou0.5"]["knees_forward"]
    assert curve["precision"] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4]) and curve["n_true"] == 3
    assert m.per_class["span_pr_iou0.5"]["elbows"]["score"] == [None]


def test_ap_bootstrap_interval_contains_the_point():
    m = aqa_metrics(clips() * 1, n_bootstrap=300, seed=1)
    for name in ("span_map_iou0.5", "span_seed002_map"):
        lo, hi = m.ci95[name]
        assert lo <= m.metrics[name] <= hi


def test_error_confusion_counts_multi_label_pairs():
    preds = [
        pred("1", "squat", [("knees_forward", 0, 1), ("knees_inward", 0, 1)], SQ + "knees forward.", variant="plain"),
        pred("2", "squat", [], SQ + "knees inward.", variant="plain"),
        pred("3", "overhead_press", [("elbows", 0, 1)], "no idea", variant="plain"),
    ]
    conf = aqa_metrics(preds, n_bootstrap=0).per_class["error_confusion"]
    labels = conf["labels"]
    cell = {(labels[i], labels[j]): conf["matrix"][i][j] for i in range(len(labels)) for j in range(len(labels))}
    assert cell[("knees_forward", "knees_forward")] == 1 and cell[("knees_inward", "knees_forward")] == 1
    assert cell[("none", "knees_inward")] == 1  # clean clip, error named
    assert cell[("elbows", "none")] == 1  # unparseable answer names nothing
    assert sum(map(sum, conf["matrix"])) == 4


def test_per_example_rows_for_compare():
    scored = aqa_scores(clips(), n_bootstrap=0)
    rows = {r["id"]: r["scores"] for r in scored.per_example}
    assert len(rows) == 7 and rows["a"]["exercise_correct"] == 1.0 and rows["e"]["exercise_correct"] == 0.0
    assert rows["a"]["span_miou"] == 1.0 and rows["g"]["span_miou"] is None


def test_latency_metrics_and_weighted_quantile():
    values = np.array([0.5, 0.1, np.nan, 0.3, 0.9])
    for q in (0.5, 0.95):
        expected = np.percentile(values[~np.isnan(values)], q * 100, method="inverted_cdf")
        assert weighted_quantile(values, q)(np.ones((1, 5)))[0] == pytest.approx(expected)
    # Weights 2 on 0.1: same as listing it twice.
    doubled = np.percentile([0.5, 0.1, 0.1, 0.3, 0.9], 50, method="inverted_cdf")
    assert weighted_quantile(values, 0.5)(np.array([[1, 2, 1, 1, 1.0]]))[0] == pytest.approx(doubled)
    preds = [pred(str(i), "squat", [], SQ, total_s=t, status="error" if i == 3 else "ok")
             for i, t in enumerate([0.2, 0.4, 0.0, 5.0])]
    fns = latency_functions(preds)
    ones = np.ones((1, 4))
    assert fns["latency_mean_s"](ones)[0] == pytest.approx(0.3)  # untimed and failed left out
    assert fns["latency_p50_s"](ones)[0] == pytest.approx(0.2)
    m = aqa_metrics(preds, n_bootstrap=0)
    assert m.metrics["latency_p95_s"] == pytest.approx(0.4)
