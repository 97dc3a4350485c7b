"""LLaVA-OneVision (llava-hf conversions): a SigLIP tower, a 2-layer MLP projector and a Qwen2 language model.

Frames enter as a video and are pooled 2 x 2 (bilinear) after the projector; no frame times reach the model
beyond the prompt's text. SigLIP's learned position embeddings fix the frame side to the trained one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.families import _qwen
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, token_ids, train_tokenizer

# The role, then media tokens, then "\n" + text; Qwen2's <|im_end|> closes turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ '\n' + message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]


@dataclass(frozen=True)
class LlavaOnevision(Family):
    def frame_size(self, processor: Any) -> int:
        size = processor.video_processor.size
        return int(size["height"] if "height" in size else size["shortest_edge"])

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        trained = int(model_config.vision_config.image_size)
        if size != trained:
            raise InputError(
                f"frame size {size} px: LLaVA-OneVision's vision tower has position embeddings for {trained} px frames only"
            )
        patches = (size // int(model_config.vision_config.patch_size)) ** 2
        return math.ceil(math.isqrt(patches) / 2) ** 2  # the 2 x 2 bilinear pooling of video frames

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from transformers import (
            LlavaOnevisionConfig,
            LlavaOnevisionForConditionalGeneration,
            LlavaOnevisionImageProcessor,
            LlavaOnevisionProcessor,
            LlavaOnevisionVideoProcessor,
        )

        tokenizer = train_tokenizer(corpus, spec.vocab_size, SPECIAL_TOKENS, **_qwen.TOKEN_ROLES,
                                    named_tokens={"image_token": "<image>", "video_token": "<video>"})
        side = spec.frame_size
        config = LlavaOnevisionConfig(
            vision_config={
                "model_type": "siglip_vision_model", "hidden_size": spec.vision_hidden,
                "intermediate_size": spec.vision_hidden * 2, "num_hidden_layers": spec.vision_layers,
                "num_attention_heads": spec.heads, "image_size": side, "patch_size": spec.patch_size,
            },
            text_config=_qwen.qwen2_text_config(spec, tokenizer),
            **token_ids(tokenizer, image_token_index="<image>", video_token_index="<video>"),
            vision_feature_select_strategy="full", vision_feature_layer=-1,
            # anyres tiles for still images: the base frame plus up to a 2 x 2 grid of tiles
            image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]],
            tie_word_embeddings=False,
        )
        size = {"height": side, "width": side}
        image_processor = LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=config.image_grid_pinpoints)
        video_processor = LlavaOnevisionVideoProcessor(size=size, do_sample_frames=False)
        processor = LlavaOnevisionProcessor(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
            num_image_tokens=(side // spec.patch_size) ** 2, vision_feature_select_strategy="full",
            chat_template=CHAT_TEMPLATE,
        )
        return LlavaOnevisionForConditionalGeneration(config), processor


LLAVA_ONEVISION = register(LlavaOnevision(
    name="llava-onevision",
    model_types=("llava_onevision",),
    hub_ids={"llava-onevision-0.5b": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
             "llava-onevision-7b": "llava-hf/llava-onevision-qwen2-7b-ov-hf"},
    end_of_turn="<|im_end|>",
    vision_module="model.vision_tower", projector_module="model.multi_modal_projector",
))
