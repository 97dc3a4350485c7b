"""Qwen3-VL: DeepStack vision features into early decoder layers, interleaved M-RoPE, text timestamps.

Frames enter as a video; the processor writes "<t seconds>" before every temporal patch (the mean time of
its 2 frames, from VideoMetadata's exact indices). The video pixel budget is per clip (t x h x w), with a
per-frame ceiling of `max_video_tokens` merged-patch areas; a clip needs at least 2 frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from videotune.core.models.families import _qwen
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, token_ids

# No default system turn (unlike Qwen2-VL's).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Qwen3VL(Family):
    def frame_size(self, processor: Any) -> int:
        factor = _qwen.merge_factor(processor)
        return max(factor, math.isqrt(int(processor.video_processor.max_video_tokens)) * factor)

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        factor = _qwen.merge_factor(processor)
        _qwen.check_multiple(size, factor)
        video = processor.video_processor
        video.max_video_tokens = (size // factor) ** 2
        video.cap_pixels_per_frame = True
        # room for the processor's most frames at this size, so the clip budget never shrinks them
        longest = max(int(video.size["longest_edge"]), size * size * int(video.max_frames))
        video.size = {"shortest_edge": min(int(video.size["shortest_edge"]), size * size), "longest_edge": longest}
        _qwen.set_image_pixels(processor, size)
        return _qwen.tokens_per_frame(processor, size)


    def frame_pixel_cap(self, processor: Any) -> int:
        """The most pixels of one frame: `max_video_tokens` merged-patch areas."""
        factor = _qwen.merge_factor(processor)
        return int(processor.video_processor.max_video_tokens) * factor * factor

    def budget_videos(self, processor: Any, videos: Sequence[np.ndarray], max_pixels: int) -> list[np.ndarray]:
        return _qwen.budget_videos(processor, videos, max_pixels, self.frame_pixel_cap(processor))

    def budget_frame(self, processor: Any, height: int, width: int, n_frames: int,
                     max_pixels: int) -> tuple[int, int, int]:
        return _qwen.budget_frame(processor, height, width, n_frames, max_pixels, self.frame_pixel_cap(processor))

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from transformers import (
            Qwen2VLImageProcessor,
            Qwen3VLConfig,
            Qwen3VLForConditionalGeneration,
            Qwen3VLProcessor,
            Qwen3VLVideoProcessor,
        )

        tokenizer = _qwen.tokenizer(corpus, spec.vocab_size)
        head_dim = spec.text_hidden // spec.heads
        config = Qwen3VLConfig(
            vision_config={
                "depth": spec.vision_layers, "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
                "num_heads": spec.heads, "out_hidden_size": spec.text_hidden, "patch_size": spec.patch_size,
                "spatial_merge_size": spec.token_merge, "temporal_patch_size": 2,
                "num_position_embeddings": (spec.frame_size // spec.patch_size) ** 2,
                "deepstack_visual_indexes": [0],  # the first vision block's features feed the first decoder layer
            },
            text_config={**_qwen.text_config(spec, tokenizer, head_dim, mrope_interleaved=True), "head_dim": head_dim},
            **token_ids(tokenizer, **_qwen.MEDIA_TOKENS),
            tie_word_embeddings=False,
        )
        processor = _qwen.processors(spec, Qwen2VLImageProcessor, Qwen3VLVideoProcessor, tokenizer, Qwen3VLProcessor,
                                     CHAT_TEMPLATE, per_clip=True)
        return Qwen3VLForConditionalGeneration(config), processor


QWEN3_VL = register(Qwen3VL(
    name="qwen3-vl",
    model_types=("qwen3_vl",),
    hub_ids={"qwen3-vl-2b": "Qwen/Qwen3-VL-2B-Instruct", "qwen3-vl-4b": "Qwen/Qwen3-VL-4B-Instruct",
             "qwen3-vl-8b": "Qwen/Qwen3-VL-8B-Instruct"},
    end_of_turn="<|im_end|>",
    vision_module="model.visual", projector_module="model.visual.merger",
    extra_projector_modules=("model.visual.deepstack_merger_list",),
    min_frames=2,
    timestamps="'<t seconds>' text before each temporal patch (mean time of its 2 frames, exact indices)",
    tiny_token_merge=True,
))
