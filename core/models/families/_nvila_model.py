"""NVILA-Lite as transformers classes: a SigLIP tower, the 3 x 3 downsampling MLP projector and a Qwen2 language model.

`NvilaForConditionalGeneration` holds the three parts under the names its published folders load into
(`model.vision_tower` <- vision_tower/, `model.mm_projector` <- mm_projector/, `model.language_model` and `lm_head`
<- llm/; see families/nvila.py). `NvilaProcessor` lays media out in the token sequence as NVILA's inference does:
each frame (or image tile) is its projected tokens followed by the embedding of "\\n".

Registered with transformers' Auto classes (model_type "nvila"): a fine-tuned or quantized NVILA saved with
`save_pretrained` is one ordinary transformers checkpoint that `AutoModelForImageTextToText` and `AutoProcessor`
read again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.feature_extraction_utils import BatchFeature
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.processing_utils import ProcessorMixin

PROJECTOR_TYPE = "mlp_downsample_3x3_fix"  # the one projector NVILA-Lite publishes (mm_projector/config.json)
DOWNSAMPLE = 3  # the projector merges 3 x 3 neighbouring patches into one token


class NvilaConfig(PreTrainedConfig):
    """The language model's and the vision tower's configs, how the tower's output is taken, the media token ids."""

    model_type = "nvila"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="siglip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
    }
    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_type: str = PROJECTOR_TYPE
    vision_feature_layer: int = -2  # the tower's hidden state the projector reads (NVILA: mm_vision_select_layer)
    image_token_id: int = 151649  # <image>: still-image tiles
    video_token_id: int = 151650  # <vila/video>: video frames
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Qwen2.5's small models tie the LM head to the embeddings; the language model's config says so
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True


def downsample_3x3(features: torch.Tensor) -> torch.Tensor:
    """[n, side * side, c] patch features -> [n, ceil(side / 3) ** 2, 9 c]: each token concatenates a 3 x 3 block of
    patches, row by row (patch (r, s) of the block at channels (3 r + s) c ... (3 r + s + 1) c), blocks in row-major
    order. Sides that are not a multiple of 3 are padded with zero patches after the last row and column."""
    n, tokens, channels = features.shape
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"downsample_3x3: {tokens} patches do not form a square grid")
    pad = -side % DOWNSAMPLE
    grid = features.reshape(n, side, side, channels)
    if pad:
        grid = nn.functional.pad(grid, (0, 0, 0, pad, 0, pad))
    blocks = (side + pad) // DOWNSAMPLE
    grid = grid.reshape(n, blocks, DOWNSAMPLE, blocks, DOWNSAMPLE, channels).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(n, blocks * blocks, DOWNSAMPLE * DOWNSAMPLE * channels)


class Downsample3x3(nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return downsample_3x3(features)


class NvilaProjector(nn.Module):
    """mlp_downsample_3x3_fix: 3 x 3 merge, then LayerNorm, Linear(9c, 3c), GELU, LayerNorm, Linear(3c, d), GELU,
    Linear(d, d). The module indices are the published ones (mm_projector/model.safetensors: layers.1, .2, .4, .5, .7)."""

    def __init__(self, config: NvilaConfig):
        super().__init__()
        if config.projector_type != PROJECTOR_TYPE:
            raise ValueError(f"projector type {config.projector_type!r}: only {PROJECTOR_TYPE} is implemented")
        vision, text = config.vision_config.hidden_size, config.text_config.hidden_size
        self.layers = nn.Sequential(
            Downsample3x3(),
            nn.LayerNorm(9 * vision), nn.Linear(9 * vision, 3 * vision), nn.GELU(),
            nn.LayerNorm(3 * vision), nn.Linear(3 * vision, text), nn.GELU(),
            nn.Linear(text, text),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class NvilaPreTrainedModel(PreTrainedModel):
    config_class = NvilaConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen2DecoderLayer", "SiglipEncoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True


class NvilaModel(NvilaPreTrainedModel):
    def __init__(self, config: NvilaConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.mm_projector = NvilaProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_media_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, side, side] frames or tiles -> [n, tokens, d]: the tower's chosen hidden state (every patch: SigLIP
        has no class token), projected."""
        tower = self.vision_tower(pixel_values.to(self.vision_tower.dtype), output_hidden_states=True)
        return self.mm_projector(tower.hidden_states[self.config.vision_feature_layer])

    def _insert(self, embeds: torch.Tensor, input_ids: torch.Tensor, token_id: int, pixels: torch.Tensor,
                what: str) -> torch.Tensor:
        features = self.get_media_features(pixels).flatten(0, 1)
        slots = input_ids == token_id
        if int(slots.sum()) != features.shape[0]:
            raise ValueError(f"{int(slots.sum())} {what} placeholder tokens for {features.shape[0]} {what} features")
        mask = slots.unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, features.to(embeds.device, embeds.dtype))

    def forward(self, input_ids: torch.LongTensor | None = None, pixel_values: torch.Tensor | None = None,
                pixel_values_videos: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, past_key_values: Any = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        for pixels, token_id, what in ((pixel_values, self.config.image_token_id, "image"),
                                       (pixel_values_videos, self.config.video_token_id, "video")):
            if pixels is not None:
                if input_ids is None:
                    raise ValueError(f"{what} pixels need input_ids to find their placeholder tokens")
                inputs_embeds = self._insert(inputs_embeds, input_ids, token_id, pixels, what)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                                   past_key_values=past_key_values, use_cache=use_cache, **kwargs)


class NvilaForConditionalGeneration(NvilaPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: NvilaConfig):
        super().__init__(config)
        self.model = NvilaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(self, input_ids: torch.LongTensor | None = None, pixel_values: torch.Tensor | None = None,
                pixel_values_videos: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, past_key_values: Any = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                **kwargs: Any) -> CausalLMOutputWithPast:
        outputs = self.model(input_ids=input_ids, pixel_values=pixel_values, pixel_values_videos=pixel_values_videos,
                             attention_mask=attention_mask, position_ids=position_ids, past_key_values=past_key_values,
                             inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)


# ---------------------------------------------------------------------------------------------------- processor


def closest_grid(width: int, height: int, side: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """(columns, rows) of the tile grid for a still image: the grid whose aspect ratio is closest to the image's
    among those with min_tiles..max_tiles tiles (fewest tiles first); on a tie the larger grid wins when the image
    has more than half the larger grid's pixels (NVILA's dynamic resolution, after InternVL)."""
    grids = sorted({(c, r) for n in range(min_tiles, max_tiles + 1) for c in range(1, n + 1) for r in range(1, n + 1)
                    if min_tiles <= c * r <= max_tiles}, key=lambda g: g[0] * g[1])
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for columns, rows in grids:
        diff = abs(aspect - columns / rows)
        if diff < best_diff:
            best, best_diff = (columns, rows), diff
        elif diff == best_diff and width * height > 0.5 * side * side * columns * rows:
            best = (columns, rows)
    return best


def image_tiles(image: np.ndarray, side: int, min_tiles: int, max_tiles: int) -> list[np.ndarray]:
    """A still image as side x side tiles: resized to the closest grid, cut row by row, plus the whole image at
    side x side when there is more than one tile (bicubic resizing, as PIL's default)."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    columns, rows = closest_grid(picture.width, picture.height, side, min_tiles, max_tiles)
    grid = picture.resize((side * columns, side * rows), Image.Resampling.BICUBIC)
    tiles = [np.array(grid.crop((c * side, r * side, (c + 1) * side, (r + 1) * side)))
             for r in range(rows) for c in range(columns)]
    if len(tiles) > 1:
        tiles.append(np.array(picture.resize((side, side), Image.Resampling.BICUBIC)))
    return tiles


class NvilaProcessor(ProcessorMixin):
    """Prompts with video frames and still images, as NVILA lays them out.

    The chat prompt is rendered by the checkpoint's own tokenizer template, media parts becoming the media tokens
    in place (`<vila/video>` for a clip, `<image>` for a still image) and each message stripped, as NVILA renders
    its conversations. Calling the processor expands each clip to, per frame, `media_start` + tokens_per_tile
    `<vila/video>` placeholders + `media_end` ("\\n"), and each still image to its tiles laid out the same way
    with placeholders `<image>` (a prompt's only image is tiled and each tile followed by one more "\\n", as
    NVILA's inference does; several images in one prompt are one tile each). Text between media is tokenized
    piece by piece, so the "\\n" after a frame is always its own token.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, patch_size: int = 14,
                 image_token: str = "<image>", video_token: str = "<vila/video>", media_start: str | None = None,
                 media_end: str | None = "\n", min_tiles: int = 1, max_tiles: int = 12, **kwargs):
        self.patch_size = patch_size
        self.image_token, self.video_token = image_token, video_token
        self.media_start, self.media_end = media_start, media_end
        self.min_tiles, self.max_tiles = min_tiles, max_tiles
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(video_token)

    @property
    def tile_side(self) -> int:
        return int(self.image_processor.size["height"])

    @property
    def tokens_per_tile(self) -> int:
        return math.ceil((self.tile_side // self.patch_size) / 3) ** 2

    def apply_chat_template(self, conversation: Sequence[dict[str, Any]], chat_template: str | None = None,
                            **kwargs: Any) -> str:
        if kwargs.pop("tokenize", False):
            raise ValueError("NvilaProcessor renders the prompt text only (tokenize=False); the processor call "
                             "tokenizes it with its media")
        messages = [{"role": m["role"], "content": self._flatten(m["content"])} for m in conversation]
        return self.tokenizer.apply_chat_template(messages, chat_template=chat_template, tokenize=False, **kwargs)

    def _flatten(self, content: Any) -> str:
        if isinstance(content, str):
            return content.strip()
        parts = []
        for item in content:
            kind = item.get("type")
            if kind == "video":
                parts.append(self.video_token)
            elif kind == "image":
                parts.append(self.image_token)
            elif kind == "text":
                parts.append(item["text"])
            else:
                raise ValueError(f"NvilaProcessor: message content of type {kind!r}")
        return "".join(parts).strip()

    def _ids(self, text: str | None) -> list[int]:
        return [] if not text else self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def media_ids(self, token_id: int) -> list[int]:
        return self._ids(self.media_start) + [token_id] * self.tokens_per_tile + self._ids(self.media_end)

    def __call__(self, images: Any = None, text: str | Sequence[str] | None = None, videos: Any = None,
                 video_metadata: Any = None, do_sample_frames: bool | None = None, padding: bool | str = False,
                 return_tensors: str | None = None, **kwargs: Any) -> BatchFeature:
        """`videos`: one [frames, h, w, 3] uint8 array per `<vila/video>` token, in order; `images`: per prompt,
        the list of its still images. Frame times reach NVILA through the prompt text only (video_metadata and
        do_sample_frames are accepted and unused: the frames given are the frames used)."""
        if text is None:
            raise ValueError("NvilaProcessor needs the prompt text")
        texts = [text] if isinstance(text, str) else list(text)
        videos = list(videos) if videos is not None else []
        per_prompt_images = [list(i) if isinstance(i, (list, tuple)) else [i] for i in images] if images is not None else []
        if per_prompt_images and len(per_prompt_images) != len(texts):
            raise ValueError(f"{len(texts)} prompts but images for {len(per_prompt_images)}")
        split = re.compile(f"({re.escape(self.image_token)}|{re.escape(self.video_token)})")
        newline = self._ids("\n")
        video_iter = iter(videos)
        rows, frames, tiles = [], [], []
        for row, prompt in enumerate(texts):
            prompt_images = iter(per_prompt_images[row] if per_prompt_images else [])
            tile_alone = prompt.count(self.image_token) == 1
            ids: list[int] = []
            for piece in split.split(prompt):
                if piece == self.video_token:
                    clip = next(video_iter, None)
                    if clip is None:
                        raise ValueError("more <vila/video> tokens than videos")
                    clip = np.asarray(clip)
                    frames.extend(clip)
                    ids += self.media_ids(self.video_token_id) * len(clip)
                elif piece == self.image_token:
                    image = next(prompt_images, None)
                    if image is None:
                        raise ValueError(f"prompt {row}: more <image> tokens than images")
                    cut = (image_tiles(image, self.tile_side, self.min_tiles, self.max_tiles) if tile_alone
                           else [np.asarray(image)])
                    tiles.extend(cut)
                    ids += (self.media_ids(self.image_token_id) + (newline if tile_alone else [])) * len(cut)
                else:
                    ids += self._ids(piece)
            if next(prompt_images, None) is not None:
                raise ValueError(f"prompt {row}: more images than <image> tokens")
            rows.append(ids)
        if next(video_iter, None) is not None:
            raise ValueError("more videos than <vila/video> tokens")
        data = dict(self.tokenizer.pad({"input_ids": rows}, padding=padding or "longest", return_tensors=return_tensors))
        if frames:
            data["pixel_values_videos"] = self.image_processor(images=frames, return_tensors="pt")["pixel_values"]
        if tiles:
            data["pixel_values"] = self.image_processor(images=tiles, return_tensors="pt")["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)


AutoConfig.register(NvilaConfig.model_type, NvilaConfig)
AutoModelForImageTextToText.register(NvilaConfig, NvilaForConditionalGeneration)
AutoProcessor.register(NvilaConfig, NvilaProcessor)
