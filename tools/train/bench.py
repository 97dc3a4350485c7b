"""Training step time: vt-train's trainer vs a raw PyTorch loop vs TRL's stock SFTTrainer.

    python -m videotune.train.bench --examples results/bench/data/split/examples/train.jsonl \
        --data-root results/bench/data/raw --tiny-model results/bench/models/tiny --out results/bench/train

Same model (fresh from the same directory for every contender), same pre-decoded and pre-collated
batches in the same order, same AdamW learning rate. The raw loop is forward (the model's own
loss), backward, optimizer step (torch's fused AdamW, the Trainer's default), zero_grad and nothing else; raw-lean is the same loop with
vt-train's loss (LM head on the label positions only), so vt-train / raw-lean is what the trainer
itself adds. vt-train's trainer runs with the
arguments `vt-train sft` builds (sft.trainer_args: clipping, cosine schedule, logging every 5 steps,
no gradient checkpointing); TRL's stock SFTTrainer with TRL's defaults (gradient checkpointing on,
entropy and token accuracy at every step), in float32 like the others. A trainer's step is the
time between consecutive `on_step_end` callbacks, so it includes everything the trainer does per
step. The target (issue 4): vt-train / raw <= 1.15.

Data time: frames are decoded once per run through the frame cache, never per epoch. A 2-epoch
`run_sft` on the tiny model with an empty cache reports the decode time before epoch 1 and each
epoch's data (collation) time; a second decode reads the cache.
"""

from __future__ import annotations

import gc
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.console import Console

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, atomic_write_text, write_json
from videotune.core.manifest import RunManifest
from videotune.core.video import FrameCache

log = logging.getLogger("videotune.train")
console = Console()
app = make_app("Benchmark vt-train's step time against a raw PyTorch loop and TRL's stock SFTTrainer.")

RATIO_TARGET = 1.15
LR = 1e-3


class TrainBenchConfig(CommandConfig):
    """Step time of vt-train's trainer vs a raw PyTorch loop (and TRL's stock SFTTrainer) on the same
    batches, for the tiny model and optionally a random-weight real-size model; plus epoch-2 vs
    epoch-1 data time. Writes OUT/bench.json, OUT/bench.md and OUT/run.json."""

    examples: Path = Field(description="training examples JSONL (synthetic clips)")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    tiny_model: Path = Field(description="tiny model directory (vt-train tiny-model)")
    reference_model: Path | None = Field(
        None, description="random-weight real-size model directory (e.g. SmolVLM2-256M's architecture) [default: skip]")
    out: Path = Field(description="output folder")
    steps: int = Field(20, ge=2, description="timed steps per contender on the tiny model")
    warmup: int = Field(3, ge=1, description="untimed steps first (allocator, kernels, first log)")
    batch_size: int = Field(4, ge=1, description="examples per step")
    frames: int | None = Field(None, ge=1, description="frames per clip [default: as built into the examples]")
    reference_steps: int = Field(5, ge=2, description="timed steps on the reference model")
    reference_batch_size: int = Field(2, ge=1, description="examples per step on the reference model")
    reference_frame_size: int = Field(128, ge=16, description="frame side (px) fed to the reference model")
    reference_frames: int = Field(2, ge=1, description="frames per clip on the reference model")
    contenders: list[str] = Field(["raw", "raw-lean", "vt-train", "trl-default"],
                                  description="raw (the model's own loss), raw-lean (vt-train's loss), vt-train, trl-default")


def _batches(model_dir: Path, config: TrainBenchConfig, n: int, batch_size: int, frames: int | None,
             frame_size: int | None, cache: FrameCache) -> list[dict]:
    from videotune.train.data import VideoCollator, load_decoded

    ref = models.resolve(str(model_dir))
    model, processor = models.load(ref)
    if frame_size is not None:
        ref.family.set_frame_size(processor, model.config, frame_size)
    items = load_decoded(config.examples, config.data_root, ref.family.frame_size(processor), cache, frames)
    collator = VideoCollator(items, processor, ref.family)
    order = [i % len(items) for i in range(n * batch_size)]
    return [collator([{"index": i} for i in order[b * batch_size:(b + 1) * batch_size]]) for b in range(n)]


def _load(model_dir: Path):
    return models.load(models.resolve(str(model_dir)))


def _lean_loss(model, batch: dict):
    """vt-train's loss outside any trainer: the LM head on the label positions only, one cross-entropy."""
    import torch

    from videotune.train.trainer import sequence_loss

    inputs = dict(batch)
    labels = inputs.pop("labels")
    shifted = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = shifted != -100
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    if logits.dim() == 3:
        logits = logits[keep]
    return sequence_loss(logits, shifted[shifted != -100], keep.nonzero()[:, 0], labels.shape[0])


def raw_loop(model_dir: Path, batches: list[dict], warmup: int, lean: bool = False) -> list[float]:
    """Forward, backward, AdamW step, zero_grad: seconds per step after warmup.

    The loss is the model's own (every position through the LM head), or with `lean` vt-train's: the
    same arithmetic as vt-train's step, so vt-train / raw-lean is the trainer's own overhead."""
    import torch

    model, _ = _load(model_dir)
    model.train()
    # the Trainer's default optimizer (adamw_torch_fused): the same update arithmetic as vt-train's
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0, fused=True)
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        loss = _lean_loss(model, batch) if lean else model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    del model, optimizer
    gc.collect()
    return times


def trainer_loop(model_dir: Path, batches: list[dict], warmup: int, stock: bool) -> list[float]:
    """vt-train's trainer (or TRL's stock SFTTrainer) over the pre-collated batches, as vt-train sft sets it up."""
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from videotune.train.data import index_dataset
    from videotune.train.sft import SftConfig, trainer_args
    from videotune.train.trainer import VtSFTTrainer

    model, processor = _load(model_dir)
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as scratch:
        # the data plumbing both need: one dataset row per pre-collated batch, in order, no saving
        plumbing = dict(output_dir=scratch, max_steps=len(batches), per_device_train_batch_size=1, save_strategy="no",
                        eval_strategy="no", train_sampling_strategy="sequential", dataloader_pin_memory=False,
                        report_to="none", disable_tqdm=True)
        if stock:  # TRL's own defaults (gradient checkpointing on, entropy and accuracy per step) but float32
            args = SFTConfig(learning_rate=LR, lr_scheduler_type="cosine", logging_steps=5, bf16=False,
                             remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
                             max_length=None, dataloader_num_workers=0, **plumbing)
        else:  # exactly what vt-train sft passes, from its own function
            sft = SftConfig(model=str(model_dir), train_examples=Path(scratch) / "unused.jsonl", data_root=Path(scratch),
                            out=Path(scratch), lr=LR, scheduler="cosine", logging_steps=5)
            args = trainer_args(sft, 1, len(batches), False, **plumbing)
        # one dataset row per pre-collated batch: the collator hands back a copy of that batch
        cls = SFTTrainer if stock else VtSFTTrainer
        trainer = cls(model=model, args=args, train_dataset=index_dataset(range(len(batches))),
                      data_collator=lambda rows: dict(batches[rows[0]["index"]]), processing_class=processor,
                      callbacks=[Clock()])
        start = time.perf_counter()
        trainer.train()
    marks = [start, *ends]
    times = [b - a for a, b in zip(marks, marks[1:])][warmup:]
    del trainer, model
    gc.collect()
    return times


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_ms": round(1000 * statistics.median(times), 2), "mean_ms": round(1000 * statistics.fmean(times), 2),
            "min_ms": round(1000 * min(times), 2), "steps": len(times)}


def bench_model(name: str, model_dir: Path, config: TrainBenchConfig, steps: int, batch_size: int,
                frames: int | None, frame_size: int | None, cache: FrameCache) -> dict[str, Any]:
    import torch

    batches = _batches(model_dir, config, config.warmup + steps, batch_size, frames, frame_size, cache)
    model, _ = _load(model_dir)
    total = sum(p.numel() for p in model.parameters())
    del model
    row: dict[str, Any] = {"model": name, "parameters": total, "batch_size": batch_size,
                           "tokens_per_batch": int(batches[0]["attention_mask"].sum()), "threads": torch.get_num_threads()}
    for contender in config.contenders:
        log.info("%s: %s, %d steps", name, contender, config.warmup + steps)
        if contender in ("raw", "raw-lean"):
            times = raw_loop(model_dir, batches, config.warmup, lean=contender == "raw-lean")
        else:
            times = trainer_loop(model_dir, batches, config.warmup, stock=contender == "trl-default")
        row[contender] = _stats(times)
    if "raw" in row:
        for contender in ("vt-train", "trl-default"):
            if contender in row:
                row[f"{contender}_over_raw"] = round(row[contender]["median_ms"] / row["raw"]["median_ms"], 3)
    if "raw-lean" in row and "vt-train" in row:
        row["vt-train_over_raw-lean"] = round(row["vt-train"]["median_ms"] / row["raw-lean"]["median_ms"], 3)
    return row


def data_time(config: TrainBenchConfig, scratch: Path) -> dict[str, Any]:
    """A 2-epoch run_sft with an empty frame cache: decode before epoch 1, collation per epoch; then a warm decode."""
    from videotune.train.data import load_decoded
    from videotune.train.sft import SftConfig, run_sft

    cache_dir = scratch / "frame-cache"
    summary = run_sft(SftConfig(model=str(config.tiny_model), train_examples=config.examples, data_root=config.data_root,
                                out=scratch / "run", epochs=2, batch_size=config.batch_size, frames=config.frames,
                                frame_cache_dir=cache_dir, save_every_epochs=2, logging_steps=50))
    ref = models.resolve(str(config.tiny_model))
    _, processor = models.load(ref)
    started = time.monotonic()
    load_decoded(config.examples, config.data_root, ref.family.frame_size(processor), FrameCache(cache_dir), config.frames)
    warm = time.monotonic() - started
    epochs = summary["data_times_s"]
    return {"decode_cold_s": summary["decode_s"], "decode_warm_s": round(warm, 3),
            "epoch_data_time_s": epochs, "epoch_time_s": summary["epoch_times_s"],
            "epoch2_over_epoch1_data_time": round(epochs[1] / epochs[0], 3) if len(epochs) > 1 and epochs[0] else None,
            "epoch2_over_epoch1_data_time_with_decode": round(epochs[1] / (epochs[0] + summary["decode_s"]), 3)
            if len(epochs) > 1 else None}


def markdown(rows: list[dict], data: dict) -> str:
    lines = ["| model | parameters | batch | tokens/batch | raw loop (ms/step) | raw loop, vt's loss (ms/step) | "
             "vt-train (ms/step) | vt-train / raw | vt-train / raw, vt's loss | TRL stock (ms/step) | TRL stock / raw |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    def cell(r, key):
        return f"{r[key]['median_ms']:.1f}" if key in r else "-"

    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['batch_size']} | {r['tokens_per_batch']} | {cell(r, 'raw')} | "
                     f"{cell(r, 'raw-lean')} | {cell(r, 'vt-train')} | **{r.get('vt-train_over_raw', '-')}** | "
                     f"**{r.get('vt-train_over_raw-lean', '-')}** | {cell(r, 'trl-default')} | "
                     f"{r.get('trl-default_over_raw', '-')} |")
    lines += ["", f"Medians over the timed steps; target vt-train / raw <= {RATIO_TARGET}.", "",
              "| data time | value |", "|---|---|",
              f"| decode before epoch 1 (empty frame cache) | {data['decode_cold_s']:.3f} s |",
              f"| decode again (frame cache) | {data['decode_warm_s']:.3f} s |",
              f"| collation, epoch 1 / epoch 2 | {' / '.join(f'{s:.3f}' for s in data['epoch_data_time_s'])} s |",
              f"| epoch 2 / epoch 1 data time (epoch 1 with its decode) | "
              f"{data['epoch2_over_epoch1_data_time_with_decode']} |"]
    return "\n".join(lines) + "\n"


def bench_command(config: TrainBenchConfig) -> None:
    unknown = set(config.contenders) - {"raw", "raw-lean", "vt-train", "trl-default"}
    if unknown:
        raise InputError(f"--contenders: unknown {sorted(unknown)}; choose from raw, raw-lean, vt-train, trl-default")
    manifest = RunManifest("train", "bench", config.model_dump(mode="json"), config.out)
    manifest.add_input(config.examples)
    config.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.out) as scratch:
        cache = FrameCache(Path(scratch) / "bench-cache")
        rows = [bench_model("tiny", config.tiny_model, config, config.steps, config.batch_size, config.frames, None,
                            cache)]
        if config.reference_model is not None:
            rows.append(bench_model(config.reference_model.name, config.reference_model, config,
                                    config.reference_steps, config.reference_batch_size, config.reference_frames,
                                    config.reference_frame_size, cache))
        data = data_time(config, Path(scratch))
    result = {"rows": rows, "data_time": data, "ratio_target": RATIO_TARGET}
    write_json(config.out / "bench.json", result)
    atomic_write_text(config.out / "bench.md", markdown(rows, data))
    manifest.write(outputs={"bench": "bench.json", "table": "bench.md"}, summary=result)
    console.print(markdown(rows, data))
    for r in rows:
        for key in ("vt-train_over_raw", "vt-train_over_raw-lean"):
            ratio = r.get(key)
            if ratio is not None and ratio > RATIO_TARGET:
                console.print(f"[yellow]missed[/yellow] {r['model']}: {key} = {ratio} > {RATIO_TARGET}")


add_command(app, "bench", TrainBenchConfig, bench_command, example=(
    "python -m videotune.train.bench --examples results/bench/data/split/examples/train.jsonl "
    "--data-root results/bench/data/raw --tiny-model results/bench/models/tiny --out results/bench/train"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
