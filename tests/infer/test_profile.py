"""vt-infer profile: percentile maths, peak memory, out-of-memory in batch scaling, CSV/JSON schema."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videotune.infer import profile as prof
from videotune.infer.profile import (
    CSV_COLUMNS,
    BatchTiming,
    PeakMemory,
    ProfileConfig,
    ProfileReport,
    batch_scaling_rows,
    is_out_of_memory,
    run_profile,
    summarize,
    sweep_batch_sizes,
)

BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- statistics


def test_summary_percentiles_are_linear_interpolation_between_ranks():
    s = summarize(list(range(1, 101)))  # 1..100
    assert s.n == 100 and s.mean == 50.5 and s.min == 1 and s.max == 100
    # rank = p/100 * (n - 1): p50 -> 49.5 -> 50.5; p95 -> 94.05 -> 95.05; p99 -> 98.01 -> 99.01
    assert s.p50 == pytest.approx(50.5) and s.p95 == pytest.approx(95.05) and s.p99 == pytest.approx(99.01)
    assert s.std == pytest.approx(np.std(np.arange(1, 101), ddof=1)) == pytest.approx(29.0115, abs=1e-4)


def test_summary_of_one_and_of_none():
    s = summarize([0.25])
    assert (s.mean, s.std, s.p50, s.p99) == (0.25, 0.0, 0.25, 0.25)
    with pytest.raises(ValueError):
        summarize([])


def test_percentiles_of_a_skewed_sample():
    s = summarize([1.0, 1.0, 1.0, 1.0, 10.0])
    # rank for p95 = 0.95 * 4 = 3.8: 1 + 0.8 * (10 - 1)
    assert s.p50 == 1.0 and s.p95 == pytest.approx(8.2) and s.p99 == pytest.approx(9.64)


# --------------------------------------------------------------------------- memory


def test_cpu_peak_memory_sees_a_short_lived_allocation():
    with PeakMemory("cpu") as before:
        pass
    with PeakMemory("cpu") as during:
        block = np.ones(256 * 2**20 // 8)  # 256 MiB, touched
        import time

        time.sleep(0.05)  # several sampling intervals
        del block
    assert during.peak_bytes - before.peak_bytes > 200 * 2**20


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


# --------------------------------------------------------------------------- batch scaling


def _fake_timing(batch):
    n = len(batch)
    return BatchTiming(preprocess_s=0.01 * n, prefill_s=0.1 + 0.01 * n, decode_s=0.2, total_s=0.31 + 0.02 * n,
                       prompt_tokens=50, new_tokens=[4] * n, frames=4 * n, peak_memory_bytes=1000 * n,
                       example_ids=[e for e in batch])


def test_batch_scaling_stops_cleanly_at_the_first_out_of_memory():
    calls, released = [], []

    def make_runner(batch_size):
        def run(batch):
            calls.append(batch_size)
            if batch_size >= 8:
                raise torch.OutOfMemoryError(f"CUDA out of memory at batch {batch_size}")
            return _fake_timing(batch)
        return run

    results, recorded = sweep_batch_sizes(make_runner, ["a", "b", "c"], 64, 4, 16, [1, 2, 4, 8, 16], n_samples=8,
                                          warmup=1, after_oom=lambda: released.append(True))
    assert [r.status for r in results] == ["ok", "ok", "ok", "oom", "skipped"]
    assert 16 not in calls and released == [True]
    assert "batch size 8" in results[3].error and "OutOfMemoryError" in results[3].error
    assert "batch size 8" in results[4].error
    assert [r.n_samples for r in results[:3]] == [8, 8, 8] and [r.n_batches for r in results[:3]] == [8, 4, 2]
    assert len(recorded) == 8 + 4 + 2
    rows = batch_scaling_rows(results)
    assert [r.status for r in rows] == ["ok", "ok", "ok", "oom", "skipped"]
    assert rows[0].speedup_vs_smallest == 1.0 and rows[2].speedup_vs_smallest > rows[1].speedup_vs_smallest > 1.0
    assert rows[3].samples_per_s is None


def test_other_errors_are_not_taken_for_out_of_memory():
    def make_runner(batch_size):
        def run(batch):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        return run

    with pytest.raises(RuntimeError, match="shapes"):
        sweep_batch_sizes(make_runner, ["a"], 64, 4, 16, [1, 2], n_samples=2, warmup=0)


def test_per_sample_latency_and_throughput():
    def make_runner(batch_size):
        return _fake_timing

    results, _ = sweep_batch_sizes(make_runner, ["a", "b"], 64, 4, 16, [1, 4], n_samples=4, warmup=0)
    one, four = results
    assert one.latency_s["per_sample"].mean == pytest.approx(0.33)
    assert four.latency_s["total"].mean == pytest.approx(0.39) and four.latency_s["per_sample"].mean == pytest.approx(0.39 / 4)
    assert four.throughput.samples_per_s == pytest.approx(4 / 0.39)
    assert four.throughput.tokens_per_s == pytest.approx(16 / (0.14 + 0.2))
    assert four.throughput.decode_tokens_per_s == pytest.approx(12 / 0.2)
    assert four.throughput.frames_per_s == pytest.approx(16 / 0.39)
    assert four.peak_memory_bytes == 4000


# --------------------------------------------------------------------------- the whole command


def _config(tiny_model, gym_examples, gym_raw, out, **overrides):
    values = dict(model=str(tiny_model), examples=gym_examples, data_root=gym_raw, out=out, n_samples=2, warmup=1,
                  batch_sizes=[1, 2], resolutions=[32, 64], frame_counts=[2, 4], max_new_tokens=3)
    values.update(overrides)
    return ProfileConfig(**values)


def test_profile_json_and_csv_schema(tiny_model, gym_examples, gym_raw, tmp_path):
    report = run_profile(_config(tiny_model, gym_examples, gym_raw, tmp_path))
    data = json.loads((tmp_path / "profile.json").read_text())
    assert data["schema"] == "videotune.profile/1"
    ProfileReport.model_validate(data)
    assert {(c["resolution_px"], c["frames"], c["batch_size"]) for c in data["configs"]} == {
        (r, f, b) for r in (32, 64) for f in (2, 4) for b in (1, 2)}
    for c in data["configs"]:
        assert c["status"] == "ok" and c["n_samples"] == 2
        assert set(c["latency_s"]) == {"preprocess", "prefill", "decode", "total", "per_sample"}
        assert set(c["latency_s"]["total"]) == {"n", "mean", "std", "min", "p50", "p95", "p99", "max"}
        assert c["throughput"]["tokens_per_s"] > 0 and c["peak_memory_bytes"] > 0
        # frame side 32 px, patch 8, pixel shuffle 2: (32 / 8)^2 / 4 = 4 tokens per frame; 64 px: 16
        assert c["tokens_per_frame"] == {32: 4, 64: 16}[c["resolution_px"]]
    assert data["model_weights_bytes"] > 0 and data["parameters"] > 0 and data["first_oom"] is None
    assert len(data["batch_scaling"]) == 8

    with open(tmp_path / "profile_samples.csv") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 8 * 2  # two recorded samples per configuration
    for row in rows:
        assert int(row["new_tokens"]) == 3  # fixed length
        assert float(row["total_s"]) >= float(row["prefill_s"]) > 0
        assert float(row["latency_per_sample_s"]) == pytest.approx(float(row["total_s"]) / int(row["batch_size"]), abs=1e-6)
    assert report.configs[0].config == "r32_f2_b1"
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["command"] == "profile" and manifest["config"]["n_samples"] == 2
    from videotune.core.summaries import ProfileSummary, read_summary

    summary = read_summary(tmp_path / "summary.json")  # what vt-analyze collect reads: the first configuration
    first = data["configs"][0]
    assert isinstance(summary, ProfileSummary) and summary.batch_size == 1 and summary.resolution_px == 32
    assert summary.latency_p50_s == first["latency_s"]["per_sample"]["p50"]
    assert summary.samples_per_s == first["throughput"]["samples_per_s"]
    assert summary.model_weights_bytes == data["model_weights_bytes"] and len(summary.samples) == len(rows)


def test_simulated_out_of_memory_through_the_command(tiny_model, gym_examples, gym_raw, tmp_path, monkeypatch):
    real_run = prof.Runner.run

    def run(self, batch, spec):
        if len(batch) >= 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_run(self, batch, spec)

    monkeypatch.setattr(prof.Runner, "run", run)
    run_profile(_config(tiny_model, gym_examples, gym_raw, tmp_path, batch_sizes=[1, 2, 4], resolutions=None, frame_counts=None))
    data = json.loads((tmp_path / "profile.json").read_text())
    assert [c["status"] for c in data["configs"]] == ["ok", "oom", "skipped"]
    assert data["first_oom"]["batch_size"] == 2 and "20.00 GiB" in data["first_oom"]["error"]
    rows = list(csv.DictReader(open(tmp_path / "profile_samples.csv")))
    assert {r["batch_size"] for r in rows} == {"1"}


def test_console_script_on_the_gym_clips(tiny_model, gym_examples, gym_raw, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [str(BIN / "vt-infer"), "profile", "--model", str(tiny_model), "--examples", str(gym_examples),
            "--data-root", str(gym_raw), "--n-samples", "3", "--warmup", "1", "--batch-sizes", "1,2",
            "--max-new-tokens", "4"]
    result = subprocess.run([*args, "--out", str(tmp_path / "p")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "r64_f4_b1" in result.stderr and "tokens/s" in result.stderr
    data = json.loads((tmp_path / "p/profile.json").read_text())
    assert [c["n_samples"] for c in data["configs"]] == [3, 4]  # ceil(3 / 2) batches of 2
    assert (tmp_path / "p/run.json").is_file() and (tmp_path / "p/profile_samples.csv").is_file()

    bad = subprocess.run([*args[:-6], "--batch-sizes", "4,2", "--out", str(tmp_path / "q")], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and "ascending" in bad.stderr
    odd = subprocess.run([*args[:-6], "--resolutions", "40", "--out", str(tmp_path / "r")], capture_output=True,
                         text=True, env=env)
    assert odd.returncode == 2 and "multiple of" in odd.stderr.replace("\n", " ")


def test_help_has_an_example():
    result = subprocess.run([str(BIN / "vt-infer"), "profile", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "vt-infer profile --model" in result.stdout.replace("\n", " ")
    assert "--batch-sizes" in result.stdout and "--resolutions" in result.stdout
