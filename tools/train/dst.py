"""Multi-task training of the streaming DST assistant on TRL's SFTTrainer.

One training row is a window of up to `max_frames` consecutive frames of one video, laid out as
core.stream describes (system prompt with the DST state at the window's start, then per frame
its image tokens, the user's words, and the targets). Four losses, each with a weight:

- speak decision and DST-update decision: sigmoid focal loss (torchvision.ops.sigmoid_focal_loss,
  alpha and gamma configurable) of two linear heads on the hidden state at each frame's decision
  position, averaged over the frames kept (negative frames can be subsampled: `negative_keep`);
- DST update text and response text: token cross-entropy of the language model on the update
  JSON / the response (each averaged over its own tokens), teacher-forced.

The four losses and the share of positive frames per batch (class balance) are logged apart.
After training, the decision thresholds are tuned on the validation windows (the F1-best
threshold of each head, teacher-forced), and saved with the heads beside the model.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from videotune.core import models
from videotune.core import stream as fmt
from videotune.core.checks import check_media_paths
from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, read_jsonl, replace_dir, write_json
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import Example, StreamExample
from videotune.core.video import FrameCache, SamplingSpec, default_cache_dir

log = logging.getLogger("videotune.train")
IGNORE = -100
LOSS_NAMES = ("loss_speak", "loss_dst_update", "loss_dst_text", "loss_response")


class DstTrainConfig(CommandConfig):
    """Train the streaming DST assistant: speak and DST-update heads (focal loss) plus the DST-update and
    response text (LM loss), on stream examples from `vt-prep dst`. Full or LoRA.

    Writes OUT/model/ (model, processor, heads.safetensors, dst_heads.json), OUT/loss_history.json, OUT/run.json.
    """

    model: str = Field(description="registry name (smolvlm2-256m), hub id, or local model directory")
    train_examples: Path = Field(description="stream examples JSONL (vt-prep dst's stream/train.jsonl)")
    val_examples: Path | None = Field(None, description="validation stream examples (loss per epoch, threshold tuning)")
    data_root: Path = Field(description="folder the examples' video paths are relative to")
    out: Path = Field(description="output folder: model/, loss_history.json, run.json")
    mode: Literal["full", "lora"] = Field("full", description="full fine-tuning or LoRA adapters (PEFT); heads always train")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int | None = Field(None, ge=1, description="LoRA alpha [default: 2 x rank]")
    epochs: float = Field(10.0, gt=0, description="training epochs")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    batch_size: int = Field(2, ge=1, description="windows per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = Field(
        "cosine", description="learning-rate schedule")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="share of steps spent warming up")
    max_frames: int = Field(96, ge=1, description="frames per training window (longer videos are cut into windows)")
    focal_alpha: float = Field(
        0.75, ge=-1, le=1, description="focal loss alpha: weight of the positive class, 1 - alpha of the negative (-1: none)")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss gamma: down-weights easy frames (0: weighted BCE)")
    w_speak: float = Field(1.0, ge=0, description="weight of the speak-decision loss")
    w_dst_update: float = Field(1.0, ge=0, description="weight of the DST-update-decision loss")
    w_dst_text: float = Field(0.5, ge=0, description="weight of the DST-update text LM loss")
    w_response: float = Field(0.5, ge=0, description="weight of the response LM loss")
    negative_keep: float = Field(
        1.0, gt=0, le=1, description="share of negative frames (neither speak nor update) kept in the decision losses")
    tune_thresholds: bool = Field(True, description="pick each head's F1-best threshold on --val-examples (else 0.5)")
    logging_steps: int = Field(5, ge=1, description="log the losses every N steps")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    frame_cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    seed: int = Field(0, description="seed of initialisation, data order, negative subsampling")

    @model_validator(mode="after")
    def _alpha(self) -> DstTrainConfig:
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_r
        return self


# --------------------------------------------------------------------------- data


@dataclass
class Video:
    example: StreamExample
    frames: np.ndarray  # uint8 [N, S, S, 3] at the model's input size


def corpus_texts(path: Path) -> list[str]:
    """Texts a tokenizer should learn from an examples file: conversation messages, or a stream
    example's system prompt, DST updates and states, responses and user turns."""
    with open(path, encoding="utf-8") as fh:
        first = next((line for line in fh if line.strip()), "")
    try:
        is_stream = "frames" in json.loads(first) and "nodes" in json.loads(first)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line 1: malformed JSON ({err.msg})") from err
    if not is_stream:
        return [m.content for e in read_jsonl(path, Example) for m in e.messages]
    texts = []
    for e in read_jsonl(path, StreamExample):
        nodes = [(n.id, n.name) for n in e.nodes]
        texts.append(fmt.system_text(e.system, e.goal, nodes, e.frames[0].dst))
        for f in e.frames:
            texts.extend(t for t in (f.response, f.user) if t)
            if f.dst_update:
                texts.append(fmt.DST_PREFIX + " " + fmt.state_json(f.dst_delta))
    texts += [fmt.RESPONSE_PREFIX, fmt.USER_PREFIX]
    return texts


def load_videos(path: Path, data_root: Path, frame_size: int, cache: FrameCache) -> list[Video]:
    """Stream examples with their frames decoded once at the examples' fps (through the frame cache)."""
    examples = read_jsonl(path, StreamExample)
    videos = []
    with Progress(f"decode {path.name}", len(examples)) as progress:
        for example in examples:
            sampled = cache.get_or_sample(data_root / example.media,
                                          SamplingSpec(n_frames=None, target_fps=example.fps, size=frame_size))
            times = [f.t_s for f in example.frames]
            if len(sampled.timestamps_s) != len(times) or not np.allclose(sampled.timestamps_s, times, atol=1e-3):
                raise InputError(
                    f"{path}: example {example.id!r}: {data_root / example.media} gives {len(sampled.timestamps_s)} frames "
                    f"at {example.fps} fps, the example has {len(times)} (was the video replaced after vt-prep dst?)")
            videos.append(Video(example, sampled.frames))
            progress.advance()
    return videos


def windows(videos: list[Video], max_frames: int) -> list[tuple[int, int, int]]:
    """(video index, first frame, end frame) of consecutive windows of at most max_frames frames."""
    return [(v, start, min(start + max_frames, len(video.frames)))
            for v, video in enumerate(videos) for start in range(0, len(video.frames), max_frames)]


def build_window(example: StreamExample, start: int, end: int, tokenizer: Any, lay: fmt.Layout) -> dict[str, Any]:
    """Token ids, the two LM label rows, and per frame its decision position and targets."""
    state = example.frames[start - 1].dst if start else {n.id: "not_started" for n in example.nodes}
    nodes = [(n.id, n.name) for n in example.nodes]
    ids = fmt.encode(tokenizer, fmt.system_text(example.system, example.goal, nodes, state))
    dst_labels = [IGNORE] * len(ids)
    resp_labels = [IGNORE] * len(ids)
    positions, speak, update = [], [], []

    def add(piece: list[int], dst: bool = False, resp: bool = False) -> None:
        ids.extend(piece)
        dst_labels.extend(piece if dst else [IGNORE] * len(piece))
        resp_labels.extend(piece if resp else [IGNORE] * len(piece))

    for frame in example.frames[start:end]:
        add(lay.frame)
        if frame.user:
            add(fmt.user_ids(tokenizer, frame.user, lay))
        positions.append(len(ids) - 1)
        speak.append(frame.speak)
        update.append(frame.dst_update)
        if frame.dst_update:
            add(lay.dst_prefix)
            add(fmt.target_ids(tokenizer, fmt.state_json(frame.dst_delta), lay), dst=True)
        if frame.speak:
            add(lay.response_prefix)
            add(fmt.target_ids(tokenizer, frame.response, lay), resp=True)
    return {"input_ids": ids, "dst_labels": dst_labels, "resp_labels": resp_labels, "positions": positions,
            "speak": speak, "update": update}


class StreamCollator:
    """Indices of windows -> padded model inputs plus the decision positions, targets and head mask."""

    def __init__(self, videos: list[Video], spans: list[tuple[int, int, int]], processor: Any,
                 negative_keep: float = 1.0, seed: int = 0):
        self.videos = videos
        self.spans = spans
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.lay = fmt.layout(processor)
        self.negative_keep = negative_keep
        self.rng = np.random.default_rng(seed)
        self._built: dict[int, dict[str, Any]] = {}

    def window(self, index: int) -> dict[str, Any]:
        if index not in self._built:  # tokenized once; the collator sees every window every epoch
            v, start, end = self.spans[index]
            self._built[index] = build_window(self.videos[v].example, start, end, self.tokenizer, self.lay)
        return self._built[index]

    def __call__(self, rows: list[dict[str, int]]) -> dict[str, Any]:
        import torch

        items = [self.window(r["index"]) for r in rows]
        pixels = []
        for r in rows:
            v, start, end = self.spans[r["index"]]
            pixels.append(fmt.pixel_values(self.processor, self.videos[v].frames[start:end]))
        n_tokens = max(len(i["input_ids"]) for i in items)
        n_frames = max(len(i["positions"]) for i in items)
        batch = len(items)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((batch, n_tokens), pad, dtype=torch.long)
        attention = torch.zeros((batch, n_tokens), dtype=torch.long)
        dst_labels = torch.full((batch, n_tokens), IGNORE, dtype=torch.long)
        resp_labels = torch.full((batch, n_tokens), IGNORE, dtype=torch.long)
        # padding frames are all zeros: SmolVLM's vision tower skips them
        pixel_values = torch.zeros((batch, n_frames, *pixels[0].shape[1:]), dtype=pixels[0].dtype)
        positions = torch.zeros((batch, n_frames), dtype=torch.long)
        speak = torch.zeros((batch, n_frames))
        update = torch.zeros((batch, n_frames))
        head_mask = torch.zeros((batch, n_frames))
        for b, item in enumerate(items):
            n, f = len(item["input_ids"]), len(item["positions"])
            input_ids[b, :n] = torch.tensor(item["input_ids"])
            attention[b, :n] = 1
            dst_labels[b, :n] = torch.tensor(item["dst_labels"])
            resp_labels[b, :n] = torch.tensor(item["resp_labels"])
            pixel_values[b, :f] = pixels[b]
            positions[b, :f] = torch.tensor(item["positions"])
            speak[b, :f] = torch.tensor(item["speak"], dtype=torch.float)
            update[b, :f] = torch.tensor(item["update"], dtype=torch.float)
            positive = speak[b, :f].bool() | update[b, :f].bool()
            keep = positive | torch.from_numpy(self.rng.random(f) < self.negative_keep)
            head_mask[b, :f] = keep.float()
        return {"input_ids": input_ids, "attention_mask": attention, "pixel_values": pixel_values,
                "dst_labels": dst_labels, "resp_labels": resp_labels, "decision_positions": positions,
                "speak_targets": speak, "update_targets": update, "head_mask": head_mask}


# --------------------------------------------------------------------------- losses


def focal_loss(logits, targets, mask, alpha: float, gamma: float):
    """torchvision's sigmoid focal loss, averaged over the frames the mask keeps (0 when none)."""
    from torchvision.ops import sigmoid_focal_loss

    per_frame = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")
    kept = mask.sum()
    return (per_frame * mask).sum() / kept.clamp(min=1.0)


def lm_loss(logits, labels):
    """Mean token cross-entropy over the labelled tokens (0 when there are none)."""
    import torch

    if labels.numel() == 0:
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits.float(), labels, reduction="mean")


def dst_losses(model: Any, heads: Any, inputs: dict[str, Any], config: DstTrainConfig) -> dict[str, Any]:
    """The four losses, their weighted sum (`loss`), and the batch's class balance."""
    import torch

    base = fmt.base_model(model)
    out = base.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                     pixel_values=inputs["pixel_values"], use_cache=False)
    hidden = out.last_hidden_state  # [B, T, H], after the final norm
    # decisions: the hidden state at each frame's decision position
    index = inputs["decision_positions"].unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    decision = torch.gather(hidden, 1, index)
    speak_logit, update_logit = heads(decision.float())  # the heads stay float32 whatever the model's dtype
    mask = inputs["head_mask"]
    speak = focal_loss(speak_logit, inputs["speak_targets"], mask, config.focal_alpha, config.focal_gamma)
    update = focal_loss(update_logit, inputs["update_targets"], mask, config.focal_alpha, config.focal_gamma)
    # text: position t predicts token t + 1; only labelled positions go through the LM head
    shifted = hidden[:, :-1]
    dst_labels, resp_labels = inputs["dst_labels"][:, 1:], inputs["resp_labels"][:, 1:]
    dst_at, resp_at = dst_labels != IGNORE, resp_labels != IGNORE
    dst_text = lm_loss(base.lm_head(shifted[dst_at]), dst_labels[dst_at])
    response = lm_loss(base.lm_head(shifted[resp_at]), resp_labels[resp_at])
    total = (config.w_speak * speak + config.w_dst_update * update + config.w_dst_text * dst_text
             + config.w_response * response)
    kept = mask.sum().clamp(min=1.0)
    return {
        "loss": total, "loss_speak": speak, "loss_dst_update": update, "loss_dst_text": dst_text,
        "loss_response": response,
        "speak_positive_share": (inputs["speak_targets"] * mask).sum() / kept,
        "dst_update_positive_share": (inputs["update_targets"] * mask).sum() / kept,
        "frames_per_batch": mask.sum(),
        "speak_logits": speak_logit.detach(), "update_logits": update_logit.detach(),
    }


def make_trainer_class():
    """DstTrainer: an SFTTrainer whose loss is the four-part DST loss (built lazily: TRL imports torch)."""
    import torch
    from trl import SFTTrainer

    class DstTrainer(SFTTrainer):
        def __init__(self, *args, dst_config: DstTrainConfig, heads: Any, **kwargs):
            self.dst_config = dst_config
            self.heads = heads
            self._parts: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
            super().__init__(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            parts = dst_losses(model, self.heads, inputs, self.dst_config)
            mode = "train" if model.training else "eval"
            for key in (*LOSS_NAMES, "speak_positive_share", "dst_update_positive_share", "frames_per_batch"):
                self._parts[mode][key].append(float(parts[key].detach()))
            return (parts["loss"], parts) if return_outputs else parts["loss"]

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

        def log(self, logs, start_time=None):
            mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            prefix = "eval_" if mode == "eval" else ""
            for key, values in self._parts[mode].items():
                if values:
                    logs[prefix + key] = round(sum(values) / len(values), 6)
            self._parts[mode].clear()
            super().log(logs, start_time)

    return DstTrainer


# --------------------------------------------------------------------------- thresholds


def best_threshold(probs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """The threshold in 0.05..0.95 with the best F1 of `probs > t` (the first of ties), and that F1."""
    best = (0.5, -1.0)
    for t in np.round(np.arange(0.05, 0.951, 0.05), 2):
        pred = probs > t
        tp = float((pred & targets).sum())
        f1 = 2 * tp / max(1.0, float(pred.sum() + targets.sum()))
        if f1 > best[1]:
            best = (float(t), f1)
    return best


def decision_probs(model: Any, heads: Any, collator: StreamCollator, indices: list[int], config: DstTrainConfig):
    """Teacher-forced head probabilities and targets over windows: (speak p, speak y, update p, update y)."""
    import torch

    out: dict[str, list[np.ndarray]] = defaultdict(list)
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(indices), config.batch_size):
            batch = collator([{"index": i} for i in indices[start:start + config.batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            parts = dst_losses(model, heads, batch, config)
            valid = batch["decision_positions"] > 0  # real frames (padding frames sit at position 0)
            for name, logits, targets in (("speak", parts["speak_logits"], batch["speak_targets"]),
                                          ("update", parts["update_logits"], batch["update_targets"])):
                out[name + "_p"].append(torch.sigmoid(logits)[valid].float().cpu().numpy())
                out[name + "_y"].append(targets[valid].bool().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


# --------------------------------------------------------------------------- run


def run_dst_train(config: DstTrainConfig) -> dict[str, Any]:
    import torch
    from trl import SFTConfig as TrlSFTConfig

    from videotune.train.callbacks import TrainProgress
    from videotune.train.data import index_dataset

    for path in (config.train_examples, config.val_examples):
        if path is not None:
            check_media_paths(path, config.data_root, StreamExample)
    seed_everything(config.seed)
    manifest = RunManifest("train", "dst", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.train_examples)
    if config.val_examples:
        manifest.add_input(config.val_examples)
    ref = models.resolve(config.model)
    if ref.is_local:
        manifest.add_input(ref.source, name="base_model")
    model, processor = models.load(ref, dtype=config.dtype)
    cache = FrameCache(config.frame_cache_dir or default_cache_dir())
    size = ref.family.frame_size(processor)
    train_videos = load_videos(config.train_examples, config.data_root, size, cache)
    val_videos = load_videos(config.val_examples, config.data_root, size, cache) if config.val_examples else []
    fps = {v.example.fps for v in train_videos + val_videos}
    if len(fps) != 1:
        raise InputError(f"{config.train_examples}: the examples mix frame rates {sorted(fps)}; build them with one --fps")
    spans = windows(train_videos, config.max_frames)
    val_spans = windows(val_videos, config.max_frames)
    n_train = len(spans)
    videos = train_videos + val_videos
    offset = len(train_videos)
    spans = spans + [(v + offset, s, e) for v, s, e in val_spans]

    if config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                          target_modules=rf".*text_model.*\.({'|'.join(ref.family.lora_target_modules)})$",
                          task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    hidden = int(fmt.base_model(model).config.text_config.hidden_size)
    heads = fmt.make_heads(hidden).to(next(model.parameters()).device)
    # The heads live inside the model while training, so the optimizer, clipping and
    # checkpoints of the Trainer cover them; they are taken out again before saving.
    fmt.base_model(model).add_module("dst_heads", heads)
    for p in heads.parameters():
        p.requires_grad_(True)
    total, trainable = models.count_parameters(model)
    log.info("parameters: %d total, %d trainable (%.2f%%)", total, trainable, 100 * trainable / total)

    collator = StreamCollator(videos, spans, processor, config.negative_keep, config.seed)
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size) // config.grad_accum)
    args = TrlSFTConfig(
        output_dir=str(config.out / "checkpoints"),
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.lr,
        lr_scheduler_type=config.scheduler, warmup_steps=config.warmup_ratio, max_grad_norm=1.0,
        logging_steps=min(config.logging_steps, steps_per_epoch),
        eval_strategy="epoch" if val_spans else "no", save_strategy="no",
        seed=config.seed, data_seed=config.seed,
        bf16=config.dtype == "bfloat16", fp16=config.dtype == "float16",
        report_to="none", remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None, dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = make_trainer_class()(
        model=model, args=args,
        train_dataset=index_dataset(range(n_train)),
        eval_dataset=index_dataset(range(n_train, len(spans))) if val_spans else None,
        data_collator=collator, processing_class=processor, dst_config=config, heads=heads,
    )
    TrainProgress.install(trainer)
    started = time.monotonic()
    result = trainer.train()
    train_s = time.monotonic() - started

    trained = trainer.model
    trained.eval()
    thresholds = {"speak": 0.5, "dst_update": 0.5}
    tuned: dict[str, Any] = {}
    if config.tune_thresholds and val_spans:
        probs = decision_probs(trained, heads, collator, list(range(n_train, len(spans))), config)
        for name, key in (("speak", "speak"), ("dst_update", "update")):
            threshold, f1 = best_threshold(probs[key + "_p"], probs[key + "_y"])
            thresholds[name] = threshold
            tuned[name] = {"threshold": threshold, "val_f1_teacher_forced": round(f1, 4),
                           "val_positive_frames": int(probs[key + "_y"].sum()), "val_frames": len(probs[key + "_y"])}

    del fmt.base_model(trained)._modules["dst_heads"]
    final = trained.merge_and_unload() if config.mode == "lora" else trained
    model_dir = config.out / "model"
    with replace_dir(model_dir) as tmp:
        final.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        fmt.save_heads(tmp, heads, fmt.HeadsConfig(hidden_size=hidden, speak_threshold=thresholds["speak"],
                                                    dst_threshold=thresholds["dst_update"], fps=fps.pop(),
                                                    max_frames=config.max_frames))
        models.write_checkpoint_meta(tmp, models.CheckpointMeta(base_model=config.model, mode=config.mode, task="stream"))
    history = _history(trainer.state.log_history)
    write_json(config.out / "loss_history.json", history)
    summary = {
        "parameters": {"total": total, "trainable": trainable},
        "train_runtime_s": round(train_s, 3),
        "global_step": trainer.state.global_step,
        "final_train_loss": result.training_loss,
        "final_losses": {k: history["train"][-1].get(k) for k in LOSS_NAMES} if history["train"] else {},
        "thresholds": thresholds,
        "threshold_tuning": tuned,
        "n_train_windows": n_train,
        "n_val_windows": len(val_spans),
        "train_positive_share": _shares(train_videos),
    }
    manifest.write(outputs={"model": "model/", "history": "loss_history.json"}, summary=summary)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return summary


def _shares(videos: list[Video]) -> dict[str, float]:
    frames = [f for v in videos for f in v.example.frames]
    return {"speak": round(sum(f.speak for f in frames) / len(frames), 4),
            "dst_update": round(sum(f.dst_update for f in frames) / len(frames), 4)}


def _history(log_history: list[dict]) -> dict[str, list[dict]]:
    """Per logged step: the total loss and the four parts (train), and the same after each epoch (val)."""
    keep = ("loss", *LOSS_NAMES, "speak_positive_share", "dst_update_positive_share", "frames_per_batch")
    train = [{"step": h["step"], "epoch": h.get("epoch"), **{k: h[k] for k in keep if k in h}}
             for h in log_history if "loss" in h]
    val = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["eval_loss"],
            **{k: h["eval_" + k] for k in LOSS_NAMES if "eval_" + k in h}}
           for h in log_history if "eval_loss" in h]
    return {"train": train, "val": val}
