"""vt-train pretrain-vision: the tower learns keypoints, nothing else changes, bad input is refused first."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText

from videotune.core import models
from videotune.core.io import read_jsonl, read_samples, write_jsonl
from videotune.core.schemas import Example
from videotune.prep.build import BuildOptions, build_examples
from videotune.train.pretrain import PretrainVisionConfig, run_pretrain_vision

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def setup(gym_raw, tmp_path_factory):
    work = tmp_path_factory.mktemp("pretrain")
    examples, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw,
                                 BuildOptions("aqa", "temporal", 4, 10, 0))
    write_jsonl(work / "train.jsonl", examples[:12])
    write_jsonl(work / "val.jsonl", examples[12:16])
    texts = [m.content for e in examples for m in e.messages]
    for family in ("smolvlm2", "qwen2-vl"):
        models.build_tiny(family, work / family, texts,
                          spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400, frame_size=32))
    return work, gym_raw


def _state(path):
    return AutoModelForImageTextToText.from_pretrained(path).state_dict()


@pytest.mark.parametrize("family", ["smolvlm2", "qwen2-vl"])
def test_the_tower_learns_keypoints_and_the_language_model_is_untouched(setup, family):
    work, root = setup
    out = work / f"out-{family}"
    summary = run_pretrain_vision(PretrainVisionConfig(
        model=str(work / family), train_examples=work / "train.jsonl", val_examples=work / "val.jsonl",
        data_root=root, out=out, epochs=6, batch_size=4, frames=4, lr=3e-3))
    history = json.loads((out / "pretrain_history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))
    # the read-out starts at zero (every joint at the frame's corner): training must bring the joints closer
    assert history[-1]["val_keypoint_error_px"] < history[0]["val_keypoint_error_px"]
    assert history[-1]["train_mse"] < history[0]["train_mse"]
    assert summary["joints"] == 23 and summary["clips"] == {"train": 12, "val": 4}
    before, after = _state(work / family), _state(out / "model")
    assert before.keys() == after.keys()
    family_def = models.FAMILIES[family]
    tower = (family_def.vision_module.removeprefix("model."), family_def.projector_module.removeprefix("model."))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(any(part in k for part in tower) for k in changed)
    assert any("language_model" in k or "text_model" in k for k in before)  # the untouched part exists
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["frames"] == 4 and manifest["summary"]["steps"] == 18
    # the result is an ordinary model directory for vt-train sft
    assert models.resolve(str(out / "model")).family.name == family


def test_a_missing_sidecar_is_named_before_the_model_loads(setup, tmp_path):
    work, root = setup
    examples = read_jsonl(work / "train.jsonl", Example)
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    for example in examples[:2]:
        shutil.copy(root / example.media, data / example.media)
    write_jsonl(tmp_path / "train.jsonl", examples[:2])
    result = subprocess.run(
        [str(BIN / "vt-train"), "pretrain-vision", "--model", str(work / "smolvlm2"),
         "--train-examples", str(tmp_path / "train.jsonl"), "--data-root", str(data), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr
    assert "train.jsonl: 2 clips cannot be used" in result.stderr and "line 1 (id" in result.stderr
    assert "keypoints.npz: no keypoints file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "model").exists()
