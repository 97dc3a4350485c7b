"""VideoLLaMA3 (transformers-format conversion): a SigLIP-based tower with 2 x 2 merging, a Qwen2 language model.

Frames enter as a video; the processor writes "Time t s:" before each frame's tokens (exact indices from
VideoMetadata). The clip's pixel budget is split evenly over its frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from videotune.core.models.families import _qwen
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, token_ids, train_tokenizer

# Qwen2.5 chat format: the processor expands <|video_pad|> to "Time t s:<pads>," per frame.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|image_pad|>\n"
    "{% elif content['type'] == 'video' %}<|video_pad|>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class VideoLlama3(Family):
    def frame_size(self, processor: Any) -> int:
        """`shortest_edge` is a frame's least pixels."""
        factor = _qwen.merge_factor(processor)
        return max(factor, math.isqrt(int(processor.video_processor.size["shortest_edge"])) // factor * factor)

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        factor = _qwen.merge_factor(processor)
        _qwen.check_multiple(size, factor)
        video = processor.video_processor
        video.size = {"shortest_edge": size * size,
                      "longest_edge": max(int(video.size["longest_edge"]), size * size * int(video.max_frames))}
        _qwen.set_image_pixels(processor, size)
        return (size // factor) ** 2

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from transformers import (
            VideoLlama3Config,
            VideoLlama3ForConditionalGeneration,
            VideoLlama3ImageProcessor,
            VideoLlama3Processor,
            VideoLlama3VideoProcessor,
        )

        tokenizer = train_tokenizer(corpus, spec.vocab_size, _qwen.SPECIAL_TOKENS, **_qwen.TOKEN_ROLES,
                                    named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
        side, factor = spec.frame_size, spec.patch_size * 2
        config = VideoLlama3Config(
            vision_config={
                "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
                "num_hidden_layers": spec.vision_layers, "num_attention_heads": spec.heads, "patch_size": spec.patch_size,
            },
            text_config=_qwen.qwen2_text_config(spec, tokenizer),
            **token_ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>"),
            tie_word_embeddings=False,
        )
        geometry = {"patch_size": spec.patch_size, "merge_size": 2}
        image_processor = VideoLlama3ImageProcessor(size={"shortest_edge": factor * factor, "longest_edge": side * side},
                                                    **geometry)
        # The video budget is per clip and split evenly over its frames: room for 180 frames (the processor's
        # max_frames) at side x side, and a floor of one frame at that size so short clips keep it too.
        video_processor = VideoLlama3VideoProcessor(
            size={"shortest_edge": side * side, "longest_edge": side * side * 180}, do_sample_frames=False,
            **geometry,
        )
        processor = VideoLlama3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                         video_processor=video_processor, chat_template=CHAT_TEMPLATE)
        return VideoLlama3ForConditionalGeneration(config), processor


# the transformers-format conversion (an image-trained 2B); DAMO-NLP-SG's own repos need remote code
VIDEOLLAMA3 = register(VideoLlama3(
    name="videollama3",
    model_types=("video_llama_3",),
    hub_ids={"videollama3-2b": "lkhl/VideoLLaMA3-2B-Image-HF"},
    end_of_turn="<|im_end|>",
    vision_module="model.vision_model", projector_module="model.projector",
    timestamps="'Time t s:' text before each frame's tokens (exact indices)",
))
