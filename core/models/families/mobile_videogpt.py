"""Mobile-VideoGPT (Amshaker/Mobile-VideoGPT-0.5B, -1.5B): a Qwen2.5 language model fed by a CLIP image tower on
every frame and a VideoMamba video tower on the top-K frames of each chunk of 8, through ETP projectors.

Frames: the seed's code samples 1 frame per second, at most 16, in chunks of 8; more than 16 given frames are
thinned the same way, fewer are padded with zero frames. The model, processor and config classes live in
`_mobile_videogpt_model.py` (registered with transformers' Auto classes there), imported only when a model is
built or loaded, so that importing the model layer stays light.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.families import _qwen
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, token_ids, train_tokenizer

MODEL_TYPE = "MobileVideoGPT_qwen"  # config.json's model_type in the released checkpoints


def _model_module():
    from videotune.core.models.families import _mobile_videogpt_model

    return _mobile_videogpt_model


def __getattr__(name: str) -> Any:
    """The model module's classes and functions, reached through the family's module (loaded on first use)."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(_model_module(), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


@dataclass(frozen=True)
class MobileVideoGPT(Family):
    def load_processor(self, source: str, trust_remote_code: bool = False) -> Any:
        from transformers import AutoConfig, AutoTokenizer

        m = _model_module()  # registers the config class with AutoConfig
        return m.build_processor(AutoConfig.from_pretrained(source), AutoTokenizer.from_pretrained(source))

    def load_model(self, source: str, dtype: Any, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        """The checkpoint's weights, every one of them: a key the model lacks or a parameter the file lacks is an
        error, except the CLIP tower's as a whole, which the seed itself reads from `image_mm_vision_tower`."""
        model, info = _model_module().MobileVideoGPTQwenForCausalLM.from_pretrained(
            source, dtype=dtype, output_loading_info=True, **kwargs)
        missing, unexpected = set(info["missing_keys"]), sorted(info["unexpected_keys"])
        clip_keys = {f"model.image_vision_tower.{name}" for name, _ in
                     model.model.image_vision_tower.named_parameters()}
        if clip_keys <= missing:
            from transformers import CLIPVisionModel

            clip = CLIPVisionModel.from_pretrained(model.config.image_mm_vision_tower, dtype=model.dtype)
            model.model.image_vision_tower.vision_tower.vision_model.load_state_dict(clip.state_dict())
            missing -= clip_keys
        if missing or unexpected:
            raise InputError(
                f"{source}: the weights do not match Mobile-VideoGPT's architecture: "
                f"{len(missing)} parameters missing ({', '.join(sorted(missing)[:5])}), "
                f"{len(unexpected)} keys unused ({', '.join(unexpected[:5])})")
        return model

    def empty_model(self, source: str, trust_remote_code: bool = False) -> Any:
        _model_module()  # registers the classes with the Auto classes the default reads them through
        return super().empty_model(source, trust_remote_code=trust_remote_code)

    def frame_size(self, processor: Any) -> int:
        return int(processor.video_processor.size["height"])

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        """Only the trained side (both towers' position embeddings are learned for it). Tokens per frame: a context
        frame's, plus its share of its chunk's video tokens, rounded up."""
        trained = int(model_config.video_vision_config.img_size)
        if size != trained:
            raise InputError(f"frame size {size} px: Mobile-VideoGPT's towers have position embeddings for "
                             f"{trained} px frames only")
        return processor.image_tokens + -(-processor.video_tokens // processor.chunk_size)

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        m = _model_module()
        tokenizer = train_tokenizer(corpus, spec.vocab_size, _qwen.SPECIAL_TOKENS, **_qwen.TOKEN_ROLES,
                                    named_tokens={"image_token": m.IMAGE_TOKEN, "video_token": m.VIDEO_TOKEN})
        grid = spec.frame_size // spec.patch_size  # patches per side: 8 x 8, pooled to 4 x 4 everywhere
        text = {k: v for k, v in _qwen.qwen2_text_config(spec, tokenizer).items() if k != "model_type"}
        config = m.MobileVideoGPTQwenConfig(
            **text, tie_word_embeddings=True,  # as Qwen2.5-0.5B/1.5B
            image_vision_config={
                "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
                "num_hidden_layers": spec.vision_layers, "num_attention_heads": spec.heads,
                "image_size": spec.frame_size, "patch_size": spec.patch_size, "projection_dim": spec.vision_hidden,
            },
            video_vision_config={
                "img_size": spec.frame_size, "patch_size": spec.patch_size, "embed_dim": spec.vision_hidden,
                "depth": spec.vision_layers, "d_state": 4, "clip_decoder_embed_dim": spec.vision_hidden,
                "clip_output_dim": spec.vision_hidden,
            },
            image_pool_size=grid // 2, video_frame_pool_size=grid // 2, video_pool_size=grid // 2,
            **token_ids(tokenizer, image_token_id=m.IMAGE_TOKEN, video_token_id=m.VIDEO_TOKEN),
            # the released config.json's record of the towers' widths
            mm_hidden_size=spec.vision_hidden, image_mm_hidden_size=spec.vision_hidden,
        )
        return m.MobileVideoGPTQwenForCausalLM(config), m.build_processor(config, tokenizer)


MOBILE_VIDEOGPT = register(MobileVideoGPT(
    name="mobile-videogpt",
    model_types=(MODEL_TYPE,),
    hub_ids={"mobile-videogpt-0.5b": "Amshaker/Mobile-VideoGPT-0.5B",
             "mobile-videogpt-1.5b": "Amshaker/Mobile-VideoGPT-1.5B"},
    end_of_turn="<|im_end|>",
    vision_module="model.vision_tower", extra_vision_modules=("model.image_vision_tower",),
    projector_module="model.mm_projector", extra_projector_modules=("model.image_mm_projector",),
    decoder_layers="model.layers",
    timestamps="none (16 frames padded or thinned; times only in the prompt text)",
))
