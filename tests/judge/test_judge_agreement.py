"""Agreement with experts, checked against sklearn and scipy on fixed data."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from videotune.core.io import InputError, write_jsonl
from videotune.core.schemas import Metrics, Verdict
from videotune.judge.agreement import agreement
from videotune.judge.cli import app
from videotune.judge.ratings import ExpertRating

JUDGE = [5, 4, 4, 3, 2, 1, 3, 5, 2, 4]
EXPERT = [5, 5, 3, 3, 1, 2, 3, 4, 2, 2]
ACTION = [3, 3, 4, 4, 5, 5, 2, 2, 1, 1]


def _data():
    base = dict(judge="openai:j", rubric="holistic@1.0")
    verdicts = [
        Verdict(id=f"c{i}", status="ok", scores={"accuracy": j, "usefulness": a}, overall=(j + a) / 2, **base)
        for i, (j, a) in enumerate(zip(JUDGE, ACTION))
    ]
    # Two more the judge could not score, and one the expert rated that the judge never saw.
    verdicts += [Verdict(id="c10", status="unparseable", raw="?", **base), Verdict(id="c11", status="error", **base)]
    ratings = [ExpertRating(id=f"c{i}", scores={"accuracy": e, "usefulness": a})
               for i, (e, a) in enumerate(zip(EXPERT, ACTION))]
    ratings += [ExpertRating(id="c10", scores={"accuracy": 3, "usefulness": 3}),
                ExpertRating(id="zz", scores={"accuracy": 3, "usefulness": 3})]
    return verdicts, ratings


def test_matches_sklearn_and_scipy():
    metrics = agreement(*_data(), n_bootstrap=200, seed=1)
    assert metrics.n == 10
    kappa = cohen_kappa_score(JUDGE, EXPERT, weights="quadratic", labels=[1, 2, 3, 4, 5])
    rho = spearmanr(JUDGE, EXPERT).statistic
    diff = np.abs(np.array(JUDGE) - np.array(EXPERT))
    assert metrics.metrics["weighted_kappa/accuracy"] == pytest.approx(kappa, abs=1e-4)
    assert metrics.metrics["spearman/accuracy"] == pytest.approx(rho, abs=1e-4)
    assert metrics.metrics["exact_agreement/accuracy"] == pytest.approx(np.mean(diff == 0))
    assert metrics.metrics["within1_agreement/accuracy"] == pytest.approx(np.mean(diff <= 1))
    # Identical scores: perfect agreement on usefulness.
    assert metrics.metrics["weighted_kappa/usefulness"] == 1.0 and metrics.metrics["spearman/usefulness"] == 1.0
    assert metrics.metrics["weighted_kappa"] == pytest.approx((kappa + 1) / 2, abs=1e-4)
    assert metrics.per_class["accuracy"]["n"] == 10
    lo, hi = metrics.ci95["weighted_kappa/accuracy"]
    assert lo <= kappa <= hi
    assert metrics.meta["n_judge_unscored"] == 1 and metrics.meta["n_expert_without_verdict"] == 1
    Metrics.model_validate(metrics.model_dump())  # the DESIGN.md shape


def test_constant_scores_give_none_not_nan():
    base = dict(judge="j", rubric="r")
    verdicts = [Verdict(id=str(i), status="ok", scores={"d": 3}, overall=3, **base) for i in range(4)]
    ratings = [ExpertRating(id=str(i), scores={"d": s}) for i, s in enumerate([1, 2, 3, 4])]
    metrics = agreement(verdicts, ratings, n_bootstrap=0)
    assert metrics.metrics["spearman/d"] is None
    json.dumps(metrics.model_dump(), allow_nan=False)


def test_nothing_in_common_is_an_input_error():
    verdicts, _ = _data()
    with pytest.raises(InputError):
        agreement(verdicts, [ExpertRating(id="nope", scores={"accuracy": 3})], n_bootstrap=0)


def test_cli_writes_metrics(tmp_path):
    verdicts, ratings = _data()
    write_jsonl(tmp_path / "verdicts.jsonl", verdicts)
    write_jsonl(tmp_path / "ratings.jsonl", ratings)
    out = tmp_path / "agreement"
    result = CliRunner().invoke(app, ["agreement", "--verdicts", str(tmp_path / "verdicts.jsonl"),
                                      "--ratings", str(tmp_path / "ratings.jsonl"), "--out", str(out), "--n-bootstrap", "50"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 10 and "weighted_kappa/accuracy" in metrics["metrics"]
    assert json.loads((out / "run.json").read_text())["command"] == "agreement"
    missing = CliRunner().invoke(app, ["agreement", "--verdicts", str(tmp_path / "none.jsonl"),
                                       "--ratings", str(tmp_path / "ratings.jsonl"), "--out", str(out)])
    assert missing.exit_code == 2 and "none.jsonl" in missing.stderr
