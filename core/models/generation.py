"""The one generation path: greedy decoding of an encoded batch, cut at the first stop token, timed.

Inference, profiling, curriculum evaluation, the quantization benchmark and the judge's local backend all
generate here, so a model is scored the same wherever it runs: the same stop tokens, the same input casts,
the same decoding of the answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from videotune.core.models.family import Family


@dataclass
class Generation:
    """A batch's answers: token ids up to and including the first stop token, their text, and timing."""

    tokens: list[list[int]]
    texts: list[str]
    prompt_tokens: int  # the batch's padded prompt length
    prefill_s: float  # from the call to the first token's logits (the prompt and media through the model)
    decode_s: float  # from the first token's logits to the last token
    mean_logprobs: list[float | None] | None = None  # per row, with `logprobs=True` (None for an empty answer)

    @property
    def new_tokens(self) -> list[int]:
        return [len(t) for t in self.tokens]

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s


def stop_token_ids(tokenizer: Any, family: Family | None = None, generation_config: Any = None) -> list[int]:
    """Where an answer ends: the family's end-of-turn token and the tokenizer's EOS; without a family (a plain
    language model, the judge's), the model's own generation_config EOS ids and the tokenizer's EOS."""
    ids: set[int | None] = {tokenizer.eos_token_id}
    if family is not None:
        ids.add(tokenizer.convert_tokens_to_ids(family.end_of_turn))
    elif generation_config is not None and generation_config.eos_token_id is not None:
        eos = generation_config.eos_token_id
        ids.update(eos if isinstance(eos, Iterable) else [eos])
    return sorted(i for i in ids if i is not None)


def prepare_inputs(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs on the model's device, with pixel tensors in its floating dtype (a bf16 model takes bf16 pixels)."""
    dtype = getattr(model, "dtype", None)
    device = getattr(model, "device", None)
    prepared = {}
    for key, value in inputs.items():
        if device is not None and hasattr(value, "to"):
            value = value.to(device)
        if key.startswith("pixel_values") and dtype is not None and value.is_floating_point() and value.dtype != dtype:
            value = value.to(dtype)
        prepared[key] = value
    return prepared


class _FirstTokenClock:
    """A logits processor that notes when the first token's logits exist: the end of prefill."""

    def __init__(self) -> None:
        self.first_at: float | None = None

    def __call__(self, input_ids, scores):
        if self.first_at is None:
            self.first_at = time.perf_counter()
        return scores


def generate(
    model: Any,
    tokenizer: Any,
    inputs: Mapping[str, Any],
    *,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    min_new_tokens: int | None = None,
    logprobs: bool = False,
) -> Generation:
    """Greedy answers for an encoded batch (left-padded prompts, as `encode_batch(..., padding_side="left")`
    gives). `min_new_tokens` forces a fixed length (latency measurements); `logprobs` adds each answer's mean
    token log-probability (a confidence for ranking answers)."""
    import torch
    from transformers import LogitsProcessorList

    inputs = prepare_inputs(model, inputs)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    on_cuda = str(getattr(model, "device", "cpu")).startswith("cuda")
    clock = _FirstTokenClock()
    if on_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, do_sample=False,
            logits_processor=LogitsProcessorList([clock]), eos_token_id=list(stop_ids), pad_token_id=pad_id,
            output_scores=logprobs, return_dict_in_generate=True,
        )
    if on_cuda:
        torch.cuda.synchronize()
    finished = time.perf_counter()
    first = clock.first_at or finished
    prompt_tokens = int(inputs["input_ids"].shape[1])
    stops = set(stop_ids)
    tokens = []
    for row in out.sequences[:, prompt_tokens:].tolist():
        length = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        tokens.append(row[:length])
    texts = [tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
    mean_logprobs = None
    if logprobs:
        scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        mean_logprobs = [float(scores[row, :len(t)].float().mean()) if t else None for row, t in enumerate(tokens)]
    return Generation(tokens=tokens, texts=texts, prompt_tokens=prompt_tokens, prefill_s=first - started,
                      decode_s=finished - first, mean_logprobs=mean_logprobs)
