"""The families that load their authors' own layouts (NVILA, LLaVA-Video) through the console scripts, as
`make <rq> MODEL=tiny-<family>` runs them: build the tiny variant, fine-tune it, quantize it, answer with both."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from videotune.core import models
from videotune.core.io import read_jsonl, read_samples, write_jsonl
from videotune.core.schemas import Prediction
from videotune.prep.build import BuildOptions, build_examples

BIN = Path(sys.executable).parent


@pytest.mark.slow  # eight console-script start-ups (torch + transformers imports each): about 3 minutes on 2 cores
@pytest.mark.parametrize("family", ["nvila", "llava-video"])
def test_tiny_variant_through_the_command_lines(family, gym_raw, tmp_path):
    built, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw, BuildOptions("aqa", "temporal", 4, 10, 0))
    write_jsonl(tmp_path / "train.jsonl", built[:4])
    write_jsonl(tmp_path / "test.jsonl", built[4:6])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        done = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]

    tiny = tmp_path / f"tiny-{family}"
    run("vt-train", "tiny-model", "--family", family, "--corpus", tmp_path / "train.jsonl", "--out", tiny,
        "--vocab-size", 400, "--text-hidden", 32, "--vision-hidden", 32)
    assert not (tiny / "model.safetensors").exists() or family == "llava-video"  # NVILA: llm/, vision_tower/, mm_projector/
    assert models.resolve(str(tiny)).family.name == family
    run("vt-train", "sft", "--model", tiny, "--train", tmp_path / "train.jsonl", "--data-root", gym_raw,
        "--out", tmp_path / "train", "--mode", "lora", "--last-blocks", "1", "--max-steps", 1, "--batch-size", 2)
    run("vt-quantize", "--method", "int8-dynamic", "--model", tiny, "--out", tmp_path / "q")
    for model, out in ((tmp_path / "train" / "model", "infer"), (tmp_path / "q" / "model", "infer-q")):
        run("vt-infer", "generate", "--model", model, "--examples", tmp_path / "test.jsonl", "--data-root", gym_raw,
            "--out", tmp_path / out, "--max-new-tokens", 4)
        predictions = read_jsonl(tmp_path / out / "predictions.jsonl", Prediction)
        assert [p.status for p in predictions] == ["ok", "ok"]
