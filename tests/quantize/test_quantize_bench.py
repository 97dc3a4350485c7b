"""The precision benchmark's arithmetic: agreement, ratios to fp32, targets."""

import pytest

from videotune.core.schemas import Prediction
from videotune.quantize.bench import add_ratios, agreement, check_targets, markdown, prefix_agreement, summarize_variant


def _p(id_, text, status="ok"):
    return Prediction(id=id_, model="m", prompt="p", prediction=text, reference="r", status=status)


def test_prefix_agreement():
    assert prefix_agreement([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert prefix_agreement([1, 2, 3, 4], [1, 2, 9, 4]) == 0.5  # diverges at the third token
    assert prefix_agreement([1, 2], [1, 2, 3, 4]) == 0.5  # one stopped early
    assert prefix_agreement([], []) == 1.0 and prefix_agreement([5], []) == 0.0


def test_agreement_pairs_answers_by_id_and_skips_errors():
    baseline = [_p("a", "x y z"), _p("b", "x y"), _p("c", "", status="error")]
    other = [_p("b", "x q"), _p("a", "x y z"), _p("c", "x")]
    result = agreement(baseline, other, lambda text: text.split())
    assert result == {"n": 2, "exact_match": 0.5, "prefix_agreement": pytest.approx((1.0 + 0.5) / 2)}


def _profile(b1_per_sample, b8_samples_per_s):
    def row(batch, per_sample, samples_per_s):
        summary = {"mean": per_sample, "p50": per_sample}
        return {"batch_size": batch, "status": "ok", "peak_memory_bytes": 100,
                "latency_s": {k: summary for k in ("per_sample", "prefill", "decode", "preprocess")},
                "throughput": {"tokens_per_s": 10.0, "samples_per_s": samples_per_s}}
    return {"configs": [row(1, b1_per_sample, 1 / b1_per_sample), row(8, b1_per_sample / 3, b8_samples_per_s)]}


def test_ratios_and_targets():
    variants = {
        "fp32": summarize_variant(_profile(2.0, 1.0), {"weights_bytes_after": 1000}, [1, 8]),
        "int8-dynamic": summarize_variant(_profile(1.8, 1.5), {"weights_bytes_after": 260}, [1, 8]),
        "int8-weight": summarize_variant(_profile(2.4, 0.7), {"weights_bytes_after": 310}, [1, 8]),
    }
    add_ratios(variants)
    assert variants["int8-dynamic"]["size_ratio"] == 0.26 and variants["int8-dynamic"]["latency_ratio"] == pytest.approx(0.9)
    assert variants["fp32"]["batch_scaling"]["8"]["speedup"] == pytest.approx(2.0)
    checks = check_targets({"m": variants}, 8)
    met = {(c["method"], c["target"].split()[0]): c["met"] for c in checks}
    assert met[("int8-dynamic", "size")] and met[("int8-dynamic", "latency")] and met[("int8-dynamic", "batch")]
    assert not met[("int8-weight", "size")] and not met[("int8-weight", "latency")] and not met[("int8-weight", "batch")]
    assert met[("fp32", "batch")]
    for method in variants:
        variants[method]["agreement"] = {"exact_match": 1.0, "prefix_agreement": 1.0}
    table = markdown({"m": variants}, checks, 8)
    assert "| m | int8-dynamic | 0.00 | 0.260 |" in table and "**no**" in table
