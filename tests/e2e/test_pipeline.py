"""The demo pipeline on a handful of clips, through the real console scripts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videotune.core.io import read_jsonl
from videotune.core.schemas import Prediction

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def vt(*args, expect=0):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, env=env)
    assert result.returncode == expect, f"{args[0]} {args[1]} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def pipeline(gym_raw, tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    vt("vt-prep", "build", "--samples", gym_raw / "samples.parquet", "--out", work / "built", "--variant", "temporal",
       "--frames", 4, "--strict")
    vt("vt-prep", "split", "--examples", work / "built/examples/all.jsonl", "--out", work / "split",
       "--ratios", "0.5,0.25,0.25")
    vt("vt-train", "tiny-model", "--corpus", work / "split/examples/train.jsonl", "--out", work / "tiny",
       "--vocab-size", 400, "--text-hidden", 32, "--vision-hidden", 32)
    vt("vt-train", "sft", "--model", work / "tiny", "--train-examples", work / "split/examples/train.jsonl",
       "--val-examples", work / "split/examples/val.jsonl", "--data-root", gym_raw, "--out", work / "train",
       "--epochs", 1, "--batch-size", 4, "--lr", "1e-3")
    return work


def test_every_stage_writes_its_artifacts_and_manifest(pipeline):
    for stage in ("built", "split", "tiny", "train"):
        manifest = json.loads((pipeline / stage / "run.json").read_text())
        assert manifest["config"] and manifest["host"]["python"]
    assert (pipeline / "train/model/config.json").exists()
    history = json.loads((pipeline / "train/loss_history.json").read_text())
    assert history["val"] and all(v["loss"] > 0 for v in history["val"])
    inputs = json.loads((pipeline / "train/run.json").read_text())["inputs"]
    assert all(len(v["sha256"]) == 64 for v in inputs.values())


def test_generate_resumes_with_every_id_exactly_once(pipeline, gym_raw):
    out = pipeline / "infer"
    args = ("vt-infer", "generate", "--model", pipeline / "train/model", "--examples",
            pipeline / "split/examples/test.jsonl", "--data-root", gym_raw, "--out", out, "--batch-size", 2,
            "--max-new-tokens", 8)
    vt(*args, "--limit", 2)  # an interrupted run: only the first batch is done
    with open(out / "predictions.jsonl", "a") as fh:
        fh.write('{"id": "torn')  # and a record cut short by the kill
    vt(*args)
    expected = [json.loads(line)["id"] for line in (pipeline / "split/examples/test.jsonl").read_text().splitlines()]
    got = [p.id for p in read_jsonl(out / "predictions.jsonl", Prediction)]
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    first = read_jsonl(out / "predictions.jsonl", Prediction)[0]
    assert first.status == "ok" and first.total_s >= first.prefill_s > 0 and first.new_tokens >= 1

    vt("vt-analyze", "metrics", "--predictions", out / "predictions.jsonl", "--out", pipeline / "analyze")
    metrics = json.loads((pipeline / "analyze/metrics.json").read_text())
    assert "exercise_accuracy" in metrics["metrics"] and "baseline_no_error/error_macro_f1" in metrics["metrics"]
    vt("vt-analyze", "report", "--metrics", pipeline / "analyze/metrics.json", "--loss-history",
       pipeline / "train/loss_history.json", "--out", pipeline / "report", "--title", "e2e")
    assert "exercise_accuracy" in (pipeline / "report/REPORT.md").read_text()
    assert (pipeline / "report/loss_curve.png").stat().st_size > 0


def test_corrupt_video_is_named(pipeline, gym_raw, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(gym_raw, root)
    train = read_jsonl(pipeline / "split/examples/train.jsonl", __import__("videotune.core.schemas", fromlist=["Example"]).Example)
    victim = root / train[0].media
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    result = vt("vt-train", "sft", "--model", pipeline / "tiny", "--train-examples", pipeline / "split/examples/train.jsonl",
                "--data-root", root, "--out", tmp_path / "train", "--max-steps", 1, expect=2)
    assert str(victim) in result.stderr.replace("\n", "")
    assert not (tmp_path / "train/model").exists()


def test_bad_flag_is_a_usage_error(tmp_path):
    result = vt("vt-prep", "split", "--examples", tmp_path / "missing.jsonl", "--out", tmp_path, expect=2)
    assert "missing.jsonl: file not found" in result.stderr.replace("\n", "")
    vt("vt-train", "sft", "--model", "x", "--train-examples", "x", "--data-root", ".", "--out", tmp_path, "--lr", "-1", expect=2)


def test_an_error_is_one_line_whatever_its_length(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "[not markup]"
    result = vt("vt-prep", "split", "--examples", deep / "missing.jsonl", "--out", tmp_path, expect=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {deep / 'missing.jsonl'}: file not found"]
