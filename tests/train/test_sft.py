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
    values = {"max_steps": 3, "batch_size": 4, "lr": 1e-2, "logging_steps": 1, **overrides}
    config = SftConfig(model=str(work / "tiny"), train_examples=work / "train.jsonl", val_examples=work / "val.jsonl", data_root=root,
                       out=work / name, **values)
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


def _changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_full_mode_changes_every_trainable_tensor_and_records_the_run(setup):
    summary, out = _train(setup, "full-records", epochs=2, max_steps=-1)
    before, after = _state(setup[0] / "tiny"), _state(out / "model")
    # every tensor the batches reach changes: all but the vision tower's position-id-free extras
    unchanged = set(before) - _changed(before, after)
    assert not unchanged, unchanged
    history = json.loads((out / "loss_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1.0, 2.0] and len(history["val"]) == 2
    for epoch in history["epochs"]:
        assert epoch["epoch_time_s"] > 0 and epoch["data_time_s"] > 0
        assert epoch["tokens"] > epoch["target_tokens"] > 0 and epoch["tokens_per_s"] > 0
    assert summary["tokens_per_s"] > summary["target_tokens_per_s"] > 0
    assert summary["model_size_bytes"] > 0 and summary["peak_memory_bytes"] > 0
    assert summary["parameters"]["groups"]["vision"]["trainable"] > 0 and summary["imbalance"] == "none"
    from videotune.core.summaries import TrainSummary, read_summary

    typed = read_summary(out / "summary.json")  # what vt-analyze collect reads
    assert isinstance(typed, TrainSummary) and typed.trainable_params == summary["parameters"]["trainable"]
    assert typed.epoch_times_s == summary["epoch_times_s"] and typed.final_val_loss == history["val"][-1]["loss"]


def test_last_blocks_with_frozen_vision_and_projector_changes_only_those_blocks(setup):
    summary, out = _train(setup, "last1", last_blocks=1, freeze_vision=True, freeze_projector=True)
    before, after = _state(setup[0] / "tiny"), _state(out / "model")
    changed = _changed(before, after)
    assert changed and all(k.startswith("model.text_model.layers.1.") for k in changed)
    # every tensor of the last block changed; everything else is bit-for-bit the base model's
    assert changed == {k for k in before if k.startswith("model.text_model.layers.1.")}
    assert summary["parameters"]["groups"]["vision"]["trainable"] == 0


def test_frozen_vision_tower_stays_bit_for_bit(setup):
    _, out = _train(setup, "frozen-vision", freeze_vision=True)
    before, after = _state(setup[0] / "tiny"), _state(out / "model")
    changed = _changed(before, after)
    assert not any(k.startswith("model.vision_model.") for k in changed)
    assert any(k.startswith("model.connector.") for k in changed) and any("text_model" in k for k in changed)


def test_projector_lr_scales_the_projector_step(setup):
    # AdamW's first step moves every weight with a gradient by about lr (m / sqrt(v) = sign(g))
    base = _state(setup[0] / "tiny")
    _, out = _train(setup, "proj-lr", max_steps=1, projector_lr=1e-4)
    after = _state(out / "model")

    def largest_step(prefix):
        return max(float((after[k] - base[k]).abs().max()) for k in base if k.startswith(prefix))

    assert largest_step("model.connector.") == pytest.approx(1e-4, rel=0.05)
    assert largest_step("model.text_model.layers.") == pytest.approx(1e-2, rel=0.05)


def test_lora_in_the_last_block_only(setup):
    _, out = _train(setup, "lora-last", mode="lora", lora_r=2, last_blocks=1)
    before, after = _state(setup[0] / "tiny"), _state(out / "model")
    changed = _changed(before, after)
    targets = models.FAMILIES["smolvlm2"].lora_target_modules
    assert changed and all(k.startswith("model.text_model.layers.1.") and k.split(".")[-2] in targets for k in changed)


def _weights_file(work, examples_path, heavy_label):
    from videotune.core.io import read_jsonl
    from videotune.core.schemas import Example

    examples = read_jsonl(examples_path, Example)
    weights = {e.id: (5.0 if e.meta["label"] == heavy_label else 1.0) for e in examples}
    path = work / "class_weights.json"
    path.write_text(json.dumps({"scheme": "manual", "group_by": "label+errors", "groups": {}, "examples": weights}))
    return path


def test_class_weights_change_the_training(setup):
    work, _ = setup
    weights = _weights_file(work, work / "train.jsonl", "squat")
    plain, _ = _train(setup, "unweighted", max_steps=2)
    weighted, out = _train(setup, "weighted", max_steps=2, class_weights=weights)
    sampled, _ = _train(setup, "sampled", max_steps=2, class_weights=weights, weighted_sampler=True)
    assert weighted["imbalance"] == "loss_weights" and sampled["imbalance"] == "weighted_sampler"
    losses = [s["final_train_loss"] for s in (plain, weighted, sampled)]
    assert len(set(losses)) == 3  # same seed and data: only the weighting differs
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["inputs"]["class_weights"]["sha256"]


def test_a_missing_class_weight_is_exit_2_naming_the_file_and_example(setup, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    work, root = setup
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"groups": {}, "examples": {}}))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vt-train"), "sft", "--model", str(work / "tiny"), "--train-examples",
         str(work / "train.jsonl"), "--data-root", str(root), "--out", str(tmp_path / "out"),
         "--class-weights", str(path)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    message = "".join(result.stderr.split())  # rich wraps long lines
    assert f"{path}:noweightfortrainingexample" in message and "(line1;sample'gym-" in message


def test_resume_after_sigkill_matches_an_uninterrupted_run(setup, tmp_path):
    """Kill a run (SIGKILL) after its first checkpoint, resume it, and compare with a run never killed.

    LoRA dropout makes the result depend on the RNG state; 8 examples at batch 2 put the
    checkpoint at step 2 in the middle of epoch 1, so the data position matters too.
    """
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from safetensors.torch import load_file

    from videotune.train.sft import last_complete_checkpoint

    work, root = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out, *extra):
        return [str(Path(sys.executable).parent / "vt-train"), "sft", "--model", str(work / "tiny"),
                "--train-examples", str(work / "train.jsonl"), "--val-examples", str(work / "val.jsonl"), "--data-root", str(root),
                "--out", str(out), "--mode", "lora", "--lora-r", "4", "--lora-dropout", "0.2", "--epochs", "3",
                "--batch-size", "2", "--lr", "1e-2", "--scheduler", "cosine", "--warmup-ratio", "0.2",
                "--save-every-steps", "2", "--logging-steps", "1", "--seed", "5", *extra]

    whole = tmp_path / "whole"
    subprocess.run(command(whole), check=True, capture_output=True, env=env)

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while last_complete_checkpoint(killed / "checkpoints") is None:
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed / "model").exists()  # it died before the end
    subprocess.run(command(killed, "--resume"), check=True, capture_output=True, env=env)

    a, b = load_file(whole / "model" / "model.safetensors"), load_file(killed / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    ha, hb = (json.loads((d / "loss_history.json").read_text()) for d in (whole, killed))
    assert [h["step"] for h in ha["train"]] == [h["step"] for h in hb["train"]] == list(range(1, 13))
    for part in ("train", "val"):
        assert [h["loss"] for h in ha[part]] == pytest.approx([h["loss"] for h in hb[part]], abs=1e-6)
    summary = json.loads((killed / "run.json").read_text())["summary"]
    assert summary["resumed_from"].endswith(("checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"))
    assert summary["global_step"] == 12


@pytest.mark.gpu
def test_qlora_with_auto_batch_size_on_cuda(setup):
    summary, out = _train(setup, "qlora", mode="qlora", lora_r=4, auto_batch_size=0.9)
    assert (out / "adapter" / "adapter_config.json").exists() and not (out / "model").exists()
    assert summary["auto_batch_size"]["batch_size"] == summary["batch_size"] >= 1
    assert summary["peak_memory_kind"] == "cuda_max_allocated"
    assert 0 < summary["parameters"]["trainable"] < summary["parameters"]["total"] / 5


def test_gradient_checkpointing_is_opt_in_and_trains_lora(setup):
    from videotune.train.sft import trainer_args

    work, root = setup
    config = SftConfig(model=str(work / "tiny"), train_examples=work / "train.jsonl", data_root=root, out=work / "gc")
    assert trainer_args(config, 4, 8, False).activation_checkpointing is False  # TRL's default is on
    summary, out = _train(setup, "lora-gc", mode="lora", lora_r=2, max_steps=2, gradient_checkpointing=True)
    before, after = _state(work / "tiny"), _state(out / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before if "q_proj" in k)
    assert json.loads((out / "run.json").read_text())["config"]["gradient_checkpointing"] is True


@pytest.mark.parametrize("scheduler", ["constant", "constant_with_warmup", "cosine", "linear"])
def test_schedules_with_a_warmup_ratio(setup, scheduler):
    warmup = 0.0 if scheduler == "constant" else 0.25
    _, out = _train(setup, f"sched-{scheduler}", max_steps=8, batch_size=2, scheduler=scheduler, warmup_ratio=warmup)
    lrs = [h["learning_rate"] for h in json.loads((out / "loss_history.json").read_text())["train"]]
    assert len(lrs) == 8 and max(lrs) == pytest.approx(1e-2)
    if scheduler == "constant":
        assert lrs == [1e-2] * 8
    else:  # 0.25 x 8 = 2 warmup steps from 0 (transformers logs the rate each step used), then flat or decaying
        assert lrs[:3] == pytest.approx([0.0, 5e-3, 1e-2])
        after = lrs[2:]
        if scheduler == "constant_with_warmup":
            assert after == pytest.approx([1e-2] * 6)
        else:
            assert all(a > b for a, b in zip(after, after[1:]))
