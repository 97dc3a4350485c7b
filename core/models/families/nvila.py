"""NVILA-Lite (NVlabs VILA): a SigLIP tower, a 3 x 3 downsampling MLP projector and a Qwen2 language model.

Checkpoints load as NVlabs publish them (Efficient-Large-Model/NVILA-Lite-2B): a top-level config.json (model_type
"llava_llama") beside three folders, each a checkpoint of its own — llm/ (a Qwen2ForCausalLM with the tokenizer),
vision_tower/ (a SiglipVisionModel with its image processor), mm_projector/ (the projector's `layers.N` tensors).
Their tensors are renamed onto `NvilaForConditionalGeneration` (families/_nvila_model.py) by `KEY_MAP`; a tensor no
parameter takes, or a parameter no tensor fills, is refused. The `-hf` repositories (model_type "vila", NVlabs'
remote code) load the same way when they carry those folders; with `--trust-remote-code` they load through
transformers' Auto classes and the checkpoint's own code instead.

Frames enter as NVILA's inference feeds a video: each frame through the image path (448 px, one tile), 121 tokens
(32 x 32 patches merged 3 x 3, the side padded to 33) followed by "\\n". No frame time reaches the model beyond
the prompt's text. A still image alone in a prompt is cut into up to max_tiles tiles (NVILA's dynamic
resolution). Fine-tuned and quantized models are written with `save_pretrained` in videotune's registered
transformers format (model_type "nvila"), which `resolve` and `load` read like any checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.families import _published, _qwen
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, token_ids, train_tokenizer

PUBLISHED_TYPES = ("llava_llama", "vila")  # top-level model_type: NVlabs' own layout, and its -hf remote-code repos
OWN_TYPE = "nvila"  # videotune's registered transformers format (what save_pretrained writes)
PARTS = ("llm", "vision_tower", "mm_projector")

# (published folder, prefix of its tensor names, prefix of NvilaForConditionalGeneration's parameter names)
KEY_MAP = (
    ("llm", "model.", "model.language_model."),
    ("llm", "lm_head.", "lm_head."),
    # transformers 5's SiglipVisionModel holds the transformer itself: no `vision_model.` level in its names
    ("vision_tower", "vision_model.", "model.vision_tower."),
    ("mm_projector", "", "model.mm_projector."),
)

IMAGE_TOKEN, VIDEO_TOKEN = "<image>", "<vila/video>"

# The chat template NVILA's config can name instead of the tokenizer's own ("chat_template": "qwen2"): ChatML
# with a default system turn "You are a helpful assistant" (no full stop, as VILA's qwen2 template has it).
VILA_QWEN2_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}"
    "{% endif %}{% for message in messages if message['content'] is not none %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The tiny variant's tokenizer template: Qwen2's ChatML with its default system turn, over string contents (NVILA
# renders each message to one string, media tokens in place, before the template sees it).
TINY_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN]


# ---------------------------------------------------------------------------------------------- the published layout


@dataclass(frozen=True)
class Layout:
    """What the loader reads from a checkpoint in NVlabs' layout."""

    root: Path
    top: dict[str, Any]  # the top-level config.json

    @property
    def where(self) -> str:
        return str(self.root)


def read_layout(root: Path) -> Layout:
    top = _published.read_json(root / "config.json")
    missing = [part for part in PARTS if not (root / part / "config.json").is_file()]
    if missing:
        hint = (" (an NVILA -hf repository without those folders: pass --trust-remote-code to load it with its own "
                "code)") if top.get("model_type") == "vila" else ""
        raise InputError(f"{root}: NVILA's layout needs {', '.join(p + '/config.json' for p in missing)}{hint}")
    for key in ("s2", "dynamic_s2"):
        if top.get(key):
            raise InputError(f"{root}/config.json: {key} is set: multi-scale (S2) NVILA models are not ported, NVILA-Lite is")
    feature = top.get("mm_vision_select_feature", "cls_patch")
    if feature != "cls_patch":
        raise InputError(f"{root}/config.json: mm_vision_select_feature {feature!r}; NVILA-Lite's SigLIP tower "
                         "passes every patch (cls_patch)")
    projector = _published.read_json(root / "mm_projector" / "config.json").get("mm_projector_type")
    if projector != "mlp_downsample_3x3_fix":
        raise InputError(f"{root}/mm_projector/config.json: mm_projector_type {projector!r}; only "
                         "mlp_downsample_3x3_fix (NVILA-Lite's) is ported")
    return Layout(root, top)


def _encoder_tokens(layout: Layout) -> tuple[str | None, str | None]:
    """(start, end) text around each tile's tokens: NVILA's image encoder (config image_encoder, a JSON string or
    object naming BasicImageEncoder; end "\\n" unless it says otherwise)."""
    spec = layout.top.get("image_encoder") or {"_target_": "llava.model.encoders.BasicImageEncoder"}
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as err:
            raise InputError(f"{layout.where}/config.json: image_encoder is not JSON ({err})") from err
    if not str(spec.get("_target_", "")).endswith("BasicImageEncoder"):
        raise InputError(f"{layout.where}/config.json: image_encoder {spec.get('_target_')!r}; only "
                         "BasicImageEncoder is ported")
    return spec.get("start_tokens"), spec.get("end_tokens", "\n")


def _tokenizer(layout: Layout) -> Any:
    """llm/'s tokenizer with NVILA's media tokens and the chat template NVILA renders prompts with."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(layout.root / "llm")
    vocab = tokenizer.get_vocab()
    missing = [t for t in (IMAGE_TOKEN, VIDEO_TOKEN) if t not in vocab]
    if missing:  # NVILA adds them when it builds the tokenizer; a published llm/ normally carries them
        tokenizer.add_tokens(missing, special_tokens=True)
    named = layout.top.get("chat_template")
    if named == "qwen2":
        tokenizer.chat_template = VILA_QWEN2_TEMPLATE
    elif named:
        raise InputError(f"{layout.where}/config.json: chat_template {named!r}; only 'qwen2' (or none: llm/'s "
                         "tokenizer template) is ported")
    if not tokenizer.chat_template:
        raise InputError(f"{layout.where}/llm: the tokenizer has no chat template")
    return tokenizer


def config_from_layout(layout: Layout, tokenizer: Any) -> Any:
    from transformers import AutoConfig

    from videotune.core.models.families._nvila_model import NvilaConfig

    text = AutoConfig.from_pretrained(layout.root / "llm")
    vision = AutoConfig.from_pretrained(layout.root / "vision_tower")
    if text.model_type != "qwen2":
        raise InputError(f"{layout.where}/llm/config.json: model_type {text.model_type!r}; NVILA-Lite's language model "
                         "is Qwen2")
    if vision.model_type != "siglip_vision_model":
        raise InputError(f"{layout.where}/vision_tower/config.json: model_type {vision.model_type!r}; NVILA-Lite's "
                         "tower is SigLIP")
    resolution = layout.top.get("vision_resolution", -1)
    if resolution not in (-1, None, vision.image_size):
        raise InputError(f"{layout.where}/config.json: vision_resolution {resolution} differs from the tower's "
                         f"{vision.image_size} px (position-embedding resizing is not ported)")
    ids = token_ids(tokenizer, image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN)
    if max(ids.values()) >= text.vocab_size:
        raise InputError(f"{layout.where}/llm: media token ids {ids} lie beyond the language model's "
                         f"{text.vocab_size} embeddings")
    return NvilaConfig(vision_config=vision, text_config=text,
                       vision_feature_layer=int(layout.top.get("mm_vision_select_layer", -2)), **ids)


def processor_from_layout(layout: Layout) -> Any:
    from transformers import SiglipImageProcessor

    from videotune.core.models.families._nvila_model import NvilaProcessor

    tokenizer = _tokenizer(layout)
    image_processor = SiglipImageProcessor.from_pretrained(layout.root / "vision_tower")
    vision = _published.read_json(layout.root / "vision_tower" / "config.json")
    start, end = _encoder_tokens(layout)
    aspect = layout.top.get("image_aspect_ratio") or "resize"
    if aspect not in ("dynamic", "resize"):
        raise InputError(f"{layout.where}/config.json: image_aspect_ratio {aspect!r}; 'dynamic' and 'resize' are ported")
    max_tiles = int(layout.top.get("max_tiles") or 12) if aspect == "dynamic" else 1
    min_tiles = int(layout.top.get("min_tiles") or 1) if aspect == "dynamic" else 1
    return NvilaProcessor(image_processor, tokenizer, patch_size=int(vision.get("patch_size", 14)), media_start=start,
                          media_end=end, min_tiles=min_tiles, max_tiles=max_tiles)


def state_from_layout(layout: Layout) -> dict[str, Any]:
    """Every tensor of the three folders under NvilaForConditionalGeneration's parameter name."""
    state: dict[str, Any] = {}
    for part in PARTS:
        rules = [(published, ours) for folder, published, ours in KEY_MAP if folder == part]
        tensors = _published.read_tensors(layout.root / part)
        for name, ours in _published.rename(tensors, rules, f"{layout.where}/{part}").items():
            state[ours] = tensors[name]
    return state


def save_layout(model: Any, processor: Any, out_dir: Path) -> Path:
    """Write `model` and `processor` in NVlabs' layout (the tiny variant: the loader real checkpoints go through
    reads it back). The top-level config carries the keys the loader reads, with NVILA-Lite's values."""
    config = model.config
    state = dict(model.state_dict())
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    parts = _published.split_state(state, KEY_MAP)
    llm = {**config.text_config.to_dict(), "architectures": ["Qwen2ForCausalLM"]}
    vision = {**config.vision_config.to_dict(), "architectures": ["SiglipVisionModel"]}
    projector = {"mm_projector_type": config.projector_type, "model_type": "v2l_projector",
                 "architectures": ["MultimodalProjector"]}
    for part, part_config in zip(PARTS, (llm, vision, projector)):
        _published.write_json(out_dir / part / "config.json", part_config)
        _published.write_tensors(out_dir / part / "model.safetensors", parts[part])
    _published.write_json(out_dir / "config.json", {
        "model_type": "llava_llama", "architectures": ["LlavaLlamaModel"],
        "llm_cfg": llm, "vision_tower_cfg": vision, "mm_projector_cfg": projector,
        "hidden_size": config.text_config.hidden_size, "mm_hidden_size": config.vision_config.hidden_size,
        "mm_vision_select_layer": config.vision_feature_layer, "mm_vision_select_feature": "cls_patch",
        "mm_use_im_start_end": False, "mm_use_im_patch_token": False, "s2": False, "dynamic_s2": False,
        "image_aspect_ratio": "dynamic", "min_tiles": processor.min_tiles, "max_tiles": processor.max_tiles,
        "image_encoder": json.dumps({"_target_": "llava.model.encoders.BasicImageEncoder"}),
        "video_encoder": json.dumps({"_target_": "llava.model.encoders.BasicVideoEncoder"}),
        "model_dtype": "torch.float32",
    })
    processor.tokenizer.save_pretrained(out_dir / "llm")
    processor.image_processor.save_pretrained(out_dir / "vision_tower")
    model.generation_config.save_pretrained(out_dir / "llm")
    return out_dir


# ------------------------------------------------------------------------------------------------------- the family


def _model_type(root: Path) -> str:
    return str(_published.read_json(root / "config.json").get("model_type", ""))


def _remote(root: Path, trust_remote_code: bool) -> bool:
    """A -hf repository loaded with the checkpoint's own code (opt-in)."""
    return trust_remote_code and _model_type(root) == "vila"


@dataclass(frozen=True)
class Nvila(Family):
    def frame_size(self, processor: Any) -> int:
        return processor.tile_side

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        """Tokens a frame adds to the sequence: its merged patches and the "\\n" after them."""
        trained = int(model_config.vision_config.image_size)
        if size != trained:
            raise InputError(f"frame size {size} px: NVILA's SigLIP tower has position embeddings for {trained} px "
                             "frames only")
        return len(processor.media_ids(processor.video_token_id))

    def load_processor(self, source: str, trust_remote_code: bool = False) -> Any:
        root = _published.local_dir(source)
        if _model_type(root) == OWN_TYPE:
            from videotune.core.models.families._nvila_model import NvilaProcessor

            return NvilaProcessor.from_pretrained(root)
        if _remote(root, trust_remote_code):
            return super().load_processor(str(root), trust_remote_code=True)
        return processor_from_layout(read_layout(root))

    def load_model(self, source: str, dtype: Any, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        from transformers import AutoModel, GenerationConfig

        from videotune.core.models.families._nvila_model import NvilaForConditionalGeneration

        root = _published.local_dir(source)
        if _model_type(root) == OWN_TYPE:
            return NvilaForConditionalGeneration.from_pretrained(root, dtype=dtype, **kwargs)
        if _remote(root, trust_remote_code):
            return AutoModel.from_pretrained(root, dtype=dtype, trust_remote_code=True, **kwargs)
        layout = read_layout(root)
        config = config_from_layout(layout, _tokenizer(layout))
        model = _published.load_renamed(NvilaForConditionalGeneration, config, state_from_layout(layout), dtype,
                                        layout.where, **kwargs)
        if (root / "llm" / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(root / "llm")
        model.name_or_path = model.config.name_or_path = source  # what adapters trained on it name as their base
        return model

    def empty_model(self, source: str, trust_remote_code: bool = False) -> Any:
        import torch
        from transformers.initialization import no_init_weights

        from videotune.core.models.families._nvila_model import NvilaForConditionalGeneration

        root = _published.local_dir(source)
        if _model_type(root) == OWN_TYPE or _remote(root, trust_remote_code):
            return super().empty_model(str(root), trust_remote_code=trust_remote_code)
        layout = read_layout(root)
        with no_init_weights():
            return NvilaForConditionalGeneration._from_config(config_from_layout(layout, _tokenizer(layout)),
                                                              dtype=torch.float32)

    def save_built(self, model: Any, processor: Any, out_dir: Path) -> Path:
        _published.set_generation_tokens(model, processor.tokenizer)
        return save_layout(model, processor, out_dir)

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        from transformers import SiglipImageProcessor

        from videotune.core.models.families._nvila_model import (
            NvilaConfig,
            NvilaForConditionalGeneration,
            NvilaProcessor,
        )

        tokenizer = train_tokenizer(corpus, spec.vocab_size, SPECIAL_TOKENS, **_qwen.TOKEN_ROLES, named_tokens={})
        tokenizer.chat_template = TINY_TEMPLATE
        side = spec.frame_size
        config = NvilaConfig(
            vision_config={
                "model_type": "siglip_vision_model", "hidden_size": spec.vision_hidden,
                "intermediate_size": spec.vision_hidden * 2, "num_hidden_layers": spec.vision_layers,
                "num_attention_heads": spec.heads, "image_size": side, "patch_size": spec.patch_size,
                "vision_use_head": False,
            },
            text_config=_qwen.qwen2_text_config(spec, tokenizer),
            **token_ids(tokenizer, image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN),
            vision_feature_layer=-2, tie_word_embeddings=False,
        )
        # SigLIP's preprocessing as NVILA's vision_tower/preprocessor_config.json sets it: bicubic, scaled to [-1, 1]
        image_processor = SiglipImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3,
                                               image_std=[0.5] * 3)
        processor = NvilaProcessor(image_processor, tokenizer, patch_size=spec.patch_size)
        return NvilaForConditionalGeneration(config), processor


NVILA = register(Nvila(
    name="nvila",
    model_types=(*PUBLISHED_TYPES, OWN_TYPE),
    hub_ids={"nvila-lite-2b": "Efficient-Large-Model/NVILA-Lite-2B"},
    end_of_turn="<|im_end|>",
    vision_module="model.vision_tower", projector_module="model.mm_projector",
    timestamps="none (each frame is 121 tokens and a newline; times only in the prompt text)",
))
