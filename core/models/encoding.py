"""Prompts and batches: chat prompts with their media, frames with their exact times, and loss labels.

Every caller (training, evaluation, inference, profiling, benchmarks) encodes through `encode_batch`, so a
model sees the same tokens wherever it is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from videotune.core.models.family import Family


def _conversation(user_text: str, media: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": media}, {"type": "text", "text": user_text}]}]


def encode_batch(
    processor: Any,
    family: Family,
    user_texts: Sequence[str],
    videos: Sequence[np.ndarray],
    timestamps: Sequence[Sequence[float]],
    durations: Sequence[float],
    targets: Sequence[str] | None = None,
    padding_side: str = "right",
    images: Sequence[np.ndarray] | None = None,
    video_max_pixels: int | None = None,
) -> dict[str, Any]:
    """Tokenize prompts (+ targets) with their frames into model inputs.

    With `video_max_pixels` (a per-clip pixel budget, families with `video_pixel_budget`) each clip's
    frames are resized to fit it here and the processor takes them unresized, so training, evaluation
    and inference feed the same pixels.

    With `targets`, `labels` hold the target tokens (and the end-of-turn token) and -100
    everywhere else: prompt and media tokens never enter the loss. With `images` (one uint8
    RGB [H, W, 3] array per prompt) the batch is an image batch: `videos`, `timestamps` and
    `durations` must be empty (a batch mixing images and videos is refused).
    """
    if images is not None:
        if len(videos) or len(timestamps) or len(durations):
            raise ValueError(
                "encode_batch: a batch mixes images and videos; batch image examples and video examples separately"
            )
        return encode_image_batch(processor, family, user_texts, images, targets=targets, padding_side=padding_side)
    inputs = family.video_inputs(videos, timestamps, durations)
    if video_max_pixels is not None:
        inputs["videos"] = family.budget_videos(processor, inputs["videos"], video_max_pixels)
        inputs["do_resize"] = False  # sides already multiples of patch x merge, pixels within the budget
    return _tokenize(processor, family, user_texts, "video", inputs, targets, padding_side)


def encode_image_batch(
    processor: Any,
    family: Family,
    user_texts: Sequence[str],
    images: Sequence[np.ndarray],
    targets: Sequence[str] | None = None,
    padding_side: str = "right",
) -> dict[str, Any]:
    """Tokenize prompts (+ targets) with one still image each: chat content {"type": "image"}.

    The image enters as the processor's `images=` (one list per prompt); labels as in `encode_batch`.
    """
    if len(images) != len(user_texts):
        raise ValueError(f"encode_image_batch: {len(user_texts)} prompts but {len(images)} images")
    return _tokenize(processor, family, user_texts, "image", {"images": [[np.asarray(i)] for i in images]},
                     targets, padding_side)


def _tokenize(processor: Any, family: Family, user_texts: Sequence[str], media: str, media_inputs: dict[str, Any],
              targets: Sequence[str] | None, padding_side: str) -> dict[str, Any]:
    """One user turn per prompt (its media, then its text), rendered by the chat template, the answer appended
    where there is one, tokenized with the media by the processor."""
    tokenizer = processor.tokenizer
    texts = [processor.apply_chat_template(_conversation(t, media), add_generation_prompt=True, tokenize=False)
             for t in user_texts]
    if targets is not None:
        # SmolVLM: "Assistant:" + " " + target (the space belongs to the target's first token);
        # ChatML families: "assistant\n" + target
        texts = [p + family.answer_prefix + t + family.end_of_turn for p, t in zip(texts, targets)]
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        batch = processor(text=texts, **media_inputs, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = previous_side
    batch = dict(batch)
    if targets is not None:
        batch["labels"] = _target_labels(tokenizer, batch["input_ids"], batch["attention_mask"], targets, family)
    return batch


def _target_labels(tokenizer: Any, input_ids, attention_mask, targets: Sequence[str], family: Family):
    import torch

    labels = torch.full_like(input_ids, -100)
    for row, target in enumerate(targets):
        tail = tokenizer(family.answer_prefix + target + family.end_of_turn, add_special_tokens=False)["input_ids"]
        positions = attention_mask[row].nonzero().flatten()
        last = int(positions[-1]) + 1
        first = last - len(tail)
        if first < 0 or input_ids[row, first:last].tolist() != tail:
            raise ValueError(
                "the target's tokens differ in context from standalone: the tokenizer merges across the "
                f"prompt/answer boundary (target {target[:60]!r})"
            )
        labels[row, first:last] = input_ids[row, first:last]
    return labels
