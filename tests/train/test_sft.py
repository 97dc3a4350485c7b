"""vt-train sft on a tiny model: what each mode changes, and what it writes."""

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText

from videotune.core import models
from videotune.core.io import read_samples, write_jsonl
from videotune.prep.build import BuildOptions, build_examples
from videotune.train.sft import SftConfig, run_sft

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(gym_raw, tmp_path_factory):
    work = tmp_path_factory.mktemp("sft")
    examples, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw,
                                 BuildOptions("aqa", "plain", 4, 10, 0))
    write_jsonl(work / "train.jsonl", examples[:8])
    write_jsonl(work / "val.jsonl", examples[8:12])
    models.build_tiny("smolvlm2", work / "tiny", [m.content for e in examples for m in e.messages],
                      spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400))
    return work, gym_raw


def _train(setup, name, **overrides):
    work, root = setup
    config = SftConfig(model=str(work / "tiny"), train=work / "train.jsonl", val=work / "val.jsonl", data_root=root,
                       out=work / name, max_steps=3, batch_size=4, lr=1e-2, logging_steps=1, **overrides)
    return run_sft(config), work / name


def _state(path):
    return AutoModelForImageTextToText.from_pretrained(path).state_dict()


def test_full_changes_every_trained_weight(setup):
    summary, out = _train(setup, "full")
    before, after = _state(setup[0] / "tiny"), _state(out / "model")
    assert summary["parameters"]["trainable"] == summary["parameters"]["total"]
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("vision_model" in k for k in changed) and any("text_model" in k for k in changed)
    history = json.loads((out / "loss_history.json").read_text())
    assert len(history["train"]) == 3 and history["val"]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["mode"] == "full" and manifest["summary"]["global_step"] == 3


def test_lora_changes_only_the_language_model_projections(setup):
    summary, out = _train(setup, "lora", mode="lora", lora_r=4)
    assert summary["parameters"]["trainable"] < summary["parameters"]["total"] / 5
    before, after = _state(setup[0] / "tiny"), _state(out / "model")
    assert before.keys() == after.keys()  # merged: a plain model directory again
    targets = models.FAMILIES["smolvlm2"].lora_target_modules
    for key in before:
        is_target = "text_model" in key and any(f".{t}." in key for t in targets)
        if not is_target:
            assert torch.equal(before[key], after[key]), f"{key} changed but is not a LoRA target"
    assert any(not torch.equal(before[k], after[k]) for k in before if "text_model" in k and "q_proj" in k)
    assert (out / "adapter" / "adapter_config.json").exists()
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["lora_alpha"] == 8  # default alpha = 2 x rank
