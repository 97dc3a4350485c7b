"""What the Qwen-VL families share: the ChatML tokenizer roles, M-RoPE text configs, the image/video
processors and their merged-patch geometry (frame sides are multiples of patch_size x merge_size)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.tiny import train_tokenizer

# Qwen2-VL and Qwen2.5-VL: a default system turn, media as <|vision_start|><|video_pad|><|vision_end|>.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen-format tokenizers: no BOS; <|im_end|> ends a turn (generation's EOS), <|endoftext|> pads.
TOKEN_ROLES = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None}

MEDIA_TOKENS = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
                "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}

# qwen-vl-utils' per-frame video ceiling (VIDEO_MAX_PIXELS = 768 x 28 x 28 px): a real checkpoint's
# processor allows up to 12.8 Mpx per image, far beyond what a clip's frames are decoded at.
MAX_FRAME_TOKENS = 768


def tokenizer(corpus: Iterable[str], vocab_size: int):
    return train_tokenizer(
        corpus, vocab_size, SPECIAL_TOKENS, **TOKEN_ROLES,
        named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                      "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    )


def text_config(spec, tokenizer, head_dim: int, **extra) -> dict[str, Any]:
    # M-RoPE splits each head's rotary half (head_dim / 2 frequencies) over time, height and width.
    half = head_dim // 2
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    return {
        "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden, "intermediate_size": spec.text_hidden * 2,
        "num_hidden_layers": spec.text_layers, "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section, **extra},
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None,
    }


def qwen2_text_config(spec, tokenizer) -> dict[str, Any]:
    """A plain Qwen2 language model (LLaVA-OneVision, VideoLLaMA3): no M-RoPE."""
    return {
        "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_hidden * 2, "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }


def processors(spec, image_cls, video_cls, tokenizer, processor_cls, chat_template, per_clip: bool):
    """Image and video processors that keep `spec.frame_size` square frames at that size.

    Qwen2-VL/2.5-VL budget pixels per frame (`size` = [min, max] pixels); Qwen3-VL's video budget is per
    clip (t x h x w) with a per-frame ceiling of `max_video_tokens` merged-patch areas.
    """
    side = spec.frame_size
    factor = spec.patch_size * 2  # patch x spatial merge
    geometry = {"patch_size": spec.patch_size, "temporal_patch_size": 2, "merge_size": 2}
    image_processor = image_cls(size={"shortest_edge": factor * factor, "longest_edge": side * side}, **geometry)
    if per_clip:
        video_processor = video_cls(
            size={"shortest_edge": 2 * factor * factor, "longest_edge": side * side * 256},
            max_video_tokens=(side // factor) ** 2, cap_pixels_per_frame=True, do_sample_frames=False, **geometry,
        )
    else:
        video_processor = video_cls(
            size={"shortest_edge": factor * factor, "longest_edge": side * side}, cap_pixels_per_frame=True,
            do_sample_frames=False, **geometry,
        )
    return processor_cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                         chat_template=chat_template)


# ---------------------------------------------------------------------- geometry


def merge_factor(processor: Any) -> int:
    """Pixels per merged token side: frame sides must be multiples of patch_size x merge_size."""
    video = processor.video_processor
    return int(video.patch_size) * int(video.merge_size)


def check_multiple(size: int, factor: int) -> None:
    if size % factor:
        raise InputError(f"frame size {size} px: must be a multiple of patch_size x merge_size = {factor} px")


def tokens_per_frame(processor: Any, size: int) -> int:
    temporal = int(getattr(processor.video_processor, "temporal_patch_size", 1) or 1)
    return -(-((size // merge_factor(processor)) ** 2) // temporal)


def set_image_pixels(processor: Any, size: int) -> None:
    image = processor.image_processor
    image.size = {"shortest_edge": min(int(image.size["shortest_edge"]), size * size), "longest_edge": size * size}


def per_frame_size(processor: Any) -> int:
    """Qwen2-VL / Qwen2.5-VL: `size` bounds the pixels of each frame ([shortest, longest] = [min, max])."""
    factor = merge_factor(processor)
    budget = min(int(processor.video_processor.size["longest_edge"]), MAX_FRAME_TOKENS * factor * factor)
    return max(factor, math.isqrt(budget) // factor * factor)


def set_per_frame_size(processor: Any, size: int) -> int:
    check_multiple(size, merge_factor(processor))
    video = processor.video_processor
    video.size = {"shortest_edge": min(int(video.size["shortest_edge"]), size * size), "longest_edge": size * size}
    set_image_pixels(processor, size)
    return tokens_per_frame(processor, size)
