"""What the Qwen-VL families share: the ChatML tokenizer roles, M-RoPE text configs, the image/video
processors and their merged-patch geometry (frame sides are multiples of patch_size x merge_size)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

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
# qwen-vl-utils' per-frame video floor (VIDEO_MIN_PIXELS = 128 merged-patch areas), which a real checkpoint's
# video processor also takes as its `size["shortest_edge"]`.
MIN_FRAME_TOKENS = 128
# frames per temporal patch: two consecutive frames share one grid of merged-patch tokens
TEMPORAL_PATCH = 2


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
    factor = spec.patch_size * spec.token_merge  # patch x spatial merge
    geometry = {"patch_size": spec.patch_size, "temporal_patch_size": 2, "merge_size": spec.token_merge}
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


def per_frame_cap(processor: Any) -> int:
    """Qwen2-VL / Qwen2.5-VL: the most pixels of one frame (`size["longest_edge"]`, at most qwen-vl-utils' ceiling)."""
    factor = merge_factor(processor)
    return min(int(processor.video_processor.size["longest_edge"]), MAX_FRAME_TOKENS * factor * factor)


def per_frame_size(processor: Any) -> int:
    """Qwen2-VL / Qwen2.5-VL: `size` bounds the pixels of each frame ([shortest, longest] = [min, max])."""
    factor = merge_factor(processor)
    return max(factor, math.isqrt(per_frame_cap(processor)) // factor * factor)


def set_per_frame_size(processor: Any, size: int) -> int:
    check_multiple(size, merge_factor(processor))
    video = processor.video_processor
    video.size = {"shortest_edge": min(int(video.size["shortest_edge"]), size * size), "longest_edge": size * size}
    set_image_pixels(processor, size)
    return tokens_per_frame(processor, size)


# ---------------------------------------------------------------------- per-clip pixel budget
#
# qwen-vl-utils' video rule (fetch_video): a clip's `total_pixels` are shared by its temporal patches, so each
# frame may have at most total_pixels / (frames / 2) pixels, never more than the per-frame ceiling and never
# less than 1.05 x the per-frame floor; each frame is then resized, aspect ratio kept, to sides that are
# multiples of patch_size x merge_size (smart_resize). The budget thus bounds the clip's video tokens:
# (frames / 2) x (h / factor) x (w / factor) <= total_pixels / factor**2, the floor aside.


def smart_resize(height: int, width: int, factor: int, min_pixels: float, max_pixels: float) -> tuple[int, int]:
    """(height, width) in px: both multiples of `factor`, pixels within [min_pixels, max_pixels], the aspect ratio
    kept as closely as the factor allows (qwen-vl-utils' and the Qwen processors' rule)."""
    if min(height, width) < 1 or max(height, width) / min(height, width) > 200:
        raise InputError(f"frame of {width}x{height} px: the Qwen processors take aspect ratios up to 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def temporal_patches(n_frames: int) -> int:
    """Temporal patches of a clip: its frame count rounded up to whole patches (the processors repeat the
    last frame to fill one)."""
    return -(-n_frames // TEMPORAL_PATCH)


def budget_frame_pixels(n_frames: int, max_pixels: int, min_pixels: int, frame_cap: int) -> float:
    """The most pixels one frame of an `n_frames` clip may have under a per-clip budget of `max_pixels`."""
    if n_frames < 1:
        raise ValueError(f"budget_frame_pixels: a clip has at least one frame, got {n_frames}")
    return max(min(frame_cap, max_pixels / temporal_patches(n_frames)), int(min_pixels * 1.05))


def budget_frame_size(height: int, width: int, n_frames: int, max_pixels: int, factor: int, min_pixels: int,
                      frame_cap: int) -> tuple[int, int]:
    """(height, width) in px of every frame of an `n_frames` clip of `height` x `width` px frames under a
    per-clip budget of `max_pixels` (qwen-vl-utils' total_pixels)."""
    limit = budget_frame_pixels(n_frames, max_pixels, min_pixels, frame_cap)
    return smart_resize(height, width, factor, min_pixels, limit)


def budget_geometry(processor: Any, frame_cap: int) -> dict[str, int]:
    """What the budget rule reads from a processor: factor, per-frame floor (`size["shortest_edge"]`) and ceiling."""
    return {"factor": merge_factor(processor), "min_pixels": int(processor.video_processor.size["shortest_edge"]),
            "frame_cap": frame_cap}


def budget_frame(processor: Any, height: int, width: int, n_frames: int, max_pixels: int,
                 frame_cap: int) -> tuple[int, int, int]:
    """(height px, width px, tokens per frame) of an `n_frames` clip's frames under the budget."""
    geometry = budget_geometry(processor, frame_cap)
    h, w = budget_frame_size(height, width, n_frames, max_pixels, **geometry)
    return h, w, frame_tokens(h, w, geometry["factor"])


def frame_tokens(height: int, width: int, factor: int) -> int:
    """A frame's share of its temporal patch's merged-patch tokens, rounded up."""
    return -(-((height // factor) * (width // factor)) // TEMPORAL_PATCH)


def resize_frames(video: np.ndarray, height: int, width: int) -> np.ndarray:
    """[T, H, W, 3] uint8 frames resized to `height` x `width` px, bicubic with antialiasing (as qwen-vl-utils
    and the Qwen processors resize)."""
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as tvF

    if video.shape[1:3] == (height, width):
        return video
    frames = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2)
    resized = tvF.resize(frames, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return resized.permute(0, 2, 3, 1).contiguous().numpy()


def budget_videos(processor: Any, videos: Sequence[np.ndarray], max_pixels: int, frame_cap: int) -> list[np.ndarray]:
    """Every clip's frames resized to their size under the per-clip budget (the processor then keeps them)."""
    geometry = budget_geometry(processor, frame_cap)
    out = []
    for video in videos:
        video = np.asarray(video)
        height, width = budget_frame_size(video.shape[1], video.shape[2], len(video), max_pixels, **geometry)
        out.append(resize_frames(video, height, width))
    return out


def budget_table(factor: int, min_pixels: int, frame_cap: int, height: int, width: int,
                 budgets: Sequence[int], frame_counts: Sequence[int]) -> list[dict[str, int]]:
    """Per budget and frame count: the frame size a `height` x `width` px frame is resized to, its tokens per
    frame (a temporal patch's tokens shared by its 2 frames) and the clip's video tokens."""
    rows = []
    for budget in budgets:
        for n_frames in frame_counts:
            h, w = budget_frame_size(height, width, n_frames, budget, factor, min_pixels, frame_cap)
            rows.append({"budget_px": budget, "frames": n_frames, "height": h, "width": w,
                         "tokens_per_frame": frame_tokens(h, w, factor),
                         "clip_tokens": temporal_patches(n_frames) * (h // factor) * (w // factor)})
    return rows


# The published checkpoints' video geometry: (patch x merge, per-frame floor px, per-frame ceiling px, the frame
# size frames are decoded at (longest side px: `frame_size` of their processors)).
PUBLISHED_GEOMETRY = {
    "qwen2-vl / qwen2.5-vl": (28, MIN_FRAME_TOKENS * 28 * 28, MAX_FRAME_TOKENS * 28 * 28, 756),
    "qwen3-vl": (32, MIN_FRAME_TOKENS * 32 * 32, MAX_FRAME_TOKENS * 32 * 32, 864),
}
DOC_BUDGET_TOKENS = (2048, 4096, 16384)  # budgets of the docs' table, in merged-patch areas
DOC_FRAME_COUNTS = (8, 16, 32, 64)


def budget_table_markdown(aspect: tuple[int, int] = (4, 3)) -> str:
    """The docs' table (tools/train/README.md): for each published geometry, a clip of `aspect` (width:height)
    decoded at its frame size, per budget and frame count, the frame size and tokens per frame."""
    lines = ["| family | budget (px) | = tokens | frames | frame (w x h px) | tokens / frame | clip tokens |",
             "|---|---|---|---|---|---|---|"]
    for name, (factor, min_pixels, frame_cap, side) in PUBLISHED_GEOMETRY.items():
        width, height = side, round(side * aspect[1] / aspect[0])
        budgets = [tokens * factor * factor for tokens in DOC_BUDGET_TOKENS]
        for row in budget_table(factor, min_pixels, frame_cap, height, width, budgets, DOC_FRAME_COUNTS):
            lines.append(f"| {name} | {row['budget_px']} | {row['budget_px'] // (factor * factor)} | {row['frames']} | "
                         f"{row['width']} x {row['height']} | {row['tokens_per_frame']} | {row['clip_tokens']} |")
    return "\n".join(lines)
