"""Qwen2-VL: a ViT with 2 x 2 patch merging and temporal patches of 2 frames, M-RoPE in a Qwen2 language model.

Frames enter as a video; no frame times reach the model beyond the prompt's text (M-RoPE's time positions
count temporal patches). Each frame's pixels are budgeted on its own (`size` = [min, max] pixels); a per-clip
budget (`budget_videos`, qwen-vl-utils' total_pixels) shrinks them further.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from videotune.core.models.families import _qwen
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, token_ids


@dataclass(frozen=True)
class Qwen2VL(Family):
    def frame_size(self, processor: Any) -> int:
        return _qwen.per_frame_size(processor)

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        return _qwen.set_per_frame_size(processor, size)

    def budget_videos(self, processor: Any, videos: Sequence[np.ndarray], max_pixels: int) -> list[np.ndarray]:
        return _qwen.budget_videos(processor, videos, max_pixels, _qwen.per_frame_cap(processor))

    def budget_frame(self, processor: Any, height: int, width: int, n_frames: int,
                     max_pixels: int) -> tuple[int, int, int]:
        return _qwen.budget_frame(processor, height, width, n_frames, max_pixels, _qwen.per_frame_cap(processor))

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from transformers import (
            Qwen2VLConfig,
            Qwen2VLForConditionalGeneration,
            Qwen2VLImageProcessor,
            Qwen2VLProcessor,
            Qwen2VLVideoProcessor,
        )

        tokenizer = _qwen.tokenizer(corpus, spec.vocab_size)
        config = Qwen2VLConfig(
            vision_config={
                "depth": spec.vision_layers, "embed_dim": spec.vision_hidden, "hidden_size": spec.text_hidden,
                "mlp_ratio": 2, "num_heads": spec.heads, "patch_size": spec.patch_size,
                "spatial_merge_size": spec.token_merge,
                "temporal_patch_size": 2,
            },
            text_config=_qwen.text_config(spec, tokenizer, spec.text_hidden // spec.heads),
            **token_ids(tokenizer, **_qwen.MEDIA_TOKENS),
            tie_word_embeddings=False,
        )
        processor = _qwen.processors(spec, Qwen2VLImageProcessor, Qwen2VLVideoProcessor, tokenizer, Qwen2VLProcessor,
                                     _qwen.QWEN2_VL_CHAT_TEMPLATE, per_clip=False)
        return Qwen2VLForConditionalGeneration(config), processor


# The Qwen hub ids are the published Instruct checkpoints as named on the hub in 2025; no machine here
# reaches the hub, so they are not verified to download from here.
QWEN2_VL = register(Qwen2VL(
    name="qwen2-vl",
    model_types=("qwen2_vl",),
    hub_ids={"qwen2-vl-2b": "Qwen/Qwen2-VL-2B-Instruct", "qwen2-vl-7b": "Qwen/Qwen2-VL-7B-Instruct"},
    end_of_turn="<|im_end|>",
    vision_module="model.visual", projector_module="model.visual.merger",
    timestamps="none (M-RoPE time positions count temporal patches of 2 frames)",
    tiny_token_merge=True,
))
