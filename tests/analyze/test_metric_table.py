"""The table of metric facts: one entry (and its function) makes a metric appear everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videotune.analyze import metric_table
from videotune.analyze.compare import compare_models, read_per_example
from videotune.analyze.headroom import load_thresholds
from videotune.analyze.metric_table import MetricSpec
from videotune.analyze.metrics import aqa_scores
from videotune.analyze.report import summary_rows, write_report
from videotune.analyze.summary import Run, headline_metrics, primary_metric, write_experiment_summary
from videotune.analyze.vqa import vqa_scores
from videotune.core.io import InputError, read_jsonl
from videotune.core.schemas import Prediction

EXAMPLE = Path(__file__).resolve().parents[2] / "tools" / "analyze" / "examples" / "aqa_predictions.jsonl"


def _words(p: Prediction) -> float | None:
    return float(len(p.prediction.split())) if p.status == "ok" else None


WORDS = MetricSpec("answer_words", "aqa", higher_is_better=False, headline=True,
                   doc="words in the answer (failed answers undefined)", per_example=_words)


def _write_scored(scored, folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(scored.metrics.model_dump(mode="json")))
    (folder / "per_example.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored.per_example))
    return folder


def test_one_entry_puts_a_metric_in_metrics_report_summary_and_compare(monkeypatch, tmp_path):
    monkeypatch.setattr(metric_table, "TABLE", (*metric_table.TABLE, WORDS))
    predictions = read_jsonl(EXAMPLE, Prediction)
    shorter = [p.model_copy(update={"prediction": " ".join(p.prediction.split()[:6]), "model": "short"})
               for p in predictions]

    scored = aqa_scores(predictions, n_bootstrap=200, seed=0)
    words = [_words(p) for p in predictions]
    expected = float(np.mean([w for w in words if w is not None]))
    assert scored.metrics.metrics["answer_words"] == pytest.approx(expected)
    lo, hi = scored.metrics.ci95["answer_words"]
    assert lo <= expected <= hi
    assert [r["scores"]["answer_words"] for r in scored.per_example] == words

    # vt-analyze metrics' terminal table and REPORT.md
    assert "answer_words" in [row[0] for row in summary_rows(scored.metrics)]
    report = write_report(scored.metrics, None, tmp_path / "report", "t").read_text()
    assert "`answer_words`" in report

    # the experiment summary: a headline column, but not the primary metric (lower is better)
    a = _write_scored(scored, tmp_path / "runs" / "long")
    b = _write_scored(aqa_scores(shorter, n_bootstrap=0), tmp_path / "runs" / "short")
    from videotune.analyze.report import load_metrics

    runs = [Run("exp", p.name, p / "metrics.json", load_metrics(p / "metrics.json")) for p in (a, b)]
    assert "answer_words" in headline_metrics(runs)
    assert primary_metric(runs) == "exercise_accuracy"
    write_experiment_summary("exp", runs, tmp_path / "summary", flat=True)
    assert "answer_words" in (tmp_path / "summary" / "table.csv").read_text().splitlines()[0]

    # compare: the metric is compared, lower is better, so the shorter answers are favoured
    result = compare_models([read_per_example(a / "per_example.jsonl", "long"),
                             read_per_example(b / "per_example.jsonl", "short")], n_bootstrap=100)
    row = next(r for r in result["pairwise"] if r["metric"] == "answer_words")
    assert row["better"] == "lower" and row["diff"] < 0 and row["favours"] == "short"


def test_without_the_entry_the_metric_is_nowhere():
    scored = aqa_scores(read_jsonl(EXAMPLE, Prediction), n_bootstrap=0)
    assert "answer_words" not in scored.metrics.metrics
    assert all("answer_words" not in r["scores"] for r in scored.per_example)


def test_every_metric_the_scorers_write_has_an_entry():
    aqa = aqa_scores(read_jsonl(EXAMPLE, Prediction), n_bootstrap=0).metrics
    vqa = vqa_scores([Prediction(id=str(i), model="m", prompt="q", prediction=a, reference="yes", status="ok",
                                 meta={"stage": s}) for i, (a, s) in enumerate([("yes", "a"), ("no", "b")])],
                     n_bootstrap=0).metrics
    for task, metrics in (("aqa", aqa), ("vqa", vqa)):
        for key in metrics.metrics:
            name = key.split("/", 1)[1] if key.startswith("baseline_") else key
            spec = metric_table.spec_of(name, task)
            assert spec is not None and spec.task == task, key
            if key.startswith("baseline_"):
                assert metric_table.baseline_key(name, task) == key, key


def test_directions_and_headlines_come_from_the_table():
    assert metric_table.lower_is_better("latency_p50_s") and metric_table.lower_is_better("profile_peak_memory_gb")
    assert metric_table.higher_is_better("error_f1/knees") and metric_table.higher_is_better("judge_safety")
    assert metric_table.lower_is_better("baseline_always_silent/speak_f1") is False
    assert metric_table.headline_names("vqa", ["normalized_accuracy/b", "normalized_accuracy/a", "exact_accuracy/a"]) == [
        "normalized_accuracy", "exact_accuracy", "latency_p50_s", "normalized_accuracy/a", "normalized_accuracy/b"]
    assert metric_table.headline_names("profile", []) == ["samples_per_s", "latency_p50_s", "latency_p95_s",
                                                         "peak_memory_gb"]
    assert metric_table.baseline_key("error_f1/elbows", "aqa") == "baseline_no_error/error_f1/elbows"
    meteor = metric_table.spec_of("meteor", "feedback")
    assert "evaluate" in meteor.doc and "METEOR 1.5" in meteor.doc and "empty or failed answer scores 0" in meteor.doc


@pytest.mark.parametrize("text, problem", [
    ("minimum: {latency_p50_s: 1.0}\n", "latency_p50_s under minimum"),
    ("maximum: {exercise_accuracy: 0.9}\n", "exercise_accuracy under maximum"),
])
def test_headroom_refuses_a_threshold_on_the_wrong_side(tmp_path, text, problem):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        load_thresholds(path)
