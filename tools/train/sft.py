"""Supervised fine-tuning of a video-language model on conversation examples, with TRL's SFTTrainer.

TRL has no video support: the dataset rows are indices, the frames are decoded once up front
(frame cache), and `VideoCollator` builds the model inputs with the prompt masked out of the loss.
Reads top to bottom: setup (data, model, adapters), run (trainer), save (model, history, run.json).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from videotune.core import models
from videotune.core.cli import CommandConfig
from videotune.core.io import atomic_write_text, replace_dir, write_json
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.video import FrameCache, default_cache_dir

log = logging.getLogger("videotune.train")


class SftConfig(CommandConfig):
    """Fine-tune a video-language model on examples/{train,val}.jsonl (full or LoRA)."""

    model: str = Field(description="registry name (smolvlm2-256m), hub id, or local model directory")
    train: Path = Field(description="training examples JSONL")
    val: Path | None = Field(None, description="validation examples JSONL (loss after every epoch)")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder: model/, checkpoints/, loss_history.json, run.json")
    mode: Literal["full", "lora"] = Field("full", description="full fine-tuning or LoRA adapters (PEFT)")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int | None = Field(None, ge=1, description="LoRA alpha [default: 2 x rank]")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    epochs: float = Field(3.0, gt=0, description="training epochs")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    batch_size: int = Field(8, ge=1, description="examples per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    lr: float = Field(2e-4, gt=0, description="peak learning rate (AdamW)")
    scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = Field(
        "cosine", description="learning-rate schedule (transformers' get_scheduler names)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    frames: int | None = Field(None, ge=1, description="frames per clip [default: as built into the examples]")
    letterbox: int | None = Field(
        None, ge=16, description="image examples: letterbox to SIZE x SIZE px on load (seed 001: 768) [default: as stored]")
    logging_steps: int = Field(5, ge=1, description="log the training loss every N steps")
    save_every_epochs: int = Field(
        1, ge=1, description="write a resumable checkpoint every N epochs (the final model always goes to model/)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept in checkpoints/")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint (NVILA, Mobile-VideoGPT)")
    seed: int = Field(0, description="seed of initialisation, data order and dropout")

    @model_validator(mode="after")
    def _alpha(self) -> SftConfig:
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_r
        return self


def _history(log_history: list[dict]) -> dict[str, list[dict]]:
    train = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"]} for h in log_history if "loss" in h]
    val = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["eval_loss"]} for h in log_history if "eval_loss" in h]
    return {"train": train, "val": val}


def _steps_per_epoch(n_examples: int, config: SftConfig) -> int:
    return max(1, math.ceil(n_examples / config.batch_size) // config.grad_accum)


def run_sft(config: SftConfig) -> dict:
    import torch
    from transformers import TrainerCallback
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    from videotune.train.data import VideoCollator, index_dataset, load_decoded

    # ---- setup
    seed_everything(config.seed)
    manifest = RunManifest("train", "sft", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.train)
    if config.val:
        manifest.add_input(config.val)
    ref = models.resolve(config.model)
    if ref.is_local:
        manifest.add_input(ref.source, name="base_model")
    model, processor = models.load(ref, dtype=config.dtype, trust_remote_code=config.trust_remote_code)
    cache = FrameCache(config.cache_dir or default_cache_dir())
    size = models.frame_size(processor)
    train_items = load_decoded(config.train, config.data_root, size, cache, config.frames, letterbox=config.letterbox)
    val_items = (load_decoded(config.val, config.data_root, size, cache, config.frames, letterbox=config.letterbox)
                 if config.val else [])

    if config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        # Only the language model's projections: the vision tower's modules share names in
        # some families, so they are excluded by matching inside `text_model` only.
        lora = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=rf".*text_model.*\.({'|'.join(ref.family.lora_target_modules)})$", task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    total, trainable = models.count_parameters(model)
    log.info("parameters: %d total, %d trainable (%.2f%%)", total, trainable, 100 * trainable / total)

    # ---- run
    epoch_times: list[float] = []

    class EpochTimer(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_epoch_end(self, args, state, control, **kwargs):
            epoch_times.append(round(time.monotonic() - self.start, 3))

    args = TrlSFTConfig(
        output_dir=str(config.out / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        eval_strategy="epoch" if val_items else "no",
        # A checkpoint costs seconds (weights, optimizer, processor): on toy runs, every few epochs.
        save_strategy="epoch" if config.save_every_epochs == 1 else "steps",
        save_steps=_steps_per_epoch(len(train_items), config) * config.save_every_epochs,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.dtype == "bfloat16",
        fp16=config.dtype == "float16",
        report_to="none",
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,  # never truncate: cutting media tokens breaks the model's inputs
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    # One collator over train + val items; each dataset holds the indices of its own part.
    items = train_items + val_items
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=index_dataset(range(len(train_items))),
        eval_dataset=index_dataset(range(len(train_items), len(items))) if val_items else None,
        data_collator=VideoCollator(items, processor, ref.family),
        processing_class=processor,
        callbacks=[EpochTimer()],
    )
    started = time.monotonic()
    result = trainer.train()
    train_s = time.monotonic() - started

    # ---- save
    model_dir = config.out / "model"
    final = trainer.model
    if config.mode == "lora":
        with replace_dir(config.out / "adapter") as adapter_tmp:
            trainer.model.save_pretrained(adapter_tmp)
        final = trainer.model.merge_and_unload()  # downstream tools load one plain model directory
    with replace_dir(model_dir) as model_tmp:
        final.save_pretrained(model_tmp)
        processor.save_pretrained(model_tmp)
        atomic_write_text(model_tmp / "videotune.json", json.dumps({"base_model": config.model, "mode": config.mode}))
    history = _history(trainer.state.log_history)
    write_json(config.out / "loss_history.json", history)
    summary = {
        "parameters": {"total": total, "trainable": trainable},
        "train_runtime_s": round(train_s, 3),
        "epoch_times_s": epoch_times,
        "global_step": trainer.state.global_step,
        "final_train_loss": result.training_loss,
        "final_val_loss": history["val"][-1]["loss"] if history["val"] else None,
        "model_size_bytes": models.dir_bytes(model_dir),
        "peak_memory_bytes": _peak_memory(),
        "n_train": len(train_items),
        "n_val": len(val_items),
    }
    manifest.write(outputs={"model": "model/", "history": "loss_history.json"}, summary=summary)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return summary


def _peak_memory() -> int:
    """CUDA peak allocation where a GPU ran, else the process's peak resident set size (bytes)."""
    import resource

    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
