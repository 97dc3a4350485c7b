"""Qwen2.5-VL: Qwen2-VL's layout with windowed vision attention and M-RoPE time scaled to seconds.

Frames enter as a video; `second_per_grid_ts` (seconds per temporal patch, from the sampled frame rate that
VideoMetadata gives) scales M-RoPE's time positions. Each frame's pixels are budgeted on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from videotune.core.models.families import _qwen
from videotune.core.models.families.qwen2_vl import Qwen2VL
from videotune.core.models.family import register
from videotune.core.models.tiny import TinySpec, token_ids


@dataclass(frozen=True)
class Qwen25VL(Qwen2VL):
    """Qwen2-VL's frame geometry; its own classes."""

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from transformers import (
            Qwen2_5_VLConfig,
            Qwen2_5_VLForConditionalGeneration,
            Qwen2_5_VLProcessor,
            Qwen2VLImageProcessor,
            Qwen2VLVideoProcessor,
        )

        tokenizer = _qwen.tokenizer(corpus, spec.vocab_size)
        config = Qwen2_5_VLConfig(
            vision_config={
                "depth": spec.vision_layers, "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
                "num_heads": spec.heads, "out_hidden_size": spec.text_hidden, "patch_size": spec.patch_size,
                "spatial_merge_size": spec.token_merge, "temporal_patch_size": 2,
                # windowed attention over 2 x 2 merged patches; the last block attends over the whole frame
                "window_size": spec.patch_size * spec.token_merge * 2, "fullatt_block_indexes": [spec.vision_layers - 1],
                "tokens_per_second": 2,
            },
            text_config=_qwen.text_config(spec, tokenizer, spec.text_hidden // spec.heads),
            **token_ids(tokenizer, **_qwen.MEDIA_TOKENS),
            tie_word_embeddings=False,
        )
        processor = _qwen.processors(spec, Qwen2VLImageProcessor, Qwen2VLVideoProcessor, tokenizer,
                                     Qwen2_5_VLProcessor, _qwen.QWEN2_VL_CHAT_TEMPLATE, per_clip=False)
        return Qwen2_5_VLForConditionalGeneration(config), processor


QWEN2_5_VL = register(Qwen25VL(
    name="qwen2.5-vl",
    model_types=("qwen2_5_vl",),
    hub_ids={"qwen2.5-vl-3b": "Qwen/Qwen2.5-VL-3B-Instruct", "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct"},
    end_of_turn="<|im_end|>",
    vision_module="model.visual", projector_module="model.visual.merger",
    timestamps="second_per_grid_ts (seconds per temporal patch, from the sampled frame rate) scales M-RoPE time",
    tiny_token_merge=True,
))
