"""LLaVA-Video (LLaVA-NeXT's llava_qwen, lmms-lab/LLaVA-Video-7B-Qwen2): SigLIP, a 2-layer MLP, Qwen2.

Checkpoints load as lmms-lab publish them — LLaVA-NeXT's own config.json (model_type "llava", the Qwen2 keys at
the top level beside mm_* keys) and tensor names (`model.vision_tower.vision_tower.vision_model.*`,
`model.mm_projector.0/2`, `model.image_newline`, `model.layers.*`, `lm_head`) — straight into transformers'
LLaVA-OneVision classes: `KEY_MAP` renames each tensor at load time (no conversion step), `config_from_layout`
builds the LLaVA-OneVision config from those keys, and `LlavaVideoModel` (families/_llava_video_model.py) keeps
LLaVA-NeXT's video path (pooling and newline placement read from mm_spatial_pool_mode and mm_newline_position).
The checkpoint ships no transformers processor: `processor_from_layout` builds LLaVA-OneVision's processors from
its tokenizer files, SigLIP's settings (384 px, bicubic, scaled to [-1, 1]) and the Qwen chat format LLaVA-NeXT
prompts with (conv template qwen_1_5).

A fine-tuned or quantized model is written with `save_pretrained` in videotune's registered transformers format
(model_type "llava_video"), which `resolve` and `load` read like any checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.families import _published, _qwen
from videotune.core.models.families.llava_onevision import LlavaOnevision
from videotune.core.models.family import register
from videotune.core.models.tiny import TinySpec, train_tokenizer

PUBLISHED_TYPES = ("llava", "llava_qwen")  # LLaVA-NeXT's config model_type (LlavaQwenConfig: llava_qwen)
OWN_TYPE = "llava_video"

# (published prefix, prefix of LlavaVideoForConditionalGeneration's parameter names): the first match renames
KEY_MAP = (
    # transformers 5's SiglipVisionModel holds the transformer itself: no `vision_model.` level in its names
    ("model.vision_tower.vision_tower.vision_model.", "model.vision_tower."),
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.image_newline", "model.image_newline"),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
LAYER = re.compile(r"^model\.vision_tower\.vision_tower\.vision_model\.encoder\.layers\.(\d+)\.")

# LLaVA-NeXT builds SigLIP from the tower's own hub repo; its SigLipVisionConfig defaults are that repo's values
# (so400m-patch14-384). The layer count is read from the checkpoint: LLaVA-NeXT drops the tower's last layer.
SIGLIP_TOWERS = {
    "google/siglip-so400m-patch14-384": {
        "hidden_size": 1152, "intermediate_size": 4304, "num_attention_heads": 16, "image_size": 384,
        "patch_size": 14, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
    },
}

# Qwen2's architecture keys, which LLaVA-NeXT's config.json carries at its top level
TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps",
             "rope_theta", "rope_scaling", "use_sliding_window", "sliding_window", "max_window_layers",
             "attention_dropout", "tie_word_embeddings", "bos_token_id", "eos_token_id")

IMAGE_TOKEN, VIDEO_TOKEN = "<image>", "<video>"

# LLaVA-NeXT's conv template qwen_1_5 for one user turn: system "You are a helpful assistant.", ChatML turns. A
# video is its token directly followed by the text (LLaVA-Video's inference: "<image>" + time instruction +
# question); a still image is "<image>\n" + text, as LLaVA-OneVision prompts.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>' }}{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ---------------------------------------------------------------------------------------------- the published layout


def _check(top: dict[str, Any], root: Path) -> None:
    where = f"{root}/config.json"
    if "mm_vision_tower" not in top or "mm_projector_type" not in top:
        kind = "a transformers-format LLaVA checkpoint (llava-hf)" if "text_config" in top else "not LLaVA-NeXT's layout"
        raise InputError(f"{where}: {kind}: no mm_vision_tower / mm_projector_type; the llava-video family reads "
                         "LLaVA-NeXT checkpoints (LlavaQwenForCausalLM)")
    if "siglip" not in str(top["mm_vision_tower"]):
        raise InputError(f"{where}: mm_vision_tower {top['mm_vision_tower']!r}; only SigLIP towers are ported")
    if top["mm_projector_type"] != "mlp2x_gelu":
        raise InputError(f"{where}: mm_projector_type {top['mm_projector_type']!r}; only mlp2x_gelu is ported")
    if top.get("mm_patch_merge_type", "spatial_unpad") != "spatial_unpad":
        raise InputError(f"{where}: mm_patch_merge_type {top['mm_patch_merge_type']!r}; only spatial_unpad is ported")
    if top.get("add_faster_video"):
        raise InputError(f"{where}: add_faster_video is set; LLaVA-Video's faster-token path is not ported")
    mode = top.get("mm_spatial_pool_mode")
    if mode not in ("average", "max", "bilinear"):
        raise InputError(f"{where}: mm_spatial_pool_mode {mode!r}: LLaVA-NeXT's video path needs average, max or "
                         "bilinear")
    if top.get("mm_newline_position", "one_token") not in ("grid", "frame", "one_token", "no_token"):
        raise InputError(f"{where}: mm_newline_position {top['mm_newline_position']!r}: grid, frame, one_token or "
                         "no_token")
    pinpoints = top.get("image_grid_pinpoints")
    if not isinstance(pinpoints, list) or not all(isinstance(p, list) and len(p) == 2 for p in pinpoints):
        raise InputError(f"{where}: image_grid_pinpoints must be a list of [height, width] pairs")


def read_layout(root: Path) -> dict[str, Any]:
    top = _published.read_json(root / "config.json")
    _check(top, root)
    return top


def vision_config(top: dict[str, Any], root: Path) -> dict[str, Any]:
    """SigLIP's config: the tower's published settings (or the checkpoint's own `vision_config` block, which
    videotune's tiny variant writes since its tower is no published one), with the checkpoint's layer count."""
    settings = top.get("vision_config") or SIGLIP_TOWERS.get(top["mm_vision_tower"])
    if settings is None:
        raise InputError(f"{root}/config.json: mm_vision_tower {top['mm_vision_tower']!r} is not a SigLIP tower whose "
                         f"settings are known ({', '.join(SIGLIP_TOWERS)})")
    layers = {int(m.group(1)) for name in _published.tensor_names(root) if (m := LAYER.match(name))}
    if not layers:
        raise InputError(f"{root}: no vision tower layers among the weights")
    return {**settings, "model_type": "siglip_vision_model", "num_hidden_layers": max(layers) + 1,
            "vision_use_head": False}


def tokenizer_from_layout(root: Path) -> Any:
    """The checkpoint's tokenizer with LLaVA-OneVision's media placeholders appended (LLaVA-NeXT splices media in by
    position and ships none; Qwen2's padded embedding table has rows for them, checked against the model)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root)
    vocab = tokenizer.get_vocab()
    missing = [t for t in (IMAGE_TOKEN, VIDEO_TOKEN) if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer


def config_from_layout(top: dict[str, Any], root: Path, tokenizer: Any) -> Any:
    from transformers import Qwen2Config

    from videotune.core.models.families._llava_video_model import LlavaVideoConfig

    text = Qwen2Config(**{k: top[k] for k in TEXT_KEYS if k in top})
    image_id, video_id = (tokenizer.convert_tokens_to_ids(t) for t in (IMAGE_TOKEN, VIDEO_TOKEN))
    if max(image_id, video_id) >= text.vocab_size:
        raise InputError(f"{root}: the media placeholders' ids ({image_id}, {video_id}) lie beyond the language "
                         f"model's {text.vocab_size} embeddings")
    return LlavaVideoConfig(
        vision_config=vision_config(top, root), text_config=text, image_token_index=image_id,
        video_token_index=video_id, projector_hidden_act="gelu", multimodal_projector_bias=True,
        # LLaVA-NeXT's SigLIP tower: every patch (no class token) of the last kept layer
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=top["image_grid_pinpoints"],
        vision_aspect_ratio=top.get("image_aspect_ratio", "anyres_max_9"),
        tie_word_embeddings=bool(top.get("tie_word_embeddings", False)),
        spatial_pool_mode=top["mm_spatial_pool_mode"],
        # LLaVA-NeXT's video path calls get_2dPool with its default stride 2 (mm_spatial_pool_stride is not read there)
        spatial_pool_stride=2,
        newline_position=top.get("mm_newline_position", "one_token"),
    )


def processor_from_config(config: Any, tokenizer: Any) -> Any:
    """LLaVA-OneVision's image and video processors at SigLIP's settings, the tokenizer, the chat format."""
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionVideoProcessor

    from videotune.core.models.families._llava_video_model import LlavaVideoProcessor

    side, patch = int(config.vision_config.image_size), int(config.vision_config.patch_size)
    siglip = {"size": {"height": side, "width": side}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    return LlavaVideoProcessor(
        image_processor=LlavaOnevisionImageProcessor(image_grid_pinpoints=config.image_grid_pinpoints, **siglip),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(do_sample_frames=False, **siglip),
        num_image_tokens=(side // patch) ** 2, vision_feature_select_strategy="full", chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN, video_token=VIDEO_TOKEN, vision_aspect_ratio=config.vision_aspect_ratio,
        spatial_pool_mode=config.spatial_pool_mode, spatial_pool_stride=config.spatial_pool_stride,
        newline_position=config.newline_position,
    )


def state_from_layout(root: Path) -> dict[str, Any]:
    tensors = _published.read_tensors(root)
    return {ours: tensors[name] for name, ours in _published.rename(tensors, KEY_MAP, str(root)).items()}


def save_layout(model: Any, processor: Any, out_dir: Path) -> Path:
    """Write `model` in LLaVA-NeXT's layout (the tiny variant: the loader real checkpoints go through reads it back):
    config.json with the keys the loader reads, LLaVA-NeXT's tensor names, the tokenizer files."""
    config = model.config
    state = dict(model.state_dict())
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    tensors = _published.split_state(state, [("", published, ours) for published, ours in KEY_MAP])[""]
    text = config.text_config.to_dict()
    vision = config.vision_config
    top = {k: text[k] for k in TEXT_KEYS if text.get(k) is not None}
    top.update({
        "model_type": "llava", "architectures": ["LlavaQwenForCausalLM"],
        "rope_theta": config.text_config.rope_parameters["rope_theta"],
        "mm_vision_tower": "videotune/tiny-siglip",
        "vision_config": {k: getattr(vision, k) for k in SIGLIP_TOWERS["google/siglip-so400m-patch14-384"]},
        "mm_hidden_size": vision.hidden_size, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch", "mm_patch_merge_type": "spatial_unpad", "use_mm_proj": True,
        "image_aspect_ratio": config.vision_aspect_ratio, "image_grid_pinpoints": config.image_grid_pinpoints,
        "mm_spatial_pool_mode": config.spatial_pool_mode, "mm_spatial_pool_stride": config.spatial_pool_stride,
        "mm_newline_position": config.newline_position, "add_faster_video": False, "add_time_instruction": True,
        "tie_word_embeddings": config.tie_word_embeddings,
    })
    _published.write_json(out_dir / "config.json", top)
    _published.write_tensors(out_dir / "model.safetensors", tensors)
    processor.tokenizer.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    return out_dir


# ------------------------------------------------------------------------------------------------------- the family


def _model_type(root: Path) -> str:
    return str(_published.read_json(root / "config.json").get("model_type", ""))


@dataclass(frozen=True)
class LlavaVideo(LlavaOnevision):
    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        """Tokens a frame adds to the sequence: its pooled grid and the newlines placed per row or per frame."""
        from videotune.core.models.families._llava_video_model import frame_tokens

        trained = int(model_config.vision_config.image_size)
        if size != trained:
            raise InputError(f"frame size {size} px: LLaVA-Video's vision tower has position embeddings for {trained} px "
                             "frames only")
        side = size // int(model_config.vision_config.patch_size)
        return frame_tokens(side, model_config.spatial_pool_mode, model_config.spatial_pool_stride,
                            model_config.newline_position)[0]

    def load_processor(self, source: str, trust_remote_code: bool = False) -> Any:
        from videotune.core.models.families._llava_video_model import LlavaVideoProcessor

        root = _published.local_dir(source)
        if _model_type(root) == OWN_TYPE:
            return LlavaVideoProcessor.from_pretrained(root)
        top = read_layout(root)
        tokenizer = tokenizer_from_layout(root)
        return processor_from_config(config_from_layout(top, root, tokenizer), tokenizer)

    def load_model(self, source: str, dtype: Any, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        from transformers import GenerationConfig

        from videotune.core.models.families._llava_video_model import LlavaVideoForConditionalGeneration

        root = _published.local_dir(source)
        if _model_type(root) == OWN_TYPE:
            return LlavaVideoForConditionalGeneration.from_pretrained(root, dtype=dtype, **kwargs)
        config = config_from_layout(read_layout(root), root, tokenizer_from_layout(root))
        model = _published.load_renamed(LlavaVideoForConditionalGeneration, config, state_from_layout(root), dtype,
                                        str(root), **kwargs)
        if (root / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(root)
        model.name_or_path = model.config.name_or_path = source  # what adapters trained on it name as their base
        return model

    def empty_model(self, source: str, trust_remote_code: bool = False) -> Any:
        import torch
        from transformers.initialization import no_init_weights

        from videotune.core.models.families._llava_video_model import LlavaVideoForConditionalGeneration

        root = _published.local_dir(source)
        if _model_type(root) == OWN_TYPE:
            return super().empty_model(str(root), trust_remote_code=trust_remote_code)
        config = config_from_layout(read_layout(root), root, tokenizer_from_layout(root))
        with no_init_weights():
            return LlavaVideoForConditionalGeneration._from_config(config, dtype=torch.float32)

    def save_built(self, model: Any, processor: Any, out_dir: Path) -> Path:
        _published.set_generation_tokens(model, processor.tokenizer)
        return save_layout(model, processor, out_dir)

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from videotune.core.models.families._llava_video_model import (
            LlavaVideoConfig,
            LlavaVideoForConditionalGeneration,
        )

        tokenizer = train_tokenizer(corpus, spec.vocab_size, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                    **_qwen.TOKEN_ROLES, named_tokens={})
        # LLaVA-NeXT's tokenizer has no media tokens; the placeholders the loader appends to it, appended here too
        tokenizer.add_tokens([IMAGE_TOKEN, VIDEO_TOKEN], special_tokens=True)
        side = spec.frame_size
        config = LlavaVideoConfig(
            vision_config={
                "model_type": "siglip_vision_model", "hidden_size": spec.vision_hidden,
                "intermediate_size": spec.vision_hidden * 2, "num_hidden_layers": spec.vision_layers,
                "num_attention_heads": spec.heads, "image_size": side, "patch_size": spec.patch_size,
                "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh", "vision_use_head": False,
            },
            text_config=_qwen.qwen2_text_config(spec, tokenizer),
            image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
            vision_feature_select_strategy="full", vision_feature_layer=-1,
            image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]],
            tie_word_embeddings=False,
            # the settings LLaVA-Video's published evaluation (lmms-eval llava_vid) runs with
            spatial_pool_mode="average", spatial_pool_stride=2, newline_position="grid",
        )
        return LlavaVideoForConditionalGeneration(config), processor_from_config(config, tokenizer)


LLAVA_VIDEO = register(LlavaVideo(
    name="llava-video",
    model_types=(*PUBLISHED_TYPES, OWN_TYPE),
    hub_ids={"llava-video-7b": "lmms-lab/LLaVA-Video-7B-Qwen2"},
    end_of_turn="<|im_end|>",
    vision_module="model.vision_tower", projector_module="model.multi_modal_projector",
    timestamps="none (frames pooled per config, newlines per row; times only in the prompt text)",
))
