"""Fast unit tests of vt-train's parts: modes and parameter groups, the weighted loss, class weights,
the weighted sampler, checkpoint selection and the batch-size search."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from videotune.core import models
from videotune.core.io import InputError
from videotune.core.schemas import Example, Message
from videotune.train.autobatch import OutOfMemory, search_batch_size
from videotune.train.modes import ModeOptions, apply_mode, find_parts, lora_targets, parameter_report
from videotune.train.sft import SftConfig, last_complete_checkpoint
from videotune.train.trainer import EpochWeightedSampler, VtSFTTrainer, sequence_loss
from videotune.train.weights import example_weights, group_key

BIN = Path(sys.executable).parent
FAMILY = models.FAMILIES["smolvlm2"]


@pytest.fixture
def model(tiny_model):
    return models.load(models.resolve(str(tiny_model)))[0]


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------- modes and parameter groups


def test_parts_are_found_through_the_family_paths(model):
    parts = find_parts(model, FAMILY)
    assert parts.n_layers == 2
    groups = {parts.group(n) for n, _ in model.named_parameters()}
    assert groups == {"vision", "projector", "decoder_blocks", "language_other"}
    assert parts.group("model.connector.modality_projection.proj.weight") == "projector"
    assert parts.group("base_model.model.model.text_model.layers.1.mlp.up_proj.lora_A.default.weight") == "decoder_blocks"
    assert parts.layer_index("model.text_model.layers.1.mlp.up_proj.weight") == 1


def test_full_with_frozen_vision_and_projector(model):
    apply_mode(model, FAMILY, ModeOptions(freeze_vision=True, freeze_projector=True))
    report = parameter_report(model, FAMILY)
    assert report["groups"]["vision"]["trainable"] == 0 and report["groups"]["projector"]["trainable"] == 0
    lm = report["groups"]["decoder_blocks"]
    assert lm["trainable"] == lm["total"] > 0
    assert report["trainable"] == report["groups"]["decoder_blocks"]["total"] + report["groups"]["language_other"]["total"]


def test_last_blocks_trains_only_those_blocks(model):
    apply_mode(model, FAMILY, ModeOptions(last_blocks=1, freeze_vision=True, freeze_projector=True))
    trainable = _trainable(model)
    assert trainable and all(n.startswith("model.text_model.layers.1.") for n in trainable)
    layer = sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.text_model.layers.1."))
    assert parameter_report(model, FAMILY)["trainable"] == layer


def test_last_blocks_beyond_the_model_is_refused(model):
    with pytest.raises(InputError, match="2 decoder blocks"):
        apply_mode(model, FAMILY, ModeOptions(last_blocks=3))


def test_lora_targets_are_exact_names_in_the_chosen_blocks(model):
    parts = find_parts(model, FAMILY)
    every = lora_targets(model, FAMILY, parts)
    last = lora_targets(model, FAMILY, parts, first_layer=1)
    assert len(every) == 2 * len(FAMILY.lora_target_modules) and len(last) == len(FAMILY.lora_target_modules)
    assert all(n.startswith("model.text_model.layers.1.") for n in last)
    wrapped = apply_mode(model, FAMILY, ModeOptions(mode="lora", lora_r=2, last_blocks=1))
    trainable = _trainable(wrapped)
    assert trainable and all("lora_" in n and ".layers.1." in n for n in trainable)
    assert all("vision_model" not in n for n in trainable)


def test_lora_alpha_defaults_to_twice_the_rank_and_projector_lr_is_checked():
    assert ModeOptions(mode="lora", lora_r=16).lora_alpha == 32
    assert ModeOptions(mode="lora", lora_r=16, lora_alpha=8).lora_alpha == 8
    with pytest.raises(ValueError, match="projector-lr needs --mode full"):
        ModeOptions(mode="lora", projector_lr=1e-4)
    with pytest.raises(ValueError, match="frozen projector"):
        ModeOptions(freeze_projector=True, projector_lr=1e-4)


def test_projector_gets_its_own_optimizer_group(model):
    # create_optimizer only reads args and the parameter names: call it on a bare object
    from transformers import TrainingArguments

    from videotune.train.modes import projector_param_names

    names = projector_param_names(model, FAMILY)
    assert names and all(n.startswith("model.connector.") for n in names)
    fake = SimpleNamespace(optimizer=None, projector_params=names, projector_lr=1e-5, model=model,
                           args=TrainingArguments(output_dir="/tmp/unused", learning_rate=1e-3, weight_decay=0.1,
                                                  report_to="none"),
                           optimizer_cls_and_kwargs=None)
    fake.get_decay_parameter_names = lambda m: VtSFTTrainer.get_decay_parameter_names(fake, m)
    fake.get_optimizer_cls_and_kwargs = VtSFTTrainer.get_optimizer_cls_and_kwargs
    optimizer = VtSFTTrainer.create_optimizer(fake)
    ids = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        in_projector = {ids[id(p)] in names for p in group["params"]}
        assert len(in_projector) == 1
        assert group["lr"] == (1e-5 if in_projector.pop() else 1e-3)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def _cli(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "vt-train"), *args], capture_output=True, text=True, env=env, **kw)


def test_params_command_prints_and_writes_the_report(tiny_model, tmp_path):
    result = _cli("params", "--model", str(tiny_model), "--mode", "lora", "--lora-r", "4", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "decoder_blocks" in result.stderr and "trainable" in result.stderr
    report = json.loads((tmp_path / "params.json").read_text())
    assert 0 < report["trainable"] == report["groups"]["decoder_blocks"]["trainable"] < report["total"]
    assert json.loads((tmp_path / "run.json").read_text())["config"]["lora_alpha"] == 8


def test_qlora_and_auto_batch_size_are_refused_on_a_cpu(tiny_model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("the refusal is for machines without CUDA")
    result = _cli("params", "--model", str(tiny_model), "--mode", "qlora")
    assert result.returncode == 2 and "needs a CUDA GPU" in result.stderr
    result = _cli("sft", "--model", str(tiny_model), "--train-examples", str(tmp_path / "t.jsonl"), "--data-root", str(tmp_path),
                  "--out", str(tmp_path / "o"), "--auto-batch-size", "0.9")
    assert result.returncode == 2 and "--auto-batch-size" in result.stderr and "CUDA" in result.stderr


# ---------------------------------------------------------------- the weighted loss


def test_weighted_loss_gradient_matches_the_hand_computation():
    torch.manual_seed(0)
    # four label positions: sample 0 has 1 token, sample 1 has 3
    logits = torch.randn(4, 5, requires_grad=True)
    targets = torch.tensor([1, 0, 3, 4])
    rows = torch.tensor([0, 1, 1, 1])
    weights = torch.tensor([3.0, 1.0])
    sequence_loss(logits, targets, rows, 2, weights).backward()
    # by hand: L = (3 * l_0 + 1 * (l_1 + l_2 + l_3) / 3) / (3 + 1); dl_t/dz = softmax(z_t) - onehot(y_t)
    per_token = torch.softmax(logits.detach(), dim=-1) - torch.nn.functional.one_hot(targets, 5).float()
    scale = torch.tensor([3 / 1, 1 / 3, 1 / 3, 1 / 3]) / 4
    assert torch.allclose(logits.grad, per_token * scale[:, None], atol=1e-6)

    unweighted = logits.detach().clone().requires_grad_()
    sequence_loss(unweighted, targets, rows, 2).backward()  # token mean: every token 1/4
    assert torch.allclose(unweighted.grad, per_token / 4, atol=1e-6)
    assert not torch.allclose(unweighted.grad, logits.grad)


class _ToyLM(torch.nn.Module):
    """Embedding + LM head; honours a boolean logits_to_keep like transformers' models."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.embed = torch.nn.Embedding(7, 4)
        self.head = torch.nn.Linear(4, 7)

    def forward(self, input_ids, attention_mask, use_cache=False, logits_to_keep=None):
        hidden = self.embed(input_ids)
        return SimpleNamespace(logits=self.head(hidden[logits_to_keep]))


def test_compute_loss_scores_each_label_with_the_previous_position():
    model = _ToyLM()
    input_ids = torch.tensor([[1, 2, 3, 4], [5, 6, 1, 0]])
    labels = torch.tensor([[-100, -100, 3, 4], [-100, 6, 1, -100]])
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
             "sample_weight": torch.tensor([2.0, 1.0])}
    fake = SimpleNamespace(current_gradient_accumulation_steps=1, token_counts={"tokens": 0, "target_tokens": 0})
    loss = VtSFTTrainer.compute_loss(fake, model, batch)
    logits = model.head(model.embed(input_ids))
    lp = torch.log_softmax(logits, dim=-1)
    sample0 = -(lp[0, 1, 3] + lp[0, 2, 4]) / 2
    sample1 = -(lp[1, 0, 6] + lp[1, 1, 1]) / 2
    assert torch.allclose(loss, (2 * sample0 + sample1) / 3, atol=1e-6)
    assert int(fake.token_counts["target_tokens"]) == 4 and int(fake.token_counts["tokens"]) == 8


# ---------------------------------------------------------------- class weights and the sampler


def _example(i, label="squat", errors=()):
    meta = {"label": label, "errors": [{"name": e, "start_s": 0.0, "end_s": 1.0} for e in errors]}
    return Example(id=f"ex-{i}", sample_id=f"s-{i}", media="v.mp4", target="t",
                   messages=[Message(role="user", content="q"), Message(role="assistant", content="t")], meta=meta)


def test_class_weights_by_example_id_then_sample_id_then_group(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"scheme": "inverse_frequency", "group_by": "label+errors",
                                "groups": {"squat|none": 0.5, "squat|knees_forward+knees_inward": 4.0},
                                "examples": {"ex-0": 2.0, "s-1": 3.0}}))
    examples = [_example(0), _example(1), _example(2), _example(3, errors=("knees_inward", "knees_forward"))]
    assert group_key(examples[3]) == "squat|knees_forward+knees_inward"
    assert example_weights(path, examples) == [2.0, 3.0, 0.5, 4.0]
    with pytest.raises(InputError, match=r"weights\.json.*'ex-9'.*'squat\|elbows'"):
        example_weights(path, [_example(9, errors=("elbows",))])
    path.write_text(json.dumps({"groups": {"squat|none": -1}}))
    with pytest.raises(InputError, match=r"weights\.json.*must be a finite number > 0"):
        example_weights(path, [_example(0)])


def test_weighted_sampler_is_a_function_of_seed_and_epoch():
    weights = [1.0, 1.0, 1.0, 97.0]
    sampler = EpochWeightedSampler(weights, seed=3)
    first = list(sampler)
    assert list(sampler) == first and len(first) == 4
    sampler.set_epoch(1)
    draws = [i for e in range(1, 50) for i in (sampler.set_epoch(e), list(sampler))[1]]
    assert draws.count(3) / len(draws) > 0.9  # the heavy example dominates
    sampler.set_epoch(0)
    assert list(sampler) == first


# ---------------------------------------------------------------- resume: which checkpoint


def _checkpoint(folder, step, state=True, torn=False):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in ("optimizer.pt", "scheduler.pt", "model.safetensors"):
        (path / name).write_bytes(b"x")
    if state:
        (path / "trainer_state.json").write_text('{"global_step": ' if torn else json.dumps({"global_step": step}))
    return path


def test_last_complete_checkpoint_ignores_torn_ones(tmp_path):
    assert last_complete_checkpoint(tmp_path / "missing") is None
    _checkpoint(tmp_path, 2)
    good = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 6, torn=True)  # killed while writing the state
    _checkpoint(tmp_path, 8, state=False)  # killed before the state
    assert last_complete_checkpoint(tmp_path) == good


def test_sampler_needs_class_weights(tmp_path):
    with pytest.raises(ValueError, match="--weighted-sampler needs --class-weights"):
        SftConfig(model="m", train_examples=tmp_path / "t", data_root=tmp_path, out=tmp_path, weighted_sampler=True)


# ---------------------------------------------------------------- --auto-batch-size search


def test_batch_search_finds_the_largest_batch_under_the_budget():
    calls = []

    def peak(b):  # 1 GB of weights plus 0.3 GB per example
        calls.append(b)
        return 1_000_000_000 + 300_000_000 * b

    batch, trials = search_batch_size(peak, 9_000_000_000, 1024)  # (9 - 1) / 0.3 = 26.7
    assert batch == 26
    assert calls[:6] == [1, 2, 4, 8, 16, 32] and len(calls) <= 12
    assert [t["fits"] for t in trials if t["batch_size"] in (26, 27)] == [True, False]


def test_batch_search_handles_oom_dataset_size_and_nothing_fits():
    def peak(b):
        if b > 10:
            raise OutOfMemory("CUDA out of memory")
        return b

    assert search_batch_size(peak, 100, 1000)[0] == 10
    assert search_batch_size(lambda b: b, 100, 6)[0] == 6  # never above the dataset size
    assert search_batch_size(lambda b: 50 + b, 10, 8) == (0, [{"batch_size": 1, "peak_bytes": 51, "fits": False}])


@pytest.mark.gpu
def test_auto_batch_size_on_cuda(tiny_model, gym_examples, gym_raw, tmp_path):
    from videotune.core.video import FrameCache
    from videotune.train.autobatch import auto_batch_size
    from videotune.train.data import VideoCollator, load_decoded

    model, processor = models.load(models.resolve(str(tiny_model)), device="cuda")
    items = load_decoded(gym_examples, gym_raw, FAMILY.frame_size(processor), FrameCache(tmp_path))
    batch, record = auto_batch_size(model, VideoCollator(items, processor, FAMILY), items, 0.9)
    assert batch == len(items)  # a tiny model fits every example at once
    assert all(t["peak_bytes"] <= record["budget_bytes"] for t in record["trials"] if t["fits"])


@pytest.mark.gpu
def test_qlora_trains_adapters_on_a_4bit_base(tiny_model):
    model, _ = models.load(models.resolve(str(tiny_model)), four_bit=True)
    model = apply_mode(model, FAMILY, ModeOptions(mode="qlora", lora_r=4))
    report = parameter_report(model, FAMILY)
    assert 0 < report["trainable"] < report["total"] / 5
    assert all("lora_" in n for n in _trainable(model))
