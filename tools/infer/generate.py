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
from videotune.core.video import FrameCache, default_cache_dir, example_sampling

log = logging.getLogger("videotune.infer")


class GenerateConfig(CommandConfig):
    """Generate answers for every example (greedy), appending to predictions.jsonl; a rerun resumes."""

    model: str = Field(description="model directory (e.g. vt-train's model/), registry name or hub id")
    examples: Path = Field(description="examples JSONL to answer")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder: predictions.jsonl, run.json")
    batch_size: int = Field(8, ge=1, description="examples per generate() call")
    max_new_tokens: int = Field(64, ge=1, description="generation length cap (tokens)")
    frames: int | None = Field(None, ge=1, description="frames per clip [default: as built into the examples]")
    letterbox: int | None = Field(
        None, ge=16, description="image examples: letterbox to SIZE x SIZE px on load (seed 001: 768) [default: as stored]")
    limit: int | None = Field(None, ge=1, description="answer only the first N examples")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    device: str = Field("auto", description="cpu, cuda, cuda:1 ... or auto")
    cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint")
    seed: int = Field(0, description="seed (greedy decoding is deterministic; kept for the manifest)")


class _FirstTokenClock:
    """A logits processor that notes when the first token's logits exist: the end of prefill."""

    def __init__(self) -> None:
        self.first_at: float | None = None

    def __call__(self, input_ids, scores):
        if self.first_at is None:
            self.first_at = time.perf_counter()
        return scores


def _is_image(example: Example) -> bool:
    return example.frames is None and is_image_path(example.media)


def _batches(examples: list[Example], size: int) -> list[list[Example]]:
    """Batches of at most `size`, each of one media kind (a model call takes images or videos, not both)."""
    kinds = ([e for e in examples if not _is_image(e)], [e for e in examples if _is_image(e)])
    return [kind[start : start + size] for kind in kinds for start in range(0, len(kind), size)]


def run_generate(config: GenerateConfig) -> dict:
    import torch
    from transformers import LogitsProcessorList

    seed_everything(config.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    manifest = RunManifest("infer", "generate", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.examples)
    ref = models.resolve(config.model)
    if ref.is_local:
        manifest.add_input(ref.source, name="model")
    model, processor = models.load(ref, dtype=config.dtype, trust_remote_code=config.trust_remote_code, device=device)
    model.eval()
    examples = read_jsonl(config.examples, Example)[: config.limit]
    cache = FrameCache(config.cache_dir or default_cache_dir())
    size = models.frame_size(processor)
    model_name = config.model
    tokenizer = processor.tokenizer
    stop_ids = {tokenizer.convert_tokens_to_ids(ref.family.end_of_turn), tokenizer.eos_token_id}

    with ResumableJsonl(config.out / "predictions.jsonl", Prediction) as sink:
        todo = [e for e in examples if e.id not in sink.done]
        log.info("%d examples, %d already done, %d to generate", len(examples), len(examples) - len(todo), len(todo))
        n_errors = 0
        with Progress("generate", len(todo)) as progress:
            for batch in _batches(todo, config.batch_size):
                t0 = time.perf_counter()
                ready, videos = [], []
                for example in batch:
                    try:
                        if _is_image(example):
                            sampled = load_image(config.data_root / example.media, letterbox_size=config.letterbox)
                        else:
                            sampled = cache.get_or_sample(config.data_root / example.media, example_sampling(example, size, config.frames))
                    except InputError as err:  # an unreadable video (VideoReadError) or image
                        n_errors += 1
                        sink.append(Prediction(id=example.id, model=model_name, prompt=example.messages[-2].content,
                                               prediction="", reference=example.target, status="error",
                                               error=str(err), meta={**example.meta, "media": example.media}))
                        continue
                    ready.append(example)
                    videos.append(sampled)
                if not ready:
                    progress.advance(len(batch))
                    continue
                if _is_image(ready[0]):  # the batch is all images (see _batches)
                    inputs = models.encode_batch(processor, ref.family, [e.messages[-2].content for e in ready], [], [], [],
                                                 padding_side="left", images=videos)
                else:
                    inputs = models.encode_batch(
                        processor, ref.family, [e.messages[-2].content for e in ready], [v.frames for v in videos],
                        [v.timestamps_s for v in videos], [v.duration_s for v in videos], padding_side="left",
                    )
                inputs = {k: v.to(device) for k, v in inputs.items()}
                if "pixel_values" in inputs and config.dtype != "float32":
                    inputs["pixel_values"] = inputs["pixel_values"].to(getattr(torch, config.dtype))
                clock = _FirstTokenClock()
                t1 = time.perf_counter()
                with torch.inference_mode():
                    out = model.generate(
                        **inputs, max_new_tokens=config.max_new_tokens, do_sample=False,
                        logits_processor=LogitsProcessorList([clock]), output_scores=True,
                        return_dict_in_generate=True, eos_token_id=sorted(i for i in stop_ids if i is not None),
                        pad_token_id=tokenizer.pad_token_id,
                    )
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t2 = time.perf_counter()
                prompt_len = inputs["input_ids"].shape[1]
                generated = out.sequences[:, prompt_len:]
                scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
                # Per-sample timing is the batch's: every sample waited for the whole batch.
                preprocess_s = (t1 - t0)
                prefill_s = (clock.first_at or t2) - t1
                decode_s = t2 - (clock.first_at or t2)
                for row, example in enumerate(ready):
                    tokens = generated[row].tolist()
                    length = next((i + 1 for i, t in enumerate(tokens) if t in stop_ids), len(tokens))
                    text = tokenizer.decode(tokens[:length], skip_special_tokens=True).strip()
                    logprobs = scores[row, :length].float()
                    sink.append(Prediction(
                        id=example.id, model=model_name, prompt=example.messages[-2].content, prediction=text,
                        reference=example.target, preprocess_s=round(preprocess_s, 6), prefill_s=round(prefill_s, 6),
                        decode_s=round(decode_s, 6), total_s=round(t2 - t0, 6), new_tokens=length, status="ok",
                        meta={**example.meta, "media": example.media,
                              "mean_logprob": float(logprobs.mean()) if length else None},
                    ))
                progress.advance(len(batch))
        n_done = len(sink.done)
    summary = {"n_examples": len(examples), "n_predictions": n_done, "n_errors_this_run": n_errors, "device": device}
    manifest.write(outputs={"predictions": "predictions.jsonl"}, summary=summary)
    if n_done < len(examples):
        raise InputError(f"{config.out / 'predictions.jsonl'}: {len(examples) - n_done} examples have no prediction")
    return summary
