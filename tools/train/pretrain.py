"""Vision pretraining on 2D keypoints: the vision encoder and projector learn where the body's joints are.

Real video-language models start from a pretrained vision tower; a random-init tiny tower trained only
through the language-model loss barely learns body geometry. Here the encoder and projector regress
each frame's 2D joints (keypoint sidecars, core/keypoints.py) through a linear read-out of the
projector's tokens, which is thrown away afterwards. The tokens the language model later reads then
carry the joints linearly. No label of any kind enters: the joints are the same whether or not a
repetition is faulty, so what a fine-tune learns about form errors it learns itself.

Reads top to bottom: setup (clips, keypoints, model), run (epochs of random frame subsets), save (the
whole model with its new vision weights, the history, run.json).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from videotune.core import models
from videotune.core.checks import media_path
from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, read_jsonl, replace_dir, write_json
from videotune.core.keypoints import keypoints_path, read_keypoints
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import Example
from videotune.core.video import FrameCache, SamplingSpec, default_cache_dir, probe

log = logging.getLogger("videotune.train")


class PretrainVisionConfig(CommandConfig):
    """Pretrain a model's vision encoder and projector to locate 2D keypoints in frames (no labels used)."""

    model: str = Field(description="registry name, hub id, or local model directory to start from")
    train_examples: Path = Field(description="examples JSONL whose clips (media only, never answers) train the tower")
    val_examples: Path | None = Field(None, description="examples JSONL whose clips measure the keypoint error per epoch")
    data_root: Path = Field(description="folder the examples' media and their <clip>.keypoints.npz sidecars are under")
    out: Path = Field(description="output folder: model/ (the whole model, new vision weights), pretrain_history.json, run.json")
    epochs: int = Field(20, ge=1, description="passes over the training clips")
    batch_size: int = Field(16, ge=1, description="clips per step")
    frames: int = Field(8, ge=1, description="frames drawn at random from each clip at each step (sorted in time)")
    lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW), cosine decay after a linear warmup")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    frame_cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint")
    seed: int = Field(0, description="seed of the read-out's initialisation and the frame draws")


@dataclass
class PoseClip:
    media: str
    frames: np.ndarray  # uint8 [N, H, W, 3]: every frame of the clip at the model's frame size
    times_s: list[float]
    duration_s: float
    points: np.ndarray  # float32 [N, joints, 2 or 5]: 2D fractions of the frame side, then 3D where given


def load_pose_clips(examples_path: Path, data_root: Path, frame_size: int, cache: FrameCache) -> list[PoseClip]:
    """Every distinct clip the examples name, all its frames decoded once, with its keypoints per frame."""
    examples = read_jsonl(examples_path, Example)
    if not examples:
        raise InputError(f"{examples_path}: no examples (the file is empty)")
    seen: dict[str, int] = {}
    clips: list[PoseClip] = []
    problems: list[str] = []
    names: tuple[tuple[str, ...], bool] | None = None  # (joint names, no 3D points) of the first clip
    with Progress(f"decode {examples_path.name}", len(examples)) as progress:
        for lineno, example in enumerate(examples, start=1):
            progress.advance()
            if example.media in seen:
                continue
            seen[example.media] = lineno
            where = f"line {lineno} (id {example.id!r})"
            try:
                path = media_path(data_root, example.media)
                keypoints = read_keypoints(data_root / keypoints_path(example.media))
                if names is not None and (keypoints.names, keypoints.points3d is None) != names:
                    raise InputError(f"its keypoints name other joints, or have 3D points where the first clip's have "
                                     f"none or the reverse, than the first clip's ({names[0]})")
                names = (keypoints.names, keypoints.points3d is None)
                if problems:
                    continue  # the rest is only checked once a problem is found: nothing is decoded for nothing
                info = probe(path)
                # every frame at the model's frame size: one decode, reused by every epoch
                sampled = cache.get_or_sample(path, SamplingSpec(n_frames=None, target_fps=info.fps, size=frame_size))
                points = keypoints.at(sampled.timestamps_s, tolerance_s=0.5 / info.fps)
            except (InputError, ValueError) as err:
                problems.append(f"{where}: {err}")
                continue
            clips.append(PoseClip(example.media, sampled.frames, list(sampled.timestamps_s), sampled.duration_s, points))
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(f"{examples_path}: {len(problems)} clips cannot be used for keypoint pretraining: "
                         f"{'; '.join(problems[:3])}{more}")
    return clips


def _temporal_patch(model: Any) -> int:
    """Frames that share one set of vision tokens (Qwen-VL's temporal patches: 2; per-frame towers: 1)."""
    vision = getattr(model.config, "vision_config", None)
    return int(getattr(vision, "temporal_patch_size", 1) or 1)


def clip_features(model: Any, batch: dict[str, Any]) -> list[Any]:
    """The projector's output tokens for each clip of an encoded batch: one (tokens, width) tensor per clip."""
    inner = model.model
    if "pixel_values_videos" in batch:
        out = inner.get_video_features(pixel_values_videos=batch["pixel_values_videos"],
                                       video_grid_thw=batch.get("video_grid_thw"))
    else:
        out = inner.get_image_features(pixel_values=batch["pixel_values"],
                                       pixel_attention_mask=batch.get("pixel_attention_mask"))
    features = out.pooler_output if hasattr(out, "pooler_output") else out
    return list(features)


class KeypointReadout:
    """A linear map from each temporal group's tokens to its frames' joints (trained, then discarded)."""

    def __init__(self, tokens_per_group: int, width: int, frames_per_group: int, joints: int, values: int):
        import torch

        self.frames_per_group = frames_per_group
        self.joints = joints
        self.values = values
        self.linear = torch.nn.Linear(tokens_per_group * width, frames_per_group * joints * values)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def __call__(self, features: list[Any], n_frames: int) -> Any:
        import torch

        groups = n_frames // self.frames_per_group
        rows = [f.reshape(groups, -1) for f in features]
        out = self.linear(torch.cat(rows))
        return out.reshape(len(features), n_frames, self.joints, self.values)


def _draw(clip: PoseClip, k: int, rng: np.random.Generator) -> np.ndarray:
    """k frame positions in time order (with repeats only when the clip has fewer than k frames)."""
    n = len(clip.frames)
    return np.sort(rng.choice(n, size=k, replace=n < k))


def _encode(processor: Any, family: Any, clips: list[PoseClip], positions: list[np.ndarray]) -> dict[str, Any]:
    """The vision inputs of a batch of clips, as the family hands frames to its processor in training: the
    video processor alone (no prompt: no text reaches the tower)."""
    inputs = family.video_inputs([c.frames[p] for c, p in zip(clips, positions)],
                                 [[c.times_s[i] for i in p] for c, p in zip(clips, positions)],
                                 [c.duration_s for c in clips])
    return dict(processor.video_processor(**inputs, return_tensors="pt"))


def keypoint_error_px(model: Any, processor: Any, family: Any, readout: KeypointReadout, clips: list[PoseClip],
                      frames: int, frame_size: int, batch_size: int) -> float:
    """Mean distance (px at the model's frame size) between predicted and true joints, on fixed frames: each
    clip's `frames` frames spread uniformly."""
    import torch

    errors = []
    with torch.no_grad():
        for start in range(0, len(clips), batch_size):
            chunk = clips[start:start + batch_size]
            positions = [np.linspace(0, len(c.frames) - 1, frames).round().astype(int) for c in chunk]
            batch = _encode(processor, family, chunk, positions)
            predicted = readout(clip_features(model, batch), frames)
            target = torch.from_numpy(np.stack([c.points[p] for c, p in zip(chunk, positions)]))
            errors.append(torch.linalg.vector_norm(predicted[..., :2] - target[..., :2], dim=-1).flatten() * frame_size)
    return float(torch.cat(errors).mean())


def pretrain(model: Any, processor: Any, family: Any, train: list[PoseClip], val: list[PoseClip],
             trained: list[Any], config: PretrainVisionConfig) -> tuple[KeypointReadout, list[dict[str, float]]]:
    """Train `trained` (the tower's parameters) and a fresh read-out to regress the clips' keypoints; returns
    the read-out and one history record per epoch."""
    import torch

    frame_size = family.frame_size(processor)
    frames_per_group = _temporal_patch(model)
    if config.frames % frames_per_group:
        raise InputError(f"--frames {config.frames}: this model takes frames in groups of {frames_per_group}")
    probe = _encode(processor, family, train[:1], [_draw(train[0], config.frames, np.random.default_rng(0))])
    with torch.no_grad():
        tokens, width = clip_features(model, probe)[0].shape
    groups = config.frames // frames_per_group
    readout = KeypointReadout(tokens // groups, width, frames_per_group, *train[0].points.shape[1:])
    optimizer = torch.optim.AdamW(trained + list(readout.linear.parameters()), lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, round(config.warmup_ratio * total))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)

    # ---- run
    rng = np.random.default_rng(config.seed)
    history: list[dict[str, float]] = []
    model.train()
    with Progress("pretrain vision", total) as progress:
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(train))
            losses = []
            for start in range(0, len(order), config.batch_size):
                chunk = [train[i] for i in order[start:start + config.batch_size]]
                positions = [_draw(c, config.frames, rng) for c in chunk]
                batch = _encode(processor, family, chunk, positions)
                predicted = readout(clip_features(model, batch), config.frames)
                target = torch.from_numpy(np.stack([c.points[p] for c, p in zip(chunk, positions)]))
                loss = torch.nn.functional.mse_loss(predicted, target)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                progress.advance()
                progress.set_status(f"loss {losses[-1]:.5f}")
            record = {"epoch": epoch, "train_mse": float(np.mean(losses))}
            if val:
                model.eval()
                record["val_keypoint_error_px"] = keypoint_error_px(
                    model, processor, family, readout, val, config.frames, frame_size, config.batch_size)
                model.train()
            history.append(record)
            log.info("epoch %d: %s", epoch, record)
    return readout, history


def run_pretrain_vision(config: PretrainVisionConfig) -> dict[str, Any]:
    # ---- setup
    seed_everything(config.seed)
    manifest = RunManifest("train", "pretrain-vision", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.train_examples)
    if config.val_examples:
        manifest.add_input(config.val_examples)
    ref = models.resolve(config.model)
    processor = ref.family.load_processor(ref.source, trust_remote_code=config.trust_remote_code)
    frame_size = ref.family.frame_size(processor)
    cache = FrameCache(config.frame_cache_dir or default_cache_dir())
    # clips and keypoints are read (and refused) before the model loads
    train = load_pose_clips(config.train_examples, config.data_root, frame_size, cache)
    val = load_pose_clips(config.val_examples, config.data_root, frame_size, cache) if config.val_examples else []
    model, processor = models.load(ref, trust_remote_code=config.trust_remote_code)
    family = ref.family
    paths = (family.vision_module, *family.extra_vision_modules, family.projector_module)
    # a projector inside the vision module (Qwen's merger) is trained with it already
    tower = [model.get_submodule(p) for p in paths
             if p and not any(p.startswith(other + ".") for other in paths if other and other != p)]
    for param in model.parameters():
        param.requires_grad_(False)
    trained = [p for module in tower for p in module.parameters()]
    for param in trained:
        param.requires_grad_(True)

    history_started = time.monotonic()
    _, history = pretrain(model, processor, ref.family, train, val, trained, config)
    model.eval()
    train_s = time.monotonic() - history_started

    # ---- save
    with replace_dir(config.out / "model") as model_tmp:
        model.save_pretrained(model_tmp)
        processor.save_pretrained(model_tmp)
        models.write_checkpoint_meta(model_tmp, models.CheckpointMeta(base_model=config.model))
    write_json(config.out / "pretrain_history.json", history)
    summary = {
        "clips": {"train": len(train), "val": len(val)},
        "joints": int(train[0].points.shape[1]),
        "steps": math.ceil(len(train) / config.batch_size) * config.epochs,
        "train_runtime_s": round(train_s, 2),
        "trained_parameters": sum(p.numel() for p in trained),
        "final": history[-1],
    }
    manifest.write(outputs={"model": "model", "history": "pretrain_history.json"}, summary=summary)
    return summary
