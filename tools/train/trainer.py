"""vt-train's SFTTrainer: TRL's trainer with a lean loss, per-sample weights, a weighted sampler,
a projector learning rate and run records.

TRL 1.16's `SFTTrainer.compute_loss` runs a chunked log-prob kernel that also computes the entropy
and top-1 accuracy of every label position, gathers them and calls `.item()` on each at every step
(a device sync on CUDA); with a stock SFTTrainer a 332K-parameter SmolVLM took 2.42x the step time
of a raw PyTorch loop on 2 CPU threads. `compute_loss` here keeps the rest of TRL (data handling,
checkpoints, logging, PEFT) and computes only the loss: the model's own forward with
`logits_to_keep` set to the label positions, so the LM head projects those positions only, then
one cross-entropy. Token counts accumulate on the device and are read once per epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import TrainerCallback
from trl import SFTTrainer


def sequence_loss(logits, targets, rows, batch_size: int, weights=None, num_items=None):
    """Cross-entropy over the label positions.

    logits [K, V] and targets [K] are the K label positions of the batch (row-major order), rows [K]
    the sample each came from. Without weights: the token mean, sum over tokens / num_items (the
    label tokens of the whole accumulated step when the trainer passes it, else of this batch).
    With per-sample weights w_i: L = sum_i w_i * mean_t(l_it) / sum_i w_i, the weighted mean over
    samples of each sample's mean token loss, so a sample's weight does not depend on its length.
    """
    token_loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    if weights is None:
        denom = num_items if num_items is not None else targets.numel()
        return token_loss.sum() / torch.as_tensor(denom, device=token_loss.device).clamp(min=1)
    sums = token_loss.new_zeros(batch_size).index_add(0, rows, token_loss)
    counts = token_loss.new_zeros(batch_size).index_add(0, rows, torch.ones_like(token_loss))
    weights = weights.to(token_loss) * (counts > 0)  # a sample without label tokens carries no weight
    return (weights * sums / counts.clamp(min=1)).sum() / weights.sum().clamp(min=torch.finfo(torch.float32).tiny)


class EpochWeightedSampler(Sampler[int]):
    """torch's WeightedRandomSampler draw (with replacement, one epoch = len(weights) draws), seeded by
    seed + epoch: the order of every epoch is a function of (seed, epoch), so a resumed run replays
    the interrupted epoch exactly (the trainer calls set_epoch, then skips the batches already done)."""

    def __init__(self, weights: Sequence[float], seed: int):
        self.weights = torch.as_tensor(list(weights), dtype=torch.double)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.multinomial(self.weights, len(self.weights), replacement=True, generator=generator).tolist()


class VtSFTTrainer(SFTTrainer):
    """SFTTrainer with the lean loss; per-sample weights arrive in the batch as `sample_weight`."""

    def __init__(self, *args, sampler_weights: Sequence[float] | None = None, projector_params: set[str] | None = None,
                 projector_lr: float | None = None, **kwargs):
        self.sampler_weights = sampler_weights
        self.projector_params = projector_params or set()
        self.projector_lr = projector_lr
        super().__init__(*args, **kwargs)
        self.token_counts = {"tokens": 0, "target_tokens": 0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        weights = inputs.pop("sample_weight", None)
        if not model.training:
            weights, num_items_in_batch = None, None  # validation loss: the plain token mean
        # position t predicts token t + 1: keep the positions whose next token is a label
        shifted = labels[:, 1:]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = shifted != -100
        outputs = model(**inputs, use_cache=False, logits_to_keep=keep)
        logits = outputs.logits
        if logits.dim() == 3:  # a model that ignores a boolean logits_to_keep returns every position
            logits = logits[keep]
        rows = keep.nonzero()[:, 0]
        targets = shifted[shifted != -100]
        loss = sequence_loss(logits, targets, rows, labels.shape[0], weights, num_items_in_batch)
        if weights is not None and num_items_in_batch is not None:
            # the trainer leaves accumulation scaling to a loss normalised by num_items_in_batch;
            # a weighted loss is a per-micro-batch mean, so average it over the accumulated batches
            loss = loss / self.current_gradient_accumulation_steps
        if model.training:
            # device tensors, read once per epoch: no host sync per step
            self.token_counts["tokens"] = self.token_counts["tokens"] + inputs["attention_mask"].sum()
            self.token_counts["target_tokens"] = self.token_counts["target_tokens"] + targets.numel()
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _get_train_sampler(self, train_dataset=None):
        if self.sampler_weights is None:
            return super()._get_train_sampler(train_dataset)
        return EpochWeightedSampler(self.sampler_weights, self.args.data_seed or self.args.seed)

    def create_optimizer(self, model=None):
        """AdamW with the projector's parameters in their own group at --projector-lr."""
        if self.optimizer is not None or not self.projector_params:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                groups.setdefault((name in self.projector_params, name in decay), []).append(param)
        param_groups = []
        for (is_projector, has_decay), params in groups.items():
            group = {"params": params, "weight_decay": self.args.weight_decay if has_decay else 0.0}
            if is_projector:
                group["lr"] = self.projector_lr
            param_groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def read_token_counts(self) -> dict[str, int]:
        """Tokens seen in training since the last read (resets the counters)."""
        counts = {k: int(v) for k, v in self.token_counts.items()}
        self.token_counts = {"tokens": 0, "target_tokens": 0}
        return counts


class EpochRecords(TrainerCallback):
    """Per epoch: wall time, data time (collation), tokens and tokens/s, written into the trainer's
    log history so they travel with checkpoints and survive a resume."""

    def __init__(self, trainer: VtSFTTrainer, data_clock: Any):
        self.trainer = trainer
        self.data_clock = data_clock  # an object with `seconds`, advanced by the collator
        self.start = 0.0
        self.data_start = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()
        self.data_start = self.data_clock.seconds
        self.trainer.read_token_counts()  # drop counts of a partial step before a resume

    def on_epoch_end(self, args, state, control, **kwargs):
        seconds = time.monotonic() - self.start
        counts = self.trainer.read_token_counts()
        state.log_history.append({
            "epoch": round(state.epoch or 0.0, 4), "step": state.global_step, "epoch_time_s": round(seconds, 3),
            "data_time_s": round(self.data_clock.seconds - self.data_start, 3), **counts,
            "tokens_per_s": round(counts["tokens"] / seconds, 1) if seconds else None,
            "target_tokens_per_s": round(counts["target_tokens"] / seconds, 1) if seconds else None,
        })
