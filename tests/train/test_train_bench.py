"""The training-step benchmark runs end to end at a toy size (figures come from `make bench-train` on an idle
machine): every contender times its steps, and raw-lean computes exactly vt-train's loss."""

import json

import pytest
import torch

from videotune.core import models
from videotune.core.io import read_samples, write_jsonl
from videotune.prep.build import BuildOptions, build_examples
from videotune.train import bench
from videotune.train.trainer import VtSFTTrainer

pytestmark = pytest.mark.slow


def test_bench_times_every_contender_and_the_lean_loss_is_vt_trains(gym_raw, tmp_path):
    examples, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw, BuildOptions("aqa", "plain", 2, 10, 0))
    write_jsonl(tmp_path / "train.jsonl", examples[:4])
    tiny = tmp_path / "tiny"
    models.build_tiny("smolvlm2", tiny, [m.content for e in examples for m in e.messages],
                      spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400))
    out = tmp_path / "out"
    bench.bench_command(bench.TrainBenchConfig(examples=tmp_path / "train.jsonl", data_root=gym_raw, tiny_model=tiny,
                                               out=out, steps=2, warmup=1, batch_size=2))
    result = json.loads((out / "bench.json").read_text())
    row = result["rows"][0]
    for contender in ("raw", "raw-lean", "vt-train", "trl-default"):
        assert row[contender]["steps"] == 2 and row[contender]["median_ms"] > 0
    assert row["vt-train_over_raw-lean"] == round(row["vt-train"]["median_ms"] / row["raw-lean"]["median_ms"], 3)
    assert result["data_time"]["decode_warm_s"] >= 0
    assert "raw loop, vt's loss" in (out / "bench.md").read_text()

    # the lean loss outside the trainer equals VtSFTTrainer.compute_loss on the same batch
    cache = bench.FrameCache(tmp_path / "cache")
    batch = bench._batches(tiny, bench.TrainBenchConfig(examples=tmp_path / "train.jsonl", data_root=gym_raw,
                                                        tiny_model=tiny, out=out), 1, 2, None, None, cache)[0]
    model, _ = models.load(models.resolve(str(tiny)))
    model.train()
    torch.manual_seed(0)
    lean = bench._lean_loss(model, batch)
    trainer = VtSFTTrainer.__new__(VtSFTTrainer)  # compute_loss reads nothing of the trainer but token_counts
    trainer.token_counts = {"tokens": 0, "target_tokens": 0}
    torch.manual_seed(0)
    assert torch.equal(lean, trainer.compute_loss(model, batch))
