"""What a user sees from vt-train sft without a terminal: progress lines with the loss, and no library noise."""

import os
import subprocess
import sys
from pathlib import Path

from videotune.core.io import read_jsonl, write_jsonl
from videotune.core.schemas import Example

VT_TRAIN = str(Path(sys.executable).parent / "vt-train")
NOISE = (
    "_pytree",  # torch's Enum-subclass warnings when torchao is imported
    "Loading weights",  # transformers' tqdm bars
    "Writing model shards",
    "pin_memory",  # DataLoader, at every evaluation on a CPU
    "mtime may not be reliable",  # the trainer's checkpoint rotation
    "{'loss'",  # the trainer's raw log dicts
    "{'eval_loss'",
    "{'train_runtime'",
)


def test_sft_shows_progress_with_the_loss_and_no_library_noise(gym_examples, gym_raw, tiny_model, tmp_path):
    examples = read_jsonl(gym_examples, Example)
    write_jsonl(tmp_path / "train.jsonl", examples[:8])
    write_jsonl(tmp_path / "val.jsonl", examples[8:12])
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "VT_VERBOSE_LIBRARIES")}
    result = subprocess.run(
        [VT_TRAIN, "sft", "--model", str(tiny_model), "--train-examples", str(tmp_path / "train.jsonl"), "--val-examples",
         str(tmp_path / "val.jsonl"), "--data-root", str(gym_raw), "--out", str(tmp_path / "out"), "--epochs", "3",
         "--batch-size", "4", "--logging-steps", "1", "--save-total-limit", "1"],
        capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in output, noise
    lines = result.stderr.splitlines()
    assert any(line.endswith("train: 0/6") for line in lines)
    last = [line for line in lines if " train: 6/6 (" in line]
    assert last and " loss " in last[0]  # the last step's training loss
    assert sum("val loss" in line for line in lines) == 3  # one line per evaluation (every epoch)
