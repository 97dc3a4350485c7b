"""Batched greedy generation over an examples file, resumable, with a latency breakdown."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from videotune.core import models
from videotune.core.cli import CommandConfig
from videotune.core.image import is_image_path, load_image
from videotune.core.io import InputError, ResumableJsonl, read_jsonl
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import Example, Prediction
from videotune.core.video import (
    FrameCache,
    check_frames_restatable,
    default_cache_dir,
    example_sampling,
    with_sampled_frames,
)

log = logging.getLogger("videotune.infer")


class GenerateConfig(CommandConfig):
    """Generate answers for every example (greedy), appending to predictions.jsonl; a rerun resumes."""

    model: str = Field(description="model directory (e.g. vt-train's model/), registry name or hub id")
    examples: Path = Field(description="examples JSONL to answer")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder: predictions.jsonl, run.json")
    batch_size: int = Field(8, ge=1, description="examples generated together (one batch)")
    max_new_tokens: int = Field(64, ge=1, description="generation length cap (tokens)")
    frames: int | None = Field(None, ge=1, description="frames per clip; the prompt's time sentence is restated for them "
                                "[default: as built into the examples]")
    letterbox: int | None = Field(
        None, ge=16, description="image examples: letterbox to SIZE x SIZE px on load (seed 001: 768) [default: as stored]")
    limit: int | None = Field(None, ge=1, description="answer only the first N examples")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    device: str = Field("auto", description="cpu, cuda, cuda:1 ... or auto")
    cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint")
    seed: int = Field(0, description="seed (greedy decoding is deterministic; kept for the manifest)")


def _is_image(example: Example) -> bool:
    return example.frames is None and is_image_path(example.media)


def _batches(examples: list[Example], size: int) -> list[list[Example]]:
    """Batches of at most `size`, each of one media kind (a model call takes images or videos, not both)."""
    kinds = ([e for e in examples if not _is_image(e)], [e for e in examples if _is_image(e)])
    return [kind[start : start + size] for kind in kinds for start in range(0, len(kind), size)]


def run_generate(config: GenerateConfig) -> dict:
    import torch

    seed_everything(config.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    manifest = RunManifest("infer", "generate", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.examples)
    examples = read_jsonl(config.examples, Example)[: config.limit]
    check_frames_restatable(examples, config.frames, config.examples)
    ref = models.resolve(config.model)
    if ref.is_local:
        manifest.add_input(ref.source, name="model")
    model, processor = models.load(ref, dtype=config.dtype, trust_remote_code=config.trust_remote_code, device=device)
    model.eval()
    cache = FrameCache(config.cache_dir or default_cache_dir())
    size = ref.family.frame_size(processor)
    model_name = config.model
    stop_ids = models.stop_token_ids(processor.tokenizer, ref.family)

    with ResumableJsonl(config.out / "predictions.jsonl", Prediction) as sink:
        todo = [e for e in examples if e.id not in sink.done]
        log.info("%d examples, %d already done, %d to generate", len(examples), len(examples) - len(todo), len(todo))
        n_errors = 0
        with Progress("generate", len(todo)) as progress:
            for batch in _batches(todo, config.batch_size):
                t0 = time.perf_counter()
                ready, media = [], []
                for example in batch:
                    try:
                        if _is_image(example):
                            sampled = load_image(config.data_root / example.media, letterbox_size=config.letterbox)
                        else:
                            sampled = cache.get_or_sample(config.data_root / example.media, example_sampling(example, size, config.frames))
                            # the prompt states the frames the model gets (--frames may change their count)
                            example = with_sampled_frames(example, sampled)
                    except InputError as err:  # an unreadable video (VideoReadError) or image, or an unrestatable prompt
                        n_errors += 1
                        sink.append(Prediction(id=example.id, model=model_name, prompt=example.messages[-2].content,
                                               prediction="", reference=example.target, status="error",
                                               error=str(err), meta={**example.meta, "media": example.media}))
                        continue
                    ready.append(example)
                    media.append(sampled)
                if not ready:
                    progress.advance(len(batch))
                    continue
                prompts = [e.messages[-2].content for e in ready]
                if _is_image(ready[0]):  # the batch is all images (see _batches)
                    inputs = models.encode_batch(processor, ref.family, prompts, [], [], [], padding_side="left", images=media)
                else:
                    inputs = models.encode_batch(
                        processor, ref.family, prompts, [v.frames for v in media], [v.timestamps_s for v in media],
                        [v.duration_s for v in media], padding_side="left",
                    )
                answers = models.generate(model, processor.tokenizer, inputs, max_new_tokens=config.max_new_tokens,
                                          stop_ids=stop_ids, logprobs=True)
                total_s = time.perf_counter() - t0
                # Per-sample timing is the batch's: every sample waited for the whole batch. Preprocessing is
                # decoding and encoding, and moving the inputs to the device.
                preprocess_s = total_s - answers.prefill_s - answers.decode_s
                for row, example in enumerate(ready):
                    sink.append(Prediction(
                        id=example.id, model=model_name, prompt=prompts[row], prediction=answers.texts[row],
                        reference=example.target, preprocess_s=round(preprocess_s, 6),
                        prefill_s=round(answers.prefill_s, 6), decode_s=round(answers.decode_s, 6),
                        total_s=round(total_s, 6), new_tokens=answers.new_tokens[row], status="ok",
                        meta={**example.meta, "media": example.media, "mean_logprob": answers.mean_logprobs[row]},
                    ))
                progress.advance(len(batch))
        n_done = len(sink.done)
    summary = {"n_examples": len(examples), "n_predictions": n_done, "n_errors_this_run": n_errors, "device": device}
    manifest.write(outputs={"predictions": "predictions.jsonl"}, summary=summary)
    if n_done < len(examples):
        raise InputError(f"{config.out / 'predictions.jsonl'}: {len(examples) - n_done} examples have no prediction")
    return summary
