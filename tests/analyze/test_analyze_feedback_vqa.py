"""Feedback exercise reading (hyphenated and non-Latin names) and VQA accuracy, worked by hand."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from videotune.analyze.cli import app
from videotune.analyze.feedback import exercise_of_label, exercise_vocabulary, feedback_scores, parse_exercise
from videotune.analyze.vqa import normalize_answer, vqa_scores
from videotune.core.io import InputError
from videotune.core.schemas import Metrics, Prediction

runner = CliRunner()


def fb(pid, prediction, label, reference=None, status="ok"):
    return Prediction(id=pid, model="m", prompt="", prediction=prediction, reference=reference or label,
                      status=status, meta={"label": label, "task": "feedback"})


def test_exercise_is_the_part_before_the_first_separator_only():
    assert exercise_of_label("step-ups - knees caving; keep knees over toes") == "step-ups"
    assert exercise_of_label("side-lying leg raises - hips roll back - keep them stacked") == "side-lying leg raises"
    assert exercise_of_label("squat") == "squat"
    assert exercise_of_label("Приседания - колени внутрь") == "Приседания"


def test_parse_exercise_reads_hyphenated_aliases_and_refuses_ambiguity():
    vocab = exercise_vocabulary(["step-ups", "squats", "side-lying leg raises", "приседания", "squat", "overhead_press"])
    assert parse_exercise("step-ups - knees caving", vocab) == "step ups"
    assert parse_exercise("Step ups: your knees cave in", vocab) == "step ups"  # no separator: named in the text
    assert parse_exercise("side lying leg raises - fine", vocab) == "side lying leg raises"
    assert parse_exercise("Приседания - колени внутрь", vocab) == "приседания"
    # The part before the first " - " decides, even when a later part names another exercise.
    assert parse_exercise("squats - unlike step-ups - keep the chest up", vocab) == "squats"
    assert parse_exercise("squats or step-ups - not sure", vocab) is None  # two exercises named
    assert parse_exercise("I cannot tell", vocab) is None
    # Taxonomy aliases of gym labels: "OHP" is the overhead press, "Squat" the squat.
    assert parse_exercise("OHP (5 reps): elbows flare out", vocab) == "overhead press"
    assert parse_exercise("Good Squat: 4 controlled reps", vocab) == "squat"


def test_feedback_scores_count_unparseable_and_failed_as_wrong(text_models_no_java):
    preds = [
        fb("1", "step-ups - knees caving; keep knees over toes", "step-ups - knees caving; keep knees over toes"),
        fb("2", "squats - chest dropping", "squats - chest dropping; keep chest up"),
        fb("3", "", "lunges - knee past toes"),
        fb("4", "Приседания - колени внутрь", "Приседания - колени наружу"),
        fb("5", "I cannot tell", "squats - fine form"),
        fb("6", "", "step-ups - fine", status="error"),
    ]
    scored = feedback_scores(preds, text_models_no_java, n_bootstrap=100, seed=0)
    m = scored.metrics
    assert m.n == 6 and m.metrics["exercise_accuracy"] == pytest.approx(3 / 6)
    # Majority exercise: squats and step-ups twice each -> 2/6.
    assert m.metrics["baseline_majority/exercise_accuracy"] == pytest.approx(2 / 6)
    assert m.meta["n_error_status"] == 1 and m.meta["n_unparseable"] == 2  # "" and "I cannot tell"
    for name in ("embedding_similarity", "bertscore_f1", "meteor", "rouge_l", "bleu_1", "bleu_4"):
        lo, hi = m.ci95[name]
        assert lo <= m.metrics[name] <= hi, name
    rows = {r["id"]: r["scores"] for r in scored.per_example}
    assert rows["3"]["meteor"] == 0 and rows["6"]["bertscore_f1"] == 0 and rows["1"]["rouge_l"] == 1
    conf = m.per_class["exercise_confusion"]
    assert conf["display"][conf["labels"].index("step ups")] == "step-ups"
    with pytest.raises(InputError, match="meta.task"):
        feedback_scores([Prediction(id="x", model="m", prompt="", prediction="", reference="r", status="ok",
                                    meta={"task": "vqa"})], text_models_no_java, n_bootstrap=0)


def test_feedback_cli_writes_metrics_and_per_example(tmp_path, text_models, monkeypatch):
    import videotune.analyze.text as text

    monkeypatch.setattr(text, "load_text_models", lambda *a, **k: text_models)  # loaded once per session
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(fb(str(i), p, r).model_dump_json() + "\n" for i, (p, r) in enumerate(
        [("squats - chest dropping", "squats - chest dropping; keep chest up"), ("lunges - fine", "lunges - knees in")])))
    result = runner.invoke(app, ["metrics", "--predictions", str(path), "--task", "feedback", "--out", str(tmp_path / "o"),
                                 "--n-bootstrap", "50"])
    assert result.exit_code == 0, result.output
    metrics = Metrics.model_validate(json.loads((tmp_path / "o" / "metrics.json").read_text()))
    assert metrics.meta["text_metrics"]["bertscore"]["layer"] == 6 and "bleu_4" in metrics.metrics
    rows = [json.loads(line) for line in (tmp_path / "o" / "per_example.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len(rows[0]["stats"]["bleu"]) == 10


# --------------------------------------------------------------------------- VQA


def vq(pid, prediction, reference, stage, status="ok"):
    return Prediction(id=pid, model="m", prompt="", prediction=prediction, reference=reference, status=status,
                      meta={"stage": stage})


def test_normalize_answer():
    assert normalize_answer("  The Polyp. ") == "polyp"
    assert normalize_answer("Two polyps!") == "2 polyps"
    assert normalize_answer("3.5 cm") == "3.5 cm"
    assert normalize_answer("«Да», полип.") == "да полип"
    assert normalize_answer("ＹＥＳ") == "yes"  # NFKC full-width letters


def test_vqa_accuracy_by_hand_per_stage():
    preds = [
        vq("1", "Yes", "Yes", "initial"),          # exact and normalized
        vq("2", "yes.", "Yes", "initial"),         # normalized only
        vq("3", "", "No", "initial"),              # empty: wrong
        vq("4", "a polyp", "polyp", "findings"),   # normalized only
        vq("5", "polyp", "polyp", "findings", status="error"),  # failed: wrong even if the text matched
        vq("6", "Два", "два", "context"),          # non-Latin: case-folded
    ]
    m = vqa_scores(preds, n_bootstrap=200).metrics
    v = m.metrics
    assert v["exact_accuracy"] == pytest.approx(1 / 6)
    assert v["normalized_accuracy"] == pytest.approx(4 / 6)
    assert v["exact_accuracy/initial"] == pytest.approx(1 / 3)
    assert v["normalized_accuracy/initial"] == pytest.approx(2 / 3)
    assert v["normalized_accuracy/findings"] == pytest.approx(1 / 2)
    assert v["normalized_accuracy/context"] == pytest.approx(1.0)
    # Most frequent normalized reference over all: "yes" and "polyp" twice each; ties by first seen.
    assert v["baseline_majority/normalized_accuracy"] == pytest.approx(2 / 6)
    assert m.meta["n_error_status"] == 1 and m.meta["n_empty"] == 1
    lo, hi = m.ci95["normalized_accuracy"]
    assert lo <= v["normalized_accuracy"] <= hi
    with pytest.raises(InputError, match="reference is empty"):
        vqa_scores([vq("x", "a", "", "s")])
