"""Statistics reproduce scipy/statsmodels on fixed data; the compare command writes its tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from videotune.analyze.cli import app
from videotune.analyze.compare import compare_models, holm, mcnemar_exact, omnibus, read_per_example, wilcoxon_signed_rank

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tools" / "analyze" / "examples" / "aqa_predictions.jsonl"

A = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1], float)
B = np.array([1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0], float)
X = np.array([0.61, 0.72, 0.55, 0.80, 0.47, 0.66, 0.71, 0.59, 0.62, 0.77, 0.52, 0.69])
Y = np.array([0.65, 0.70, 0.61, 0.86, 0.52, 0.71, 0.70, 0.66, 0.64, 0.83, 0.55, 0.74])
Z = np.array([0.58, 0.69, 0.50, 0.79, 0.49, 0.60, 0.68, 0.57, 0.60, 0.72, 0.50, 0.66])


def test_mcnemar_exact_reproduces_statsmodels_and_the_binomial():
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import mcnemar

    result = mcnemar_exact(A, B)
    assert result["table"] == [[7, 8], [0, 5]]
    assert result["p_value"] == pytest.approx(mcnemar([[7, 8], [0, 5]], exact=True).pvalue)
    assert result["p_value"] == pytest.approx(binomtest(0, 8, 0.5).pvalue)  # 2 * 0.5^8
    assert result["p_value"] == pytest.approx(2 / 256)
    # b = 1, c = 9: 2 * P(X <= 1 | n = 10) = 2 * 11 / 1024.
    a = np.array([1] + [0] * 9 + [1] * 5, float)
    b = np.array([0] + [1] * 9 + [1] * 5, float)
    assert mcnemar_exact(a, b)["p_value"] == pytest.approx(22 / 1024)
    assert mcnemar_exact(a, b)["effect_size"] == pytest.approx(9.0)


def test_wilcoxon_reproduces_scipy_and_rank_biserial_by_hand():
    from scipy.stats import wilcoxon

    result = wilcoxon_signed_rank(X, Y)
    direct = wilcoxon(Y, X)
    assert result["p_value"] == pytest.approx(direct.pvalue) and result["statistic"] == pytest.approx(direct.statistic)
    # Differences Y - X: 10 positive, 2 negative (-0.02 rank 2.5, -0.01 rank 1 of 12): r = (74.5 - 3.5) / 78.
    d = Y - X
    assert (d > 0).sum() == 10 and (d < 0).sum() == 2
    assert result["effect_size"] == pytest.approx((78 - 2 * 3.5) / 78)
    assert wilcoxon_signed_rank(X, X)["p_value"] == 1.0


def test_holm_reproduces_statsmodels_and_by_hand():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2]
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    # Sorted .01 .03 .04 .2 times 4 3 2 1 -> .04 .09 .08 .2, made monotone -> .04 .09 .09 .2.
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert np.isnan(holm([0.01, float("nan")])[1])


def test_omnibus_reproduces_scipy():
    from scipy.stats import f_oneway, friedmanchisquare, kruskal

    rows = {r["test"]: r for r in omnibus([X, Y, Z])}
    assert rows["one-way ANOVA"]["p_value"] == pytest.approx(f_oneway(X, Y, Z).pvalue)
    assert rows["Kruskal-Wallis"]["statistic"] == pytest.approx(kruskal(X, Y, Z).statistic)
    assert rows["Friedman"]["p_value"] == pytest.approx(friedmanchisquare(X, Y, Z).pvalue)
    values = np.concatenate([X, Y, Z])
    between = sum(12 * (g.mean() - values.mean()) ** 2 for g in (X, Y, Z))
    assert rows["one-way ANOVA"]["effect_size"] == pytest.approx(between / ((values - values.mean()) ** 2).sum())
    assert rows["Kruskal-Wallis"]["effect_size"] == pytest.approx(kruskal(X, Y, Z).statistic / 35)


def write_rows(path: Path, model: str, values: dict[str, np.ndarray]) -> Path:
    n = len(next(iter(values.values())))
    path.write_text("".join(json.dumps({"id": f"e{i}", "model": model,
                                        "scores": {k: float(v[i]) for k, v in values.items()}}) + "\n" for i in range(n)))
    return path


def test_compare_models_pairwise_and_omnibus(tmp_path):
    files = [write_rows(tmp_path / f"{name}.jsonl", name, {"correct": c, "score": s})
             for name, c, s in (("a", A[:12], X), ("b", B[:12], Y), ("c", A[:12], Z))]
    models = [read_per_example(f) for f in files]
    result = compare_models(models, n_bootstrap=400, seed=1)
    pair = {(r["metric"], r["model_a"], r["model_b"]): r for r in result["pairwise"]}
    assert len(result["pairwise"]) == 6
    row = pair[("score", "a", "b")]
    assert row["test"] == "Wilcoxon signed-rank" and row["diff"] == pytest.approx(Y.mean() - X.mean())
    assert row["ci_lo"] <= row["diff"] <= row["ci_hi"]
    assert pair[("correct", "a", "b")]["test"] == "McNemar exact"
    assert pair[("correct", "a", "c")]["p_value"] == 1.0  # identical outcomes
    assert [r["p_holm"] for r in result["pairwise"]] == pytest.approx(holm([r["p_value"] for r in result["pairwise"]]))
    assert {r["test"] for r in result["omnibus"]} == {"one-way ANOVA", "Kruskal-Wallis", "Friedman"}


def test_compare_cli_writes_csv_markdown_latex(tmp_path):
    for name in ("m1", "m2"):
        result = runner.invoke(app, ["metrics", "--predictions", str(EXAMPLE), "--out", str(tmp_path / name),
                                     "--n-bootstrap", "0"])
        assert result.exit_code == 0, result.output
    scores = ",".join(str(tmp_path / n / "per_example.jsonl") for n in ("m1", "m2"))
    result = runner.invoke(app, ["compare", "--per-example", scores, "--labels", "first,second", "--out", str(tmp_path / "c"),
                                 "--n-bootstrap", "100"])
    assert result.exit_code == 0, result.output
    for ext in ("csv", "md", "tex"):
        assert (tmp_path / "c" / f"comparison.{ext}").is_file()
    assert "p_holm" in (tmp_path / "c" / "comparison.csv").read_text()
    assert "\\begin{tabular}" in (tmp_path / "c" / "comparison.tex").read_text()
    assert "| exercise_correct | higher | first | second |" in (tmp_path / "c" / "comparison.md").read_text()

    other = write_rows(tmp_path / "other.jsonl", "x", {"exercise_correct": np.ones(3)})
    result = runner.invoke(app, ["compare", "--per-example", f"{tmp_path / 'm1' / 'per_example.jsonl'},{other}",
                                 "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and "same examples" in result.output


def test_compare_corpus_bleu_by_paired_bootstrap(tmp_path):
    def rows(name, stats):
        return [json.dumps({"id": f"e{i}", "model": name, "scores": {"meteor": 0.5}, "stats": {"bleu": s}})
                for i, s in enumerate(stats)]

    good = [[5, 5, 5, 4, 3, 2, 5, 4, 3, 2]] * 6
    bad = [[5, 5, 2, 0, 0, 0, 5, 4, 3, 2]] * 6
    (tmp_path / "g.jsonl").write_text("\n".join(rows("good", good)) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(rows("bad", bad)) + "\n")
    result = compare_models([read_per_example(tmp_path / "b.jsonl"), read_per_example(tmp_path / "g.jsonl")],
                            metrics=["bleu_1"], n_bootstrap=200)
    row = result["pairwise"][0]
    assert row["mean_b"] == pytest.approx(1.0) and row["mean_a"] == pytest.approx(0.4)
    assert row["test"].startswith("paired bootstrap") and row["p_value"] == 0.0
