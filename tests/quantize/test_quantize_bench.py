"""The precision benchmark's arithmetic: agreement, ratios to fp32, targets."""

import pytest

from videotune.core.schemas import Prediction
from videotune.quantize.bench import (
    add_ratios,
    agreement,
    check_targets,
    markdown,
    paired_latency,
    paired_ratios,
    prefix_agreement,
    summarize_variant,
)


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


def _profile(b1_per_sample, b8_samples_per_s, decode_tokens_per_s=(10.0, 25.0)):
    def row(batch, per_sample, samples_per_s, decode_rate):
        summary = {"mean": per_sample, "p50": per_sample}
        latency = {k: summary for k in ("per_sample", "prefill", "decode", "preprocess")}
        # per batch at batch 1: preprocess + prefill + decode = 3 x per_sample
        latency["total"] = {"mean": 3 * per_sample, "p50": 3 * per_sample}
        return {"batch_size": batch, "status": "ok", "peak_memory_bytes": 100 * batch, "latency_s": latency,
                "throughput": {"tokens_per_s": 10.0, "samples_per_s": samples_per_s, "decode_tokens_per_s": decode_rate}}
    return {"configs": [row(1, b1_per_sample, 1 / b1_per_sample, decode_tokens_per_s[0]),
                        row(8, b1_per_sample / 3, b8_samples_per_s, decode_tokens_per_s[1])]}


def test_ratios_and_targets():
    variants = {
        "fp32": summarize_variant(_profile(2.0, 1.0), {"weights_bytes_after": 1000}, [1, 8]),
        "int8-dynamic": summarize_variant(_profile(1.8, 1.5), {"weights_bytes_after": 260}, [1, 8]),
        "int8-weight": summarize_variant(_profile(2.4, 0.7, (10.0, 15.0)), {"weights_bytes_after": 310}, [1, 8]),
    }
    add_ratios(variants)
    assert variants["int8-dynamic"]["size_ratio"] == 0.26 and variants["int8-dynamic"]["latency_ratio"] == pytest.approx(0.9)
    assert variants["fp32"]["batch_scaling"]["8"]["speedup"] == pytest.approx(2.0)
    assert variants["fp32"]["batch_scaling"]["8"]["decode_speedup"] == pytest.approx(2.5)
    # total 3x, preprocess + prefill 2x: perfect batching of decoding alone gains at most 1.5x
    assert variants["fp32"]["decode_only_ceiling"] == pytest.approx(1.5)
    checks = check_targets({"m": variants}, 8)
    met = {(c["method"], c["target"].split()[0], "decod" in c["target"]): c["met"] for c in checks}
    assert met[("int8-dynamic", "size", False)] and met[("int8-dynamic", "latency", False)]
    assert met[("int8-dynamic", "batch", False)] and met[("int8-dynamic", "batch", True)]
    assert not met[("int8-weight", "size", False)] and not met[("int8-weight", "batch", False)]
    assert not met[("int8-weight", "batch", True)]
    # torchao weight-only's CPU latency is reported, not held to the target
    assert met[("int8-weight", "latency", False)] is None
    assert met[("fp32", "batch", False)] and ("fp32", "latency", False) not in met
    for method in variants:
        variants[method]["agreement"] = {"exact_match": 1.0, "prefix_agreement": 1.0}
    table = markdown({"m": variants}, checks, 8)
    assert "| m | int8-dynamic | 0.00 | 0.260 |" in table and "**no**" in table and "| info |" in table
    assert "2.000 (ceiling 1.50)" in table


def test_paired_latency_decides_the_latency_target_by_its_interval():
    variants = {
        "fp32": summarize_variant(_profile(2.0, 1.0), {"weights_bytes_after": 1000}, [1, 8]),
        "int8-dynamic": summarize_variant(_profile(2.6, 1.5), {"weights_bytes_after": 260}, [1, 8]),
    }
    # the profiles say 1.3x; the paired times say equal within noise: the paired ratio decides
    base = [1.0, 1.1, 0.9, 1.2, 1.0, 0.95, 1.05, 1.0]
    same = [b * f for b, f in zip(base, [1.02, 0.99, 1.01, 0.98, 1.03, 0.97, 1.0, 1.01])]
    paired = paired_ratios({"fp32": base, "int8-dynamic": same})
    assert paired["fp32"] == {"pairs": 8, "ratio": 1.0, "ci95": [1.0, 1.0], "median_s": 1.0}
    low, high = paired["int8-dynamic"]["ci95"]
    assert low <= 1.0 <= high and paired["int8-dynamic"]["ratio"] == pytest.approx(1.005)
    add_ratios(variants, paired)
    assert variants["int8-dynamic"]["profile_latency_ratio"] == pytest.approx(1.3)
    assert variants["int8-dynamic"]["latency_ratio"] == pytest.approx(1.005)
    latency = next(c for c in check_targets({"m": variants}, 8) if c["target"].startswith("latency"))
    assert latency["met"] and latency["ci95"] == [low, high]
    # measurably slower: every pair 4-6% slower, so the interval lies above 1
    slower = paired_ratios({"fp32": base, "int8-dynamic": [b * f for b, f in zip(base, [1.04, 1.05, 1.06] * 3)]})
    add_ratios(variants, slower)
    latency = next(c for c in check_targets({"m": variants}, 8) if c["target"].startswith("latency"))
    assert slower["int8-dynamic"]["ci95"][0] > 1.0 and latency["met"] is False


def test_paired_latency_times_every_method_on_every_example(tiny_model, gym_examples, gym_raw, tmp_path):
    from videotune.core.io import read_jsonl
    from videotune.core.schemas import Example
    from videotune.quantize.methods import quantize

    quantize("int8-dynamic", tiny_model, tmp_path / "int8")
    examples = read_jsonl(gym_examples, Example)[:2]
    times = paired_latency({"fp32": tiny_model, "int8-dynamic": tmp_path / "int8"}, examples, gym_raw, frames=2,
                           max_new_tokens=3, rounds=2)
    assert set(times) == {"fp32", "int8-dynamic"} and all(len(v) == 4 and min(v) > 0 for v in times.values())
    ratios = paired_ratios(times)
    assert ratios["int8-dynamic"]["pairs"] == 4 and ratios["int8-dynamic"]["ratio"] > 0


def test_a_batch_size_that_ran_out_of_memory_reports_the_status():
    oom = _profile(2.0, 1.0)
    oom["configs"][1] = {"batch_size": 8, "status": "oom"}
    row = summarize_variant(oom, {"weights_bytes_after": 1000}, [1, 8])
    assert row["batch_scaling"]["8"] == {"status": "oom"}
    checks = check_targets({"m": {"fp32": {**row, "size_ratio": 1.0}}}, 8)
    assert [c["met"] for c in checks] == [False, False] and all(c["value"] is None for c in checks)
