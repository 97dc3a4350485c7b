"""AQA metrics on hand-made predictions whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from videotune.analyze.metrics import _detection, aqa_metrics, match_spans, span_iou
from videotune.core.io import InputError
from videotune.core.schemas import Prediction
from videotune.core.taxonomy import ERROR_KEYS


def pred(pid, label, errors, text, variant="plain", status="ok"):
    return Prediction(
        id=pid, model="m", prompt="q", prediction=text, reference="", status=status,
        meta={
            "label": label,
            "errors": [{"name": n, "start_s": s, "end_s": e} for n, s, e in errors],
            "duration_s": 6.0,
            "variant": variant,
        },
    )


SQ = "The subject is performing a Squat. "
OHP = "The subject is performing a OHP. "


def six_clips():
    return [
        # 1: squat, knees forward, named -> knees_forward TP, knees_inward TN
        pred("1", "squat", [("knees_forward", 1, 2)], SQ + "The body part committing errors is the following: knees forward."),
        # 2: squat, both errors, only one named -> knees_forward TP, knees_inward FN
        pred("2", "squat", [("knees_forward", 1, 2), ("knees_inward", 2, 3)], SQ + "Error: knees forward."),
        # 3: squat, correct, knees inward named -> knees_inward FP, knees_forward TN
        pred("3", "squat", [], SQ + "Error: knees inward."),
        # 4: OHP, elbows; elbows and knees named -> elbows TP, knees FP
        pred("4", "overhead_press", [("elbows", 0, 1)], OHP + "Errors: elbows and knees."),
        # 5: OHP, knees; the answer says Squat/knees forward -> exercise wrong, knees FN, elbows TN
        pred("5", "overhead_press", [("knees", 0, 1)], SQ + "Error: knees forward."),
        # 6: OHP, correct; unparseable answer -> exercise wrong, elbows TN, knees TN
        pred("6", "overhead_press", [], "I am not sure."),
    ]


def test_six_clips_by_hand():
    m = aqa_metrics(six_clips(), n_bootstrap=0)
    v = m.metrics
    assert m.n == 6
    assert v["exercise_accuracy"] == pytest.approx(4 / 6)
    # 3 squats, 3 OHPs: the tie goes to the first exercise of the taxonomy -> 3/6.
    assert v["baseline_majority/exercise_accuracy"] == pytest.approx(0.5)

    # knees_forward over clips 1-3: tp 2, fp 0, fn 0.
    assert (v["error_precision/knees_forward"], v["error_recall/knees_forward"], v["error_f1/knees_forward"]) == (1, 1, 1)
    # knees_inward over clips 1-3: tp 0, fp 1 (clip 3), fn 1 (clip 2).
    assert (v["error_precision/knees_inward"], v["error_recall/knees_inward"], v["error_f1/knees_inward"]) == (0, 0, 0)
    # elbows over clips 4-6: tp 1 (clip 4), fp 0, fn 0.
    assert v["error_f1/elbows"] == 1
    # knees over clips 4-6: tp 0, fp 1 (clip 4), fn 1 (clip 5).
    assert (v["error_precision/knees"], v["error_recall/knees"], v["error_f1/knees"]) == (0, 0, 0)
    assert v["error_macro_f1"] == pytest.approx((1 + 0 + 1 + 0) / 4)
    for e in ERROR_KEYS:
        assert v[f"baseline_no_error/error_f1/{e}"] == 0
    assert v["baseline_no_error/error_macro_f1"] == 0

    # Mistake present? truth T T F T T F; answers T T T T T (unreadable) -> 4/6 right;
    # the majority ("mistake") is right 4/6 times as well.
    assert v["mistake_accuracy"] == pytest.approx(4 / 6)
    assert v["baseline_majority/mistake_accuracy"] == pytest.approx(4 / 6)

    errors = m.per_class["errors"]
    assert errors["knees_inward"] == {"exercise": "squat", "n_clips": 3, "support": 1, "tp": 0, "fp": 1, "fn": 1, "tn": 1}
    assert errors["knees"] == {"exercise": "overhead_press", "n_clips": 3, "support": 1, "tp": 0, "fp": 1, "fn": 1, "tn": 1}
    assert m.per_class["exercise_confusion"] == {
        "labels": ["squat", "overhead_press", "unparsed"],
        "matrix": [[3, 0, 0], [1, 1, 1], [0, 0, 0]],
    }
    assert m.per_class["parse_failures"] == 1 and m.per_class["parse_failure_ids"] == ["6"]
    # No temporal prediction: span metrics exist with no value.
    for name in ("span_r1_iou0.3", "span_r1_iou0.5", "span_r1_iou0.7", "span_miou"):
        assert name in v and v[name] is None
    assert m.meta["n_temporal"] == 0 and m.meta["n_unparseable"] == 1


def test_unparseable_and_failed_predictions_count_as_wrong():
    preds = [
        pred("a", "squat", [], SQ + "He performs it correctly."),
        pred("b", "squat", [], "¿Qué?"),
        pred("c", "squat", [], "", status="error"),
        pred("d", "squat", [], "The subject is performing a Squat or an OHP."),
    ]
    m = aqa_metrics(preds, n_bootstrap=0)
    assert m.n == 4
    assert m.metrics["exercise_accuracy"] == pytest.approx(1 / 4)
    assert m.metrics["mistake_accuracy"] == pytest.approx(1 / 4)
    assert m.meta["n_error_status"] == 1
    assert m.meta["n_unparseable"] == 2  # b and d; c failed before any text existed
    assert m.per_class["exercise_confusion"]["matrix"][0] == [1, 0, 3]


def test_baseline_follows_the_data_not_a_constant():
    preds = [pred(str(i), "overhead_press", [("elbows", 0, 1)], OHP + "elbows") for i in range(3)]
    preds.append(pred("s", "squat", [], SQ))
    m = aqa_metrics(preds, n_bootstrap=0)
    assert m.metrics["baseline_majority/exercise_accuracy"] == pytest.approx(3 / 4)
    assert m.metrics["baseline_majority/mistake_accuracy"] == pytest.approx(3 / 4)
    # Only squat and OHP clips of one kind each: knees_inward has clips but no support.
    assert m.metrics["error_f1/elbows"] == 1.0
    assert m.metrics["baseline_no_error/error_f1/elbows"] == 0.0


def test_error_without_clips_is_undefined_and_left_out_of_the_macro():
    preds = [
        pred("1", "squat", [("knees_forward", 0, 1)], SQ + "knees forward"),
        pred("2", "squat", [], SQ + "correctly"),
    ]
    m = aqa_metrics(preds, n_bootstrap=50)
    assert m.metrics["error_f1/elbows"] is None and m.metrics["error_f1/knees"] is None
    assert "error_f1/elbows" not in m.ci95
    # knees_forward F1 1, knees_inward F1 0 (no support, zero_division=0).
    assert m.metrics["error_macro_f1"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- spans


def test_span_iou():
    assert span_iou((0.0, 1.0), (2.0, 3.0)) == 0.0  # disjoint: 0, not |negative overlap|
    assert span_iou((0.0, 1.0), (1.0, 2.0)) == 0.0  # touching
    assert span_iou((0.0, 2.0), (1.0, 3.0)) == pytest.approx(1 / 3)
    assert span_iou((1.0, 3.0), (1.0, 3.0)) == 1.0
    assert span_iou((0.0, 4.0), (1.0, 2.0)) == pytest.approx(0.25)
    assert span_iou((3.0, 1.0), (1.0, 3.0)) == 0.0  # reversed span: invalid
    assert span_iou((2.0, 2.0), (2.0, 2.0)) == 1.0
    assert span_iou((2.0, 2.0), (1.0, 3.0)) == 0.0


def test_matching_is_one_to_one():
    # Two predicted spans cannot both match the single true span.
    assert match_spans([(0.0, 2.0)], [(0.0, 2.0), (0.1, 2.0)]) == [1.0]
    # Two true spans near one prediction: only one of them gets it.
    assert sorted(match_spans([(0.0, 2.0), (0.0, 1.9)], [(0.0, 2.0)])) == [0.0, 1.0]
    # The assignment maximises the summed IoU rather than taking greedy best pairs.
    matched = match_spans([(0.0, 2.0), (1.0, 3.0)], [(1.0, 3.0), (0.0, 2.0)])
    assert matched == [1.0, 1.0]
    assert match_spans([(0.0, 1.0)], []) == [0.0]
    assert match_spans([], [(0.0, 1.0)]) == []


def test_span_metrics_by_hand():
    preds = [
        # Two true spans; the answer gives the first exactly and a second span that overlaps
        # the first true span only: one-to-one -> IoUs 1 and 0.
        pred("a", "squat", [("knees_forward", 0, 2), ("knees_forward", 4, 6)],
             SQ + "knees forward from frame time 0.0s to 2.0s and knees forward from 0.5s to 2.0s.", "temporal"),
        # One true span (1, 3) against (2, 4): IoU 1/3.
        pred("b", "overhead_press", [("elbows", 1, 3)], OHP + "elbows from 2s to 4s.", "temporal"),
        # Not temporal: ignored by span metrics even though its span is wrong.
        pred("c", "overhead_press", [("elbows", 1, 3)], OHP + "elbows from 5s to 6s."),
        # Temporal, error named with a disjoint span: IoU 0.
        pred("d", "overhead_press", [("knees", 0, 1)], OHP + "knees from 2s to 3s.", "temporal"),
    ]
    m = aqa_metrics(preds, n_bootstrap=0)
    ious = [1.0, 0.0, 1 / 3, 0.0]
    v = m.metrics
    assert v["span_r1_iou0.3"] == pytest.approx(2 / 4)
    assert v["span_r1_iou0.5"] == pytest.approx(1 / 4)
    assert v["span_r1_iou0.7"] == pytest.approx(1 / 4)
    assert v["span_miou"] == pytest.approx(sum(ious) / 4)
    assert m.meta["n_temporal"] == 3 and m.meta["n_true_spans"] == 4


def test_reversed_predicted_span_scores_zero():
    preds = [pred("a", "squat", [("knees_forward", 1, 3)], SQ + "knees forward from 3s to 1s.", "temporal")]
    assert aqa_metrics(preds, n_bootstrap=0).metrics["span_miou"] == 0.0


# --------------------------------------------------------------------------- bootstrap


def larger_set(n=60, seed=1):
    rng = np.random.default_rng(seed)
    preds = []
    for i in range(n):
        label = "squat" if rng.random() < 0.5 else "overhead_press"
        error = "knees_forward" if label == "squat" else "elbows"
        has = rng.random() < 0.5
        said = has if rng.random() < 0.75 else not has
        name = SQ if (label == "squat") == (rng.random() < 0.85) else OHP
        text = name + (f"{error.replace('_', ' ')} from 1.0s to 2.5s." if said else "He performs it correctly.")
        preds.append(pred(str(i), label, [(error, 1.0, 3.0)] if has else [], text, "temporal" if i % 2 else "plain"))
    return preds


def test_bootstrap_ci_contains_point_and_is_deterministic():
    preds = larger_set()
    a = aqa_metrics(preds, n_bootstrap=300, seed=7)
    b = aqa_metrics(preds, n_bootstrap=300, seed=7)
    c = aqa_metrics(preds, n_bootstrap=300, seed=8)
    assert a.ci95 == b.ci95
    assert a.ci95 != c.ci95
    defined = {k for k, val in a.metrics.items() if val is not None}
    assert set(a.ci95) == defined  # an interval for every metric that has a value
    for name in ("exercise_accuracy", "mistake_accuracy", "error_f1/knees_forward", "error_f1/elbows",
                 "error_macro_f1", "span_r1_iou0.5", "span_miou", "baseline_majority/exercise_accuracy"):
        lo, hi = a.ci95[name]
        assert lo <= a.metrics[name] <= hi, name
        assert lo < hi, name


def test_no_bootstrap_means_no_intervals():
    assert aqa_metrics(six_clips(), n_bootstrap=0).ci95 == {}


def test_weighted_detection_equals_sklearn():
    # The resamples use the count formula; with unit weights it must equal sklearn.
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        scope = rng.random(n) < 0.7
        y_true, y_pred = rng.random(n) < 0.4, rng.random(n) < 0.3
        ours = [float(x[0]) for x in _detection(np.ones((1, n)), scope, y_true, y_pred)]
        if not scope.any():
            assert all(math.isnan(x) for x in ours)
            continue
        p, r, f, _ = precision_recall_fscore_support(
            y_true[scope], y_pred[scope], average="binary", labels=[False, True], zero_division=0
        )
        assert ours == pytest.approx([p, r, f])


# --------------------------------------------------------------------------- bad input


def test_missing_ground_truth_names_the_prediction():
    bad = Prediction(id="x9", model="m", prompt="", prediction="Squat", reference="", status="ok", meta={})
    with pytest.raises(InputError, match="x9"):
        aqa_metrics([bad])
    wrong_pair = pred("x10", "squat", [("elbows", 0, 1)], SQ)
    with pytest.raises(InputError, match="does not belong"):
        aqa_metrics([wrong_pair])
    with pytest.raises(InputError):
        aqa_metrics([])


def _umap25_f1(clips: list[Prediction]) -> dict[str, float]:
    """Seed 002's per-key F1 as UMAP25's evaluation.py computes it: a clip whose predicted exercise differs
    from the true one is skipped ("wrong exercise type predicted"); every other clip adds, for each error of
    its exercise, (error present in the truth, error named in the answer); sklearn's f1_score per key."""
    from sklearn.metrics import f1_score

    from videotune.analyze.parse import parse_aqa
    from videotune.core.taxonomy import exercise_of_error

    truth: dict[str, list[int]] = {}
    named: dict[str, list[int]] = {}
    for p in clips:
        parsed = parse_aqa(p.prediction) if p.status == "ok" else None
        if parsed is None or parsed.exercise != p.meta["label"]:
            continue
        present = {e["name"] for e in p.meta["errors"]}
        for e in ERROR_KEYS:
            if exercise_of_error(e) == p.meta["label"]:
                truth.setdefault(e, []).append(int(e in present))
                named.setdefault(e, []).append(int(e in parsed.errors))
    return {e: float(f1_score(truth[e], named[e], zero_division=0)) for e in truth}


def test_seed002_error_f1_skips_clips_answered_as_the_other_exercise():
    clips = six_clips() + [
        # 7: squat with knees forward, answered as an OHP with the OHP's knees error: the seed skips the clip;
        # scoped by the true exercise it is a missed knees forward (and no OHP error is charged).
        pred("7", "squat", [("knees_forward", 1, 2)], OHP + "Error: knees."),
    ]
    v = aqa_metrics(clips, n_bootstrap=200, seed=0).metrics
    # Seed 002 over the clips with the right exercise (1-4): knees forward tp 2; knees inward tp 0 fp 1 fn 1;
    # elbows tp 1 (clip 4); knees fp 1 (clip 4).
    seed = {"knees_forward": 1.0, "knees_inward": 0.0, "elbows": 1.0, "knees": 0.0}
    assert {e: v[f"error_seed002_f1/{e}"] for e in ERROR_KEYS} == pytest.approx(seed)
    assert {e: v[f"error_seed002_f1/{e}"] for e in ERROR_KEYS} == pytest.approx(_umap25_f1(clips))
    assert v["error_seed002_macro_f1"] == pytest.approx(0.5)
    assert v["error_seed002_recall/knees_forward"] == 1.0 and v["error_seed002_precision/knees"] == 0.0
    # Scoped by the true exercise (every model on the same clips): clip 7 is a knees forward miss
    # (tp 2, fn 1: F1 0.8), clip 5 (OHP answered as a squat) a knees miss.
    assert v["error_f1/knees_forward"] == pytest.approx(0.8)
    assert v["error_recall/knees_forward"] == pytest.approx(2 / 3)
    assert v["error_f1/knees"] == 0.0 and v["error_f1/elbows"] == 1.0
    assert v["error_macro_f1"] == pytest.approx((0.8 + 0 + 1 + 0) / 4)
    true_scope = {}
    for e in ERROR_KEYS:
        from videotune.core.taxonomy import exercise_of_error

        ys = [(any(x["name"] == e for x in c.meta["errors"]), e in _named(c)) for c in clips
              if c.meta["label"] == exercise_of_error(e)]
        true_scope[e] = precision_recall_fscore_support([t for t, _ in ys], [p for _, p in ys], average="binary",
                                                        zero_division=0)[2]
    assert {e: v[f"error_f1/{e}"] for e in ERROR_KEYS} == pytest.approx(true_scope)


def test_seed002_error_f1_when_every_exercise_is_wrong():
    # Every answer names the other exercise: the seed has no clip left to score (None), while the
    # true-exercise scope charges every true error as a miss.
    clips = [pred("1", "squat", [("knees_forward", 1, 2)], OHP + "Error: knees."),
             pred("2", "overhead_press", [("elbows", 0, 1)], SQ + "Error: knees forward.")]
    v = aqa_metrics(clips, n_bootstrap=0).metrics
    assert all(v[f"error_seed002_f1/{e}"] is None for e in ERROR_KEYS) and v["error_seed002_macro_f1"] is None
    assert v["error_f1/knees_forward"] == 0.0 and v["error_f1/elbows"] == 0.0


def _named(p: Prediction) -> set[str]:
    from videotune.analyze.parse import parse_aqa

    return set(parse_aqa(p.prediction).errors) if p.status == "ok" else set()
