"""Mobile-VideoGPT's model, processor and config classes (the family is `mobile_videogpt.py`, which imports this
module only when a Mobile-VideoGPT model is built or loaded: it needs torch and transformers).

Mobile-VideoGPT (Amshaker/Mobile-VideoGPT-0.5B, -1.5B): a Qwen2.5 language model fed by two towers.

- a CLIP ViT-B/16 image tower reads every frame (the "context" frames): its second-to-last layer's patch features go
  through the image ETP projector (MLP, average pooling to 12 x 12, a 3 x 3 depthwise convolution added back);
- per chunk of 8 frames, the 4 frames whose CLIP tokens receive the most attention from the chunk's tokens are
  picked; those 8 frames go through the VideoMamba video tower (`_videomamba.py`) as one clip, each frame's tokens
  are pooled to 7 x 7, and each chunk's 4 x 49 tokens go through the video ETP projector (laid out as a 14 x 14 grid,
  pooled to 7 x 7);
- the clip enters the prompt as the context frames' tokens followed by the chunks' tokens.

Frames: the seed's code samples 1 frame per second, at most 16 (spread over the 1 fps frames when there are more;
16 evenly spaced frames when the clip is shorter than 16 s); frames beyond 16 are thinned here the same way
(np.linspace over the given frames); clips with fewer are padded with zero frames to 16, as the seed pads them.

The classes below are registered with transformers' Auto classes, so that config.json's `model_type`
"MobileVideoGPT_qwen" loads through AutoConfig / AutoModelForImageTextToText with the checkpoints' own key names
(`model.layers.*`, `model.vision_tower.vision_encoder.*`, `model.image_vision_tower.vision_tower.vision_model.*`,
`model.mm_projector.*`, `model.image_mm_projector.*`). The released checkpoints carry no processor files: the
processor is built from config.json and the tokenizer (`load_processor`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoVideoProcessor,
    BatchFeature,
    CLIPImageProcessor,
    CLIPVisionConfig,
    PreTrainedConfig,
    ProcessorMixin,
    Qwen2Config,
)
from transformers import initialization as init
from transformers.configuration_utils import SubConfigSpec
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.models.clip.modeling_clip import CLIPEncoder, CLIPVisionEmbeddings
from transformers.models.qwen2.modeling_qwen2 import Qwen2ForCausalLM, Qwen2Model, Qwen2PreTrainedModel
from transformers.video_processing_utils import BaseVideoProcessor

from videotune.core.io import InputError
from videotune.core.models.families._videomamba import (
    BiMambaMixer,
    VideoMambaConfig,
    VideoMambaEncoder,
    VideoMambaTower,
    init_mixer,
)
from videotune.core.models.families.videollama3 import CHAT_TEMPLATE  # the same Qwen2.5 rendering, media then "\n"

# The seed renders a clip as "<image>" x frames + "\n" + question inside Qwen2.5's chat format (system "You are a
# helpful assistant."); here one placeholder per clip or image, which the processor expands to the feature count.
# Qwen2.5 tokenizers hold both tokens (ids 151655, 151656), unused by the released model otherwise.
IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"


@strict
class MobileVideoGPTQwenConfig(Qwen2Config):
    """The released config.json: Qwen2.5's keys plus the seed's `mm_*` keys. What the seed keeps in code (the tower
    architectures, frame counts, pool sizes) is here with the released values as defaults; the tiny variants write
    their own."""

    model_type = "MobileVideoGPT_qwen"
    sub_configs_defaults = {
        # openai/clip-vit-base-patch16, the seed's image tower
        "image_vision_config": SubConfigSpec(config_class=CLIPVisionConfig, init_kwargs={"patch_size": 16}),
        "video_vision_config": SubConfigSpec(config_class=VideoMambaConfig),
    }

    image_vision_config: dict | PreTrainedConfig | None = None
    video_vision_config: dict | PreTrainedConfig | None = None
    # keys the released config.json carries (the seed's training arguments)
    mm_vision_tower: str = "OpenGVLab/VideoMamba"
    image_mm_vision_tower: str = "openai/clip-vit-base-patch16"  # where the CLIP weights come from if the file lacks them
    mm_projector_type: str = "etp"
    image_mm_projector_type: str = "etp"
    mm_vision_select_layer: int = -2  # CLIP hidden state read (second to last layer)
    mm_vision_select_feature: str = "patch"  # its patch tokens (the class token dropped)
    # the seed's constants: NUM_FRAMES, CHUNK_SIZE, num_select_k_frames_in_chunk, and the ETP pool sides
    num_frames: int = 16
    chunk_size: int = 8
    num_select_k_frames_in_chunk: int = 4
    video_frame_pool_size: int = 7  # each selected frame's VideoMamba tokens, pooled to 7 x 7
    video_pool_size: int = 7  # the video ETP: a chunk's 4 x 49 tokens as a 14 x 14 grid, pooled to 7 x 7
    image_pool_size: int = 12  # the image ETP: CLIP's 14 x 14 patches pooled to 12 x 12
    image_token_id: int = 151655
    video_token_id: int = 151656

    def validate_architecture(self):
        super().validate_architecture()
        built = {"mm_projector_type": "etp", "image_mm_projector_type": "etp", "mm_vision_select_feature": "patch"}
        for key, value in built.items():
            if getattr(self, key) != value:
                raise ValueError(f"{key} {getattr(self, key)!r}: only the released {value!r} is built")
        if self.num_frames % self.chunk_size:
            raise ValueError(f"num_frames {self.num_frames} is not a whole number of chunks of {self.chunk_size}")
        if self.num_select_k_frames_in_chunk > self.chunk_size:
            raise ValueError(f"{self.num_select_k_frames_in_chunk} frames picked per chunk of {self.chunk_size}")
        video = self.video_vision_config
        if video is not None and self.num_frames // self.chunk_size * self.num_select_k_frames_in_chunk != video.num_frames:
            raise ValueError(f"VideoMamba takes {video.num_frames} frames, not chunks x picked frames")
        chunk_tokens = self.num_select_k_frames_in_chunk * self.video_frame_pool_size**2
        if math.isqrt(chunk_tokens) ** 2 != chunk_tokens:
            raise ValueError(f"a chunk's {chunk_tokens} video tokens do not form a square grid for the video ETP")


# ---------------------------------------------------------------------------------------------- model parts


def pool_tokens(x, side: int):
    """[n, tokens, dim] tokens laid out row by row on a square grid -> average-pooled to [n, side^2, dim]."""
    n, tokens, dim = x.shape
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ValueError(f"{tokens} tokens do not form a square grid")
    pooled = F.adaptive_avg_pool2d(x.transpose(1, 2).reshape(n, dim, grid, grid), side)
    return pooled.flatten(2).transpose(1, 2)


class DenseMLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, x):
        return self.mlp(x)


class PositionConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.peg = nn.Sequential(nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim))

    def forward(self, x):
        return self.peg(x)


class ETProjector(nn.Module):
    """The seed's ETP projector: MLP to the language model's width, the tokens as a square grid average-pooled to
    `pool` x `pool`, then a 3 x 3 depthwise convolution added back (a position encoding)."""

    def __init__(self, in_dim: int, out_dim: int, pool: int):
        super().__init__()
        self.pool = pool
        self.mlp = DenseMLP(in_dim, out_dim)
        self.peg = PositionConv(out_dim)

    def forward(self, x):
        """[n, tokens (a square number), in_dim] -> [n, pool^2, out_dim]."""
        x = pool_tokens(self.mlp(x), self.pool)
        n, tokens, dim = x.shape
        grid = x.transpose(1, 2).reshape(n, dim, self.pool, self.pool)
        return (grid + self.peg(grid)).flatten(2).transpose(1, 2)


class CLIPVisionTransformer(nn.Module):
    """CLIP's vision transformer from transformers' CLIP building blocks, under the checkpoints' names
    (`vision_model.embeddings`, `.pre_layrnorm`, `.encoder.layers.N`, `.post_layernorm`)."""

    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)  # unused: a hidden layer is read


class CLIPVisionTower(nn.Module):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.vision_model = CLIPVisionTransformer(config)


class CLIPTower(nn.Module):
    """The image tower as the checkpoints name it (`model.image_vision_tower.vision_tower.vision_model.*`)."""

    def __init__(self, config: CLIPVisionConfig, select_layer: int):
        super().__init__()
        self.vision_tower = CLIPVisionTower(config)
        layers = config.num_hidden_layers
        # hidden state `select_layer` (0: the embeddings, -1: the last layer's output): the layers to run
        self.n_layers = select_layer % (layers + 1)

    def forward(self, pixel_values):
        """[n, 3, H, W] -> the selected hidden state's patch features [n, patches, dim] (the class token dropped)."""
        vision = self.vision_tower.vision_model
        hidden = vision.embeddings(pixel_values.to(vision.embeddings.patch_embedding.weight.dtype))
        hidden = vision.pre_layrnorm(hidden)
        for layer in vision.encoder.layers[:self.n_layers]:
            hidden = layer(hidden, None)
        return hidden[:, 1:]


@torch.no_grad()
def select_frames(context_features, chunk_size: int, k: int):
    """The seed's attention-based frame scoring: per chunk of `chunk_size` frames, every token of the chunk attends
    to every token of the chunk (softmax of scaled dot products of the CLIP features); a frame's score is the
    attention its tokens receive, summed over all queries; the `k` best frames of each chunk are kept, in order.

    context_features [batch, frames, tokens, dim] -> frame indices within each chunk [batch, chunks, k].
    """
    batch, n_frames, tokens, dim = context_features.shape
    chunks = n_frames // chunk_size
    x = context_features.float().reshape(batch * chunks, chunk_size * tokens, dim)
    attention = torch.softmax(x @ x.transpose(1, 2) / math.sqrt(dim), dim=-1)  # [n, query, key]
    received = attention.sum(dim=1).reshape(batch * chunks, chunk_size, tokens).sum(dim=-1)
    best = received.topk(k, dim=-1).indices.sort(dim=-1).values
    return best.reshape(batch, chunks, k)


class _InitWeights:
    """Initialisation of the parts transformers' generic `_init_weights` does not know (random-weight builds, and
    CLIP's position ids, a buffer no checkpoint holds)."""

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, CLIPVisionEmbeddings):
            init.normal_(module.class_embedding, std=module.embed_dim**-0.5)
            init.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))
        elif isinstance(module, BiMambaMixer):
            init_mixer(module)
        elif isinstance(module, VideoMambaEncoder):
            for embedding in (module.cls_token, module.pos_embed, module.temporal_pos_embedding):
                init.trunc_normal_(embedding, std=0.02)


class MobileVideoGPTQwenModel(_InitWeights, Qwen2Model):
    """Qwen2's decoder with the towers and projectors beside it, named as in the checkpoints."""

    config_class = MobileVideoGPTQwenConfig

    def __init__(self, config: MobileVideoGPTQwenConfig):
        super().__init__(config)
        # CLIP's attention layers read their own config: it follows the model's (sdpa, eager, ...)
        config.image_vision_config._attn_implementation_internal = config._attn_implementation
        video, image = config.video_vision_config, config.image_vision_config
        self.vision_tower = VideoMambaTower(video)
        self.image_vision_tower = CLIPTower(image, config.mm_vision_select_layer)
        self.mm_projector = ETProjector(video.embed_dim, config.hidden_size, config.video_pool_size)
        self.image_mm_projector = ETProjector(image.hidden_size, config.hidden_size, config.image_pool_size)
        self.post_init()

    def get_image_features(self, pixel_values):
        """[images, 3, H, W] (CLIP-normalised) -> [images, image_pool^2, hidden]."""
        return self.image_mm_projector(self.image_vision_tower(pixel_values))

    def get_video_features(self, pixel_values_videos, pixel_values_context):
        """Both [clips, num_frames, 3, H, W]: the frames normalised for VideoMamba and for CLIP ->
        [clips, num_frames x image_pool^2 + chunks x video_pool^2, hidden]."""
        config = self.config
        clips, n_frames = pixel_values_context.shape[:2]
        if n_frames != config.num_frames or pixel_values_videos.shape[:2] != (clips, n_frames):
            raise ValueError(f"Mobile-VideoGPT takes {config.num_frames} frames per clip (padded), got "
                             f"{tuple(pixel_values_videos.shape[:2])} and {tuple(pixel_values_context.shape[:2])}")
        chunks, k = n_frames // config.chunk_size, config.num_select_k_frames_in_chunk
        context = self.image_vision_tower(pixel_values_context.flatten(0, 1))  # [clips x frames, patches, dim]
        context_tokens = self.image_mm_projector(context).reshape(clips, -1, config.hidden_size)
        picked = select_frames(context.reshape(clips, n_frames, *context.shape[1:]), config.chunk_size, k)
        frames = pixel_values_videos.reshape(clips, chunks, config.chunk_size, *pixel_values_videos.shape[2:])
        rows = torch.arange(clips, device=picked.device)[:, None, None]
        columns = torch.arange(chunks, device=picked.device)[None, :, None]
        selected = frames[rows, columns, picked].flatten(1, 2)  # [clips, chunks x k, 3, H, W], in time order
        video = self.vision_tower(selected)  # [clips, chunks x k, patches, dim]
        video = pool_tokens(video.flatten(0, 1), config.video_frame_pool_size)
        video = video.reshape(clips * chunks, -1, video.shape[-1])  # a chunk's k frames, frame after frame
        video_tokens = self.mm_projector(video).reshape(clips, -1, config.hidden_size)
        return torch.cat([context_tokens, video_tokens.to(context_tokens.dtype)], dim=1)


class MobileVideoGPTQwenForCausalLM(_InitWeights, Qwen2ForCausalLM):
    config_class = MobileVideoGPTQwenConfig
    _no_split_modules = ["Qwen2DecoderLayer", "VideoMambaBlock", "CLIPEncoderLayer"]
    _can_compile_fullgraph = False

    def __init__(self, config: MobileVideoGPTQwenConfig):
        Qwen2PreTrainedModel.__init__(self, config)  # Qwen2ForCausalLM's own would build a plain Qwen2Model first
        self.model = MobileVideoGPTQwenModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _scatter(self, input_ids, embeds, token_id: int, features, what: str):
        mask = input_ids == token_id
        if int(mask.sum()) != features.shape[0] * features.shape[1]:
            raise ValueError(f"{int(mask.sum())} {what} placeholder tokens for {features.shape[0]} x "
                             f"{features.shape[1]} {what} features")
        return embeds.masked_scatter(mask[..., None].to(embeds.device), features.to(embeds.device, embeds.dtype))

    def forward(self, input_ids=None, pixel_values=None, pixel_values_videos=None, pixel_values_context=None,
                attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None, labels=None,
                use_cache=None, logits_to_keep=0, **kwargs):
        """`pixel_values`: images for CLIP; `pixel_values_videos` / `pixel_values_context`: each clip's frames
        normalised for VideoMamba and for CLIP, [clips, num_frames, 3, H, W]."""
        if (pixel_values is not None or pixel_values_videos is not None) and input_ids is None:
            raise ValueError("media inputs need input_ids (their placeholder tokens)")
        if (pixel_values_videos is None) != (pixel_values_context is None):
            raise ValueError("pixel_values_videos and pixel_values_context come together")
        if inputs_embeds is None:
            inputs_embeds = self.model.embed_tokens(input_ids)
        if pixel_values_videos is not None:
            features = self.model.get_video_features(pixel_values_videos, pixel_values_context)
            inputs_embeds = self._scatter(input_ids, inputs_embeds, self.config.video_token_id, features, "video")
        if pixel_values is not None:
            features = self.model.get_image_features(pixel_values)
            inputs_embeds = self._scatter(input_ids, inputs_embeds, self.config.image_token_id, features, "image")
        return super().forward(attention_mask=attention_mask, position_ids=position_ids,
                               past_key_values=past_key_values, inputs_embeds=inputs_embeds, labels=labels,
                               use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs)

    def prepare_inputs_for_generation(self, *args, pixel_values_context=None, is_first_iteration=False, **kwargs):
        # the media enter with the prompt only; transformers already drops pixel_values(_videos) after it
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if is_first_iteration or not kwargs.get("use_cache", True):
            inputs["pixel_values_context"] = pixel_values_context
        return inputs


# ---------------------------------------------------------------------------------------------- processor


class MobileVideoGPTVideoProcessor(BaseVideoProcessor):
    """VideoMamba's frames: squeezed to the tower's square side (no crop, bilinear), ImageNet mean and std."""

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 224, "width": 224}
    rescale_factor = 1 / 255
    do_resize = True
    do_center_crop = False
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = False


class MobileVideoGPTProcessor(ProcessorMixin):
    """Prompts with one placeholder per clip or image, expanded to the model's feature count; frames for both
    towers (`video_processor`: VideoMamba's normalisation, `image_processor`: CLIP's), thinned to `num_frames`
    and zero-padded to it as the seed does; still images padded to a square with CLIP's mean colour and read by
    CLIP alone."""

    def __init__(self, image_processor=None, video_processor=None, tokenizer=None, chat_template=None,
                 num_frames: int = 16, chunk_size: int = 8, image_tokens: int = 144, video_tokens: int = 49, **kwargs):
        self.num_frames, self.chunk_size = num_frames, chunk_size
        self.image_tokens = image_tokens  # per image and per context frame
        self.video_tokens = video_tokens  # per chunk
        self.image_token, self.video_token = IMAGE_TOKEN, VIDEO_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        super().__init__(image_processor, video_processor, tokenizer, chat_template=chat_template, **kwargs)

    @property
    def tokens_per_clip(self) -> int:
        return self.num_frames * self.image_tokens + self.num_frames // self.chunk_size * self.video_tokens

    def clip_frames(self, video) -> list[np.ndarray]:
        """At most `num_frames` frames: more are thinned by np.linspace (the seed's rule over its 1 fps frames)."""
        frames = list(np.asarray(video))
        if len(frames) > self.num_frames:
            frames = [frames[i] for i in np.linspace(0, len(frames) - 1, self.num_frames, dtype=int)]
        return frames

    def _padded(self, pixels):
        """[n, 3, H, W] -> [num_frames, 3, H, W], zeros (after normalisation) after the clip's frames."""
        pad = pixels.new_zeros(self.num_frames - len(pixels), *pixels.shape[1:])
        return torch.cat([pixels, pad])

    def _square(self, image: np.ndarray) -> np.ndarray:
        """The seed's image_aspect_ratio "pad": the image centred on a square of CLIP's mean colour."""
        image = np.asarray(image)
        height, width = image.shape[:2]
        side = max(height, width)
        mean = np.asarray(self.image_processor.image_mean) * 255
        canvas = np.empty((side, side, 3), dtype=image.dtype)
        canvas[...] = mean.astype(int).astype(image.dtype)
        top, left = (side - height) // 2, (side - width) // 2
        canvas[top:top + height, left:left + width] = image
        return canvas

    def __call__(self, text=None, images=None, videos=None, video_metadata=None, do_sample_frames: bool = False,
                 return_tensors=None, **kwargs) -> BatchFeature:
        """`video_metadata` (frame times) is accepted and unused: the model sees no times beyond the prompt text.
        Frames are never resampled (`do_sample_frames` must stay False)."""
        if do_sample_frames:
            raise ValueError("MobileVideoGPTProcessor takes the frames as sampled (do_sample_frames=False)")
        texts = [text] if isinstance(text, str) else list(text or [])
        data: dict[str, Any] = {}
        if videos is not None:
            videomamba, context = [], []
            for video in videos:
                frames = self.clip_frames(video)
                if not frames:
                    raise ValueError("a clip with no frames")
                pixels = self.video_processor(videos=[np.stack(frames)], return_tensors="pt")["pixel_values_videos"][0]
                videomamba.append(self._padded(pixels))
                context.append(self._padded(self.image_processor(images=frames, return_tensors="pt")["pixel_values"]))
            data["pixel_values_videos"] = torch.stack(videomamba)
            data["pixel_values_context"] = torch.stack(context)
            texts = self._expand(texts, self.video_token, self.tokens_per_clip, len(videos), "clips")
        if images is not None:
            flat = [image for group in images for image in (group if isinstance(group, (list, tuple)) else [group])]
            squared = [self._square(image) for image in flat]
            data["pixel_values"] = self.image_processor(images=squared, return_tensors="pt")["pixel_values"]
            texts = self._expand(texts, self.image_token, self.image_tokens, len(flat), "images")
        data.update(self.tokenizer(texts, return_tensors=return_tensors, **kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _expand(texts: list[str], token: str, count: int, n_media: int, what: str) -> list[str]:
        placed = sum(t.count(token) for t in texts)
        if placed != n_media:
            raise ValueError(f"{n_media} {what} for {placed} {token} placeholders in the prompts")
        return [t.replace(token, token * count) for t in texts]


def build_processor(config: MobileVideoGPTQwenConfig, tokenizer: Any) -> MobileVideoGPTProcessor:
    """The processor of a Mobile-VideoGPT checkpoint, from its config and tokenizer (the released repositories ship
    no processor files: the seed builds CLIP's processor from openai/clip-vit-base-patch16 and VideoMamba's in code)."""
    side = int(config.video_vision_config.img_size)
    if int(config.image_vision_config.image_size) != side:
        raise InputError(f"the image tower takes {config.image_vision_config.image_size} px frames and the video "
                         f"tower {side} px; both read the same frames")
    for token, expected in ((IMAGE_TOKEN, config.image_token_id), (VIDEO_TOKEN, config.video_token_id)):
        found = tokenizer.convert_tokens_to_ids(token)
        if found != expected:
            raise InputError(f"the tokenizer gives {token} id {found}; config.json expects {expected}")
    # openai/clip-vit-base-patch16's preprocessor_config.json: shortest edge to 224 (bicubic), centre crop 224
    image_processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    video_processor = MobileVideoGPTVideoProcessor(size={"height": side, "width": side})
    return MobileVideoGPTProcessor(
        image_processor=image_processor, video_processor=video_processor, tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE, num_frames=config.num_frames, chunk_size=config.chunk_size,
        image_tokens=config.image_pool_size**2, video_tokens=config.video_pool_size**2,
    )


AutoConfig.register(MobileVideoGPTQwenConfig.model_type, MobileVideoGPTQwenConfig)
AutoModelForImageTextToText.register(MobileVideoGPTQwenConfig, MobileVideoGPTQwenForCausalLM)
AutoModelForCausalLM.register(MobileVideoGPTQwenConfig, MobileVideoGPTQwenForCausalLM)
AutoVideoProcessor.register(MobileVideoGPTQwenConfig, MobileVideoGPTVideoProcessor)
AutoProcessor.register(MobileVideoGPTQwenConfig, MobileVideoGPTProcessor)
