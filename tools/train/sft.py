"""Supervised fine-tuning of a video-language model on conversation examples, with TRL's SFTTrainer.

TRL has no video support: the dataset rows are indices, the frames are decoded once up front
(frame cache), and `VideoCollator` builds the model inputs with the prompt masked out of the loss.
What trains is chosen by the mode options (modes.py); the trainer (trainer.py) is TRL's with a lean
loss. Reads top to bottom: setup (data, weights, model, mode), run (trainer, resume), save (model,
history, run.json). `run_sft(config) -> summary` is a plain function: curriculum training calls
it once per stage.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from videotune.core import models
from videotune.core.checks import check_examples, differences, refuse
from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, file_sha256, replace_dir, write_json
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.video import FrameCache, default_cache_dir
from videotune.train.modes import ModeOptions

log = logging.getLogger("videotune.train")

CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


class SftConfig(CommandConfig, ModeOptions):
    """Fine-tune a video-language model on examples/{train,val}.jsonl (full, LoRA, QLoRA, last N blocks)."""

    model: str = Field(description="registry name (smolvlm2-256m), hub id, or local model directory")
    train_examples: Path = Field(description="training examples JSONL")
    val_examples: Path | None = Field(None, description="validation examples JSONL (loss after every epoch)")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder: model/, checkpoints/, loss_history.json, run.json")
    epochs: float = Field(3.0, gt=0, description="training epochs")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    batch_size: int = Field(8, ge=1, description="examples per device per step")
    auto_batch_size: float | None = Field(
        None, gt=0, le=1, description="CUDA only: pick the largest batch whose step keeps peak GPU memory under "
        "this fraction of the GPU's memory (e.g. 0.9); replaces --batch-size. Refused on a CPU")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    lr: float = Field(2e-4, gt=0, description="peak learning rate (AdamW)")
    scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = Field(
        "cosine", description="learning-rate schedule (transformers' get_scheduler names)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    class_weights: Path | None = Field(
        None, description="class-weights JSON of `vt-prep balance`: per-sample loss weights (weighted mean over "
        "samples of each sample's mean token loss), or sampling weights with --weighted-sampler")
    weighted_sampler: bool = Field(
        False, description="with --class-weights: draw training examples with those weights (with replacement) "
        "and keep the loss unweighted, instead of weighting the loss")
    frames: int | None = Field(
        None, ge=1, description="frames per clip; the prompts' time sentences are restated for them "
        "[default: as built into the examples]")
    letterbox: int | None = Field(
        None, ge=16, description="image examples: letterbox to SIZE x SIZE px on load (seed 001: 768) [default: as stored]")
    video_max_pixels: int | None = Field(None, ge=1, description=models.VIDEO_MAX_PIXELS_DOC)
    logging_steps: int = Field(5, ge=1, description="log the training loss every N steps")
    save_every_epochs: int = Field(
        1, ge=1, description="write a resumable checkpoint every N epochs (the final model always goes to model/)")
    save_every_steps: int = Field(
        0, ge=0, description="write a resumable checkpoint every N optimizer steps instead (0: use --save-every-epochs)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept in checkpoints/")
    resume: bool = Field(
        False, description="continue from the last complete checkpoint in OUT/checkpoints (weights, optimizer, "
        "scheduler, RNG and data position); starts afresh when there is none")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations during backward: much less activation memory (large models, many "
        "frames) for about a third more compute per step. TRL turns it on by default; vt-train leaves it off")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    frame_cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint (NVILA, Mobile-VideoGPT)")
    seed: int = Field(0, description="seed of initialisation, data order and dropout")

    @model_validator(mode="after")
    def _sampler_needs_weights(self) -> SftConfig:
        if self.weighted_sampler and self.class_weights is None:
            raise ValueError("--weighted-sampler needs --class-weights (the sampling weights)")
        return self

    @field_validator("max_steps")
    @classmethod
    def _some_steps(cls, max_steps: int) -> int:
        if max_steps == 0 or max_steps < -1:
            raise ValueError(f"must be a positive number of steps, or -1 for all epochs (got {max_steps})")
        return max_steps


# Settings a resumed run may change: where things are written or read from, and how often it logs
# or saves. Every other setting shapes the steps already taken, so `--resume` refuses a change.
RESUME_MAY_CHANGE = frozenset({
    "resume", "out", "train_examples", "val_examples", "data_root", "frame_cache_dir", "logging_steps", "save_every_epochs",
    "save_every_steps", "save_total_limit", "gradient_checkpointing", "trust_remote_code",
})


def run_settings(config: SftConfig) -> dict[str, Any]:
    """What each checkpoint records: the resolved config and the content hashes of the example files."""
    return {"config": config.model_dump(mode="json"),
            "inputs": {"train": file_sha256(config.train_examples),
                       "val": file_sha256(config.val_examples) if config.val_examples else None}}


def check_resume(config: SftConfig) -> None:
    """Refuse `--resume` onto a checkpoint made with other settings or other examples, naming what differs."""
    from videotune.train.callbacks import SETTINGS_FILE, read_settings

    checkpoint = last_complete_checkpoint(config.out / "checkpoints") if config.resume else None
    if checkpoint is None:
        return
    saved = read_settings(checkpoint)
    if saved is None:
        log.warning("%s has no %s: cannot check that this run's settings match it", checkpoint, SETTINGS_FILE)
        return
    now = run_settings(config)
    keys = [k for k in SftConfig.model_fields if k not in RESUME_MAY_CHANGE]
    changed = differences(saved.get("config", {}), now["config"], keys)
    changed += [f"{name} examples (other content)" for name in ("train", "val")
                if name in saved.get("inputs", {}) and saved["inputs"][name] != now["inputs"][name]]
    if changed:
        raise InputError(
            f"--resume: {checkpoint} was made with other settings: {'; '.join(changed)}. Resume with the same "
            f"settings, or drop --resume to start afresh (its checkpoints are then removed)"
        )


def check_inputs(config: SftConfig) -> None:
    """Every training and validation record and clip, and the checkpoint to resume from, checked before
    the model loads; refused records go to OUT/rejects.jsonl (exit 2)."""
    if config.video_max_pixels is not None:
        models.resolve(config.model).family.check_video_max_pixels(config.video_max_pixels)
    rejects, n_records = [], 0
    for path in (config.train_examples, config.val_examples):
        if path is not None:
            examples, refused = check_examples(path, config.data_root, config.frames)
            rejects += refused
            n_records += len(examples) + len(refused)
    refuse(rejects, config.out, n_records)
    check_resume(config)


def _history(log_history: list[dict]) -> dict[str, list[dict]]:
    train = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"], "learning_rate": h.get("learning_rate")}
             for h in log_history if "loss" in h]
    val = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["eval_loss"]} for h in log_history if "eval_loss" in h]
    epochs = [h for h in log_history if "epoch_time_s" in h]
    return {"train": train, "val": val, "epochs": epochs}


def _steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int) -> int:
    return max(1, math.ceil(n_examples / batch_size) // grad_accum)


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The checkpoint-N with the highest N whose save finished.

    The trainer writes trainer_state.json last, after weights, optimizer, scheduler and RNG state:
    a folder whose trainer_state.json is missing or does not parse was torn by a kill.
    """
    found = []
    for folder in checkpoints.glob("checkpoint-*") if checkpoints.is_dir() else []:
        suffix = folder.name.removeprefix("checkpoint-")
        if not suffix.isdigit() or not all((folder / f).is_file() for f in CHECKPOINT_FILES):
            continue
        if not any(folder.glob("*.safetensors")):
            continue
        try:
            state = json.loads((folder / "trainer_state.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(state, dict) and state.get("global_step") == int(suffix):
            found.append((int(suffix), folder))
    return max(found)[1] if found else None


def _prepare_checkpoints(config: SftConfig, delete: bool = True) -> Path | None:
    """The checkpoint to resume from (--resume), after removing what cannot be resumed from.

    Without --resume, checkpoints of an earlier run in the same folder are removed: the new run
    replaces that run's outputs, and a later --resume must not pick up the old run's steps.
    `delete` False (every process but the main one): the same answer, nothing removed.
    """
    folder = config.out / "checkpoints"
    if not folder.is_dir():
        return None
    if not config.resume:
        if delete:
            if any(folder.glob("checkpoint-*")):
                log.warning("removing checkpoints of an earlier run in %s (pass --resume to continue it)", folder)
            shutil.rmtree(folder)
        return None
    last = last_complete_checkpoint(folder)
    last_step = int(last.name.removeprefix("checkpoint-")) if last else -1
    for torn in folder.glob("checkpoint-*"):
        suffix = torn.name.removeprefix("checkpoint-")
        if delete and suffix.isdigit() and int(suffix) > last_step:
            log.warning("removing incomplete checkpoint %s", torn)
            shutil.rmtree(torn)
    if last is None:
        log.warning("--resume: no complete checkpoint in %s; starting from the beginning", folder)
    else:
        log.info("resuming from %s", last)
    return last


def trainer_args(config: SftConfig, batch_size: int, n_train: int, has_val: bool, **overrides: Any):
    """TRL's SFTConfig for this run (the benchmark builds its trainer from the same function)."""
    from trl import SFTConfig as TrlSFTConfig

    per_epoch = _steps_per_epoch(n_train, batch_size, config.grad_accum)
    by_steps = config.save_every_steps > 0 or config.save_every_epochs > 1
    values = dict(
        output_dir=str(config.out / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        eval_strategy="epoch" if has_val else "no",
        # A checkpoint costs seconds (weights, optimizer, processor): on toy runs, every few epochs.
        save_strategy="steps" if by_steps else "epoch",
        save_steps=config.save_every_steps or per_epoch * config.save_every_epochs,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.dtype == "bfloat16" or config.mode == "qlora",
        fp16=config.dtype == "float16",
        # TRL's default is on; off unless asked (transformers 5 names it activation checkpointing)
        activation_checkpointing=config.gradient_checkpointing,
        report_to="none",
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,  # never truncate: cutting media tokens breaks the model's inputs
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    values.update(overrides)
    return TrlSFTConfig(**values)


def run_sft(config: SftConfig) -> dict:
    import torch

    from videotune.train.callbacks import SettingsInCheckpoints, TrainProgress
    from videotune.train.data import VideoCollator, index_dataset, load_decoded
    from videotune.train.modes import apply_mode, format_report, parameter_report, projector_param_names
    from videotune.train.trainer import EpochRecords, VtSFTTrainer
    from videotune.train.weights import example_weights

    # ---- setup
    if config.auto_batch_size is not None and not torch.cuda.is_available():
        raise InputError("--auto-batch-size measures GPU memory and needs CUDA; on a CPU pass --batch-size")
    check_inputs(config)
    seed_everything(config.seed)
    manifest = RunManifest("train", "sft", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.train_examples)
    if config.val_examples:
        manifest.add_input(config.val_examples)
    ref = models.resolve(config.model)
    if ref.is_local:
        manifest.add_input(ref.source, name="base_model")
    model, processor = models.load(ref, dtype=config.dtype, trust_remote_code=config.trust_remote_code,
                                   four_bit=config.mode == "qlora")
    cache = FrameCache(config.frame_cache_dir or default_cache_dir())
    size = ref.family.frame_size(processor)
    decode_started = time.monotonic()
    train_items = load_decoded(config.train_examples, config.data_root, size, cache, config.frames, letterbox=config.letterbox)
    val_items = (load_decoded(config.val_examples, config.data_root, size, cache, config.frames, letterbox=config.letterbox)
                 if config.val_examples else [])
    decode_s = time.monotonic() - decode_started

    weights = None
    if config.class_weights is not None:
        manifest.add_input(config.class_weights, name="class_weights")
        weights = example_weights(config.class_weights, [item.example for item in train_items])
    imbalance = "none" if weights is None else "weighted_sampler" if config.weighted_sampler else "loss_weights"

    model = apply_mode(model, ref.family, config)
    params = parameter_report(model, ref.family)
    log.info("parameters (%s):\n%s", config.mode, format_report(params))

    # One collator over train + val items; each dataset holds the indices of its own part.
    items = train_items + val_items
    loss_weights = weights + [1.0] * len(val_items) if imbalance == "loss_weights" else None
    collator = VideoCollator(items, processor, ref.family, weights=loss_weights, video_max_pixels=config.video_max_pixels)

    batch_size, auto_record = config.batch_size, None
    if config.auto_batch_size is not None:
        from videotune.train.autobatch import auto_batch_size

        if next(model.parameters()).device.type != "cuda":  # a 4-bit base is already there (and cannot move)
            # under accelerate launch each process searches on its own GPU
            model.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))))
        if config.gradient_checkpointing:  # measure the memory the run will use
            model.gradient_checkpointing_enable()
        batch_size, auto_record = auto_batch_size(model, collator, train_items, config.auto_batch_size)
        batch_size = _smallest_over_processes(batch_size)  # every rank must take the same steps, or DDP hangs
        collator.seconds = 0.0
        if batch_size == 0:
            raise RuntimeError(f"--auto-batch-size {config.auto_batch_size}: even one example exceeds the budget")

    # ---- run
    args = trainer_args(config, batch_size, len(train_items), bool(val_items))
    trainer = VtSFTTrainer(
        model=model,
        args=args,
        train_dataset=index_dataset(range(len(train_items))),
        eval_dataset=index_dataset(range(len(train_items), len(items))) if val_items else None,
        data_collator=collator,
        processing_class=processor,
        sampler_weights=weights if imbalance == "weighted_sampler" else None,
        projector_params=projector_param_names(model, ref.family) if config.projector_lr else None,
        projector_lr=config.projector_lr,
    )
    trainer.add_callback(EpochRecords(trainer, collator))
    TrainProgress.install(trainer)
    trainer.add_callback(SettingsInCheckpoints(run_settings(config)))
    accelerator = trainer.accelerator
    # Under accelerate/torchrun every process runs this function on the same folder: one process
    # deletes and writes, the others wait for it.
    checkpoint = _prepare_checkpoints(config, delete=accelerator.is_main_process)
    accelerator.wait_for_everyone()
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_s = time.monotonic() - started

    # ---- save
    model_dir = config.out / "model"
    # ZeRO-3 and FSDP shard the weights over the processes: gather them (a collective, every rank
    # takes part) before the main process writes a plain checkpoint.
    sharded = trainer.is_fsdp_enabled or (
        trainer.is_deepspeed_enabled and accelerator.state.deepspeed_plugin.zero_stage == 3)
    state_dict = accelerator.get_state_dict(trainer.model) if sharded else None
    if accelerator.is_main_process:
        _save_outputs(config, ref, trainer, processor, model_dir, state_dict)
    accelerator.wait_for_everyone()
    history = _history(trainer.state.log_history)
    summary = _summary(config, params, history, trainer, result, train_s, decode_s, model_dir)
    summary.update(n_train=len(train_items), n_val=len(val_items), batch_size=batch_size, imbalance=imbalance,
                   resumed_from=str(checkpoint) if checkpoint else None, auto_batch_size=auto_record)
    if accelerator.is_main_process:
        write_json(config.out / "loss_history.json", history)
        outputs = {"history": "loss_history.json"}
        outputs.update({"model": "model/"} if config.mode != "qlora" else {})
        outputs.update({"adapter": "adapter/"} if config.mode in ("lora", "qlora") else {})
        manifest.write(outputs=outputs, summary=summary)
        from videotune.core.summaries import TrainSummary, write_summary

        write_summary(config.out, TrainSummary(
            trainable_params=params["trainable"], total_params=params["total"], n_train=len(train_items),
            runtime_s=summary["train_runtime_s"], epoch_times_s=summary["epoch_times_s"],
            final_train_loss=summary["final_train_loss"], final_val_loss=summary["final_val_loss"],
            peak_memory_bytes=summary["peak_memory_bytes"], model_size_bytes=summary["model_size_bytes"]))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return summary


def _smallest_over_processes(value: int) -> int:
    """The smallest `value` over the processes of a distributed launch (itself when there is one)."""
    import torch
    from accelerate import PartialState

    state = PartialState()  # joins the launch's process group (a no-op in a single process)
    if state.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=state.device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
    return int(tensor.item())


def _save_outputs(config: SftConfig, ref: Any, trainer: Any, processor: Any, model_dir: Path,
                  state_dict: dict | None) -> None:
    """adapter/ (LoRA, QLoRA) and model/ (a plain checkpoint: LoRA merged), each replaced atomically.

    `state_dict`: the gathered weights of a sharded run (ZeRO-3, FSDP), whose module parameters hold
    only this process's shard; a LoRA adapter is then merged into a freshly loaded base on this process."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if config.mode in ("lora", "qlora"):
        with replace_dir(config.out / "adapter") as adapter_tmp:
            model.save_pretrained(adapter_tmp, state_dict=state_dict)
    if config.mode == "qlora":  # a 4-bit base is not merged: the adapter is the output, on the base's path
        return
    if config.mode == "lora":  # downstream tools load one plain model directory
        if state_dict is None:
            model, state_dict = model.merge_and_unload(), None
        else:
            from peft import PeftModel

            base, _ = models.load(ref, dtype=config.dtype, trust_remote_code=config.trust_remote_code)
            model, state_dict = PeftModel.from_pretrained(base, config.out / "adapter").merge_and_unload(), None
    with replace_dir(model_dir) as model_tmp:
        model.save_pretrained(model_tmp, state_dict=state_dict)
        processor.save_pretrained(model_tmp)
        models.write_checkpoint_meta(model_tmp, models.CheckpointMeta(base_model=config.model, mode=config.mode))


def _summary(config: SftConfig, params: dict, history: dict, trainer: Any, result: Any, train_s: float,
             decode_s: float, model_dir: Path) -> dict:
    epochs = history["epochs"]
    epoch_s = sum(e["epoch_time_s"] for e in epochs)
    tokens = sum(e["tokens"] for e in epochs)
    target_tokens = sum(e["target_tokens"] for e in epochs)
    saved = model_dir if config.mode != "qlora" else config.out / "adapter"
    return {
        "parameters": params,
        "train_runtime_s": round(train_s, 3),
        "decode_s": round(decode_s, 3),  # frames decoded (or read from the frame cache) once, before epoch 1
        "epoch_times_s": [e["epoch_time_s"] for e in epochs],
        "data_times_s": [e["data_time_s"] for e in epochs],
        "tokens_per_s": round(tokens / epoch_s, 1) if epoch_s else None,
        "target_tokens_per_s": round(target_tokens / epoch_s, 1) if epoch_s else None,
        "global_step": trainer.state.global_step,
        "final_train_loss": result.training_loss,
        "final_val_loss": history["val"][-1]["loss"] if history["val"] else None,
        "model_size_bytes": models.dir_bytes(saved),
        "peak_memory_bytes": _peak_memory(),
        "peak_memory_kind": "cuda_max_allocated" if _cuda() else "process_max_rss",
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _peak_memory() -> int:
    """CUDA peak allocation where a GPU ran, else the process's peak resident set size (bytes)."""
    import resource

    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
