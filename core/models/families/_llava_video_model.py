"""LLaVA-Video's video path on transformers' LLaVA-OneVision classes.

LLaVA-Video (LLaVA-NeXT's llava_qwen) and LLaVA-OneVision share the SigLIP tower, the 2-layer projector, the
Qwen2 language model, the still-image path (anyres tiles, unpadded, a newline per row) and every parameter name
once mapped. They differ in how a clip's frames become tokens: LLaVA-NeXT pools each frame's projected 27 x 27
grid 2 x 2 (average, max or bilinear: config.json's mm_spatial_pool_mode) and places `image_newline`
per row, per frame, once per clip or nowhere (mm_newline_position); transformers' LLaVA-OneVision fixes bilinear
pooling and one newline per clip. `LlavaVideoModel` replaces only the video path, configured by those two keys;
with bilinear and one_token it computes what `LlavaOnevisionModel` computes.

Registered with transformers' Auto classes (model_type "llava_video"), so a fine-tuned LLaVA-Video saved with
`save_pretrained` is an ordinary transformers checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionModel,
    LlavaOnevisionProcessor,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionPreTrainedModel

POOL_MODES = ("average", "max", "bilinear")
NEWLINE_POSITIONS = ("grid", "frame", "one_token", "no_token")


class LlavaVideoConfig(LlavaOnevisionConfig):
    model_type = "llava_video"
    spatial_pool_mode: Literal["average", "max", "bilinear"] = "bilinear"
    spatial_pool_stride: int = 2
    newline_position: Literal["grid", "frame", "one_token", "no_token"] = "one_token"


def pooled_side(side: int, mode: str, stride: int) -> int:
    """A frame's grid side after pooling: average and max pooling drop a partial last window, bilinear rounds up."""
    return math.ceil(side / stride) if mode == "bilinear" else side // stride


def frame_tokens(side: int, mode: str, stride: int, newline_position: str) -> tuple[int, int]:
    """(tokens per frame, extra tokens per clip) for a side x side patch grid."""
    pooled = pooled_side(side, mode, stride)
    per_frame = pooled * pooled + {"grid": pooled, "frame": 1}.get(newline_position, 0)
    return per_frame, int(newline_position == "one_token")


def pool_frames(features: torch.Tensor, mode: str, stride: int) -> torch.Tensor:
    """[frames, side * side, c] -> [frames, side', side', c], pooled over stride x stride windows."""
    frames, tokens, channels = features.shape
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"pool_frames: {tokens} tokens do not form a square grid")
    grid = features.reshape(frames, side, side, channels).permute(0, 3, 1, 2)
    if mode == "average":
        grid = nn.functional.avg_pool2d(grid, stride)
    elif mode == "max":
        grid = nn.functional.max_pool2d(grid, stride)
    elif mode == "bilinear":
        pooled = pooled_side(side, mode, stride)
        grid = nn.functional.interpolate(grid, size=(pooled, pooled), mode="bilinear")
    else:
        raise ValueError(f"spatial pool mode {mode!r}: one of {', '.join(POOL_MODES)}")
    return grid.permute(0, 2, 3, 1)


def place_newlines(frames: torch.Tensor, newline: torch.Tensor, position: str) -> torch.Tensor:
    """[frames, h, w, c] pooled frames of one clip -> [tokens, c] in sequence order: frame by frame, row by row, with
    `newline` after each row (grid), after each frame (frame), once after the clip (one_token) or nowhere."""
    n, h, w, c = frames.shape
    newline = newline.to(frames.dtype)
    if position == "grid":
        rows = torch.cat([frames, newline.expand(n, h, 1, c)], dim=2)
        return rows.reshape(-1, c)
    flat = frames.reshape(n, h * w, c)
    if position == "frame":
        return torch.cat([flat, newline.expand(n, 1, c)], dim=1).reshape(-1, c)
    if position == "one_token":
        return torch.cat([flat.reshape(-1, c), newline.reshape(1, c)], dim=0)
    if position == "no_token":
        return flat.reshape(-1, c)
    raise ValueError(f"newline position {position!r}: one of {', '.join(NEWLINE_POSITIONS)}")


class LlavaVideoModel(LlavaOnevisionModel):
    config_class = LlavaVideoConfig

    def get_video_features(self, pixel_values_videos: torch.Tensor, vision_feature_layer: Any = None,
                           vision_feature_select_strategy: str | None = None, **kwargs: Any) -> BaseModelOutputWithPooling:
        """[batch, frames, 3, h, w] -> pooler_output [batch, tokens, d]: projected patches, pooled and laid out with
        newlines as LLaVA-NeXT lays out a video."""
        config = self.config
        layer = config.vision_feature_layer if vision_feature_layer is None else vision_feature_layer
        strategy = vision_feature_select_strategy or config.vision_feature_select_strategy
        batch, frames, channels, height, width = pixel_values_videos.shape
        outputs = self.vision_tower(pixel_values_videos.reshape(batch * frames, channels, height, width),
                                    output_hidden_states=True, return_dict=True)
        if isinstance(layer, int):
            selected = outputs.hidden_states[layer]
        else:
            selected = torch.cat([outputs.hidden_states[i] for i in layer], dim=-1)
        if strategy == "default":
            selected = selected[:, 1:]
        pooled = pool_frames(self.multi_modal_projector(selected), config.spatial_pool_mode, config.spatial_pool_stride)
        pooled = pooled.reshape(batch, frames, *pooled.shape[1:])
        outputs.pooler_output = torch.stack(
            [place_newlines(clip, self.image_newline, config.newline_position) for clip in pooled])
        return outputs


class LlavaVideoForConditionalGeneration(LlavaOnevisionForConditionalGeneration):
    config_class = LlavaVideoConfig

    def __init__(self, config: LlavaVideoConfig):
        LlavaOnevisionPreTrainedModel.__init__(self, config)
        self.model = LlavaVideoModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()


class LlavaVideoProcessor(LlavaOnevisionProcessor):
    """LLaVA-OneVision's processor with LLaVA-Video's count of video tokens (its pooling and newline placement)."""

    def __init__(self, image_processor=None, tokenizer=None, video_processor=None, num_image_tokens=None,
                 vision_feature_select_strategy=None, chat_template=None, image_token="<image>", video_token="<video>",
                 vision_aspect_ratio="anyres_max_9", spatial_pool_mode: str = "bilinear", spatial_pool_stride: int = 2,
                 newline_position: str = "one_token", **kwargs):
        self.spatial_pool_mode = spatial_pool_mode
        self.spatial_pool_stride = spatial_pool_stride
        self.newline_position = newline_position
        super().__init__(image_processor, tokenizer, video_processor, num_image_tokens=num_image_tokens,
                         vision_feature_select_strategy=vision_feature_select_strategy, chat_template=chat_template,
                         image_token=image_token, video_token=video_token, vision_aspect_ratio=vision_aspect_ratio,
                         **kwargs)

    def video_tokens(self, num_frames: int) -> int:
        per_frame, per_clip = frame_tokens(math.isqrt(self.num_image_tokens), self.spatial_pool_mode,
                                           self.spatial_pool_stride, self.newline_position)
        return num_frames * per_frame + per_clip

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs: Any) -> str:
        processed = video_inputs["pixel_values_videos"][video_idx]
        frames = len(processed) if isinstance(processed, (list, tuple)) else processed.shape[0]
        return self.video_token * self.video_tokens(frames)

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, **kwargs):
        data = super()._get_num_multimodal_tokens(image_sizes=image_sizes, **kwargs)
        if video_sizes is not None:
            data.num_video_tokens = [self.video_tokens(frames) for frames, _, _ in video_sizes]
        return data


AutoConfig.register(LlavaVideoConfig.model_type, LlavaVideoConfig)
AutoModelForImageTextToText.register(LlavaVideoConfig, LlavaVideoForConditionalGeneration)
AutoProcessor.register(LlavaVideoConfig, LlavaVideoProcessor)
