"""SmolVLM2 (HuggingFaceTB): a SigLIP tower, pixel-shuffle connector and a SmolLM2 (Llama) language model.

Frames enter as a video; the processor writes "Frame from MM:SS" before each frame from VideoMetadata.
Any square side that is a multiple of patch_size x scale_factor works (position ids are bucketed onto
the trained grid).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.family import Family, register
from videotune.core.models.tiny import TinySpec, train_tokenizer

CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
    "<global-img>", "<video>",
] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]

# HuggingFaceTB/SmolVLM2-256M-Video-Instruct's config.json: SigLIP-B/16 at 512 px, pixel shuffle x4 (64 tokens
# per frame), SmolLM2-135M text model (Llama, GQA 9 query / 3 key-value heads), untied lm_head: 256M
# parameters, 1.03 GB of float32 safetensors.
REFERENCE_ARCHS: dict[str, dict[str, Any]] = {
    "smolvlm2-256m": {
        "frame_size": 512,  # px
        "frames": 8,
        "vision_config": {
            "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
            "image_size": 512, "patch_size": 16, "layer_norm_eps": 1e-6,
        },
        "text_config": {
            "model_type": "llama", "vocab_size": 49280, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "tie_word_embeddings": False,
        },
        "scale_factor": 4,
    },
}


@dataclass(frozen=True)
class SmolVLM2(Family):
    def frame_size(self, processor: Any) -> int:
        return int(processor.video_processor.max_image_size["longest_edge"])

    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        """The connector's pixel shuffle gives (size / patch_size)^2 / scale_factor^2 tokens per frame, which
        the processor must expand each <image> token to."""
        patch = int(model_config.vision_config.patch_size)
        scale = int(model_config.scale_factor)
        if size % (patch * scale):
            raise InputError(
                f"frame size {size} px: must be a multiple of patch_size x scale_factor = {patch} x {scale} = {patch * scale} px"
            )
        tokens = (size // patch) ** 2 // scale**2
        edge = {"longest_edge": size}
        processor.video_processor.size = dict(edge)
        processor.video_processor.max_image_size = dict(edge)
        processor.image_processor.size = dict(edge)
        processor.image_processor.max_image_size = dict(edge)
        processor.image_seq_len = tokens
        return tokens

    def build_tiny(self, spec: TinySpec, corpus: Iterable[str]) -> tuple[Any, Any]:
        tokenizer = train_tokenizer(corpus, spec.vocab_size, SPECIAL_TOKENS)
        vision = {
            "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
            "num_hidden_layers": spec.vision_layers, "num_attention_heads": spec.heads,
            "image_size": spec.frame_size, "patch_size": spec.patch_size,
        }
        text = {
            "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_hidden * 2, "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads,
            "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        }
        # bilinear resampling (2): toy frames
        return _build(tokenizer, vision, text, scale_factor=spec.token_merge, frame_size=spec.frame_size, frames=spec.frames,
                      tie_word_embeddings=False, resample=2)

    def build_reference(self, arch: str, corpus: Iterable[str]) -> tuple[Any, Any]:
        spec = REFERENCE_ARCHS[arch]
        text = dict(spec["text_config"])
        tokenizer = train_tokenizer(corpus, 1024, SPECIAL_TOKENS)
        if len(tokenizer) > text["vocab_size"]:
            raise InputError(f"the corpus tokenizer has {len(tokenizer)} tokens, more than {arch}'s {text['vocab_size']}")
        tokenizer.add_tokens([f"<unused_{i}>" for i in range(text["vocab_size"] - len(tokenizer))])
        return _build(tokenizer, spec["vision_config"], text, scale_factor=spec["scale_factor"],
                      frame_size=spec["frame_size"], frames=spec["frames"],
                      tie_word_embeddings=text["tie_word_embeddings"], resample=None)


def _build(tokenizer: Any, vision: dict[str, Any], text: dict[str, Any], *, scale_factor: int, frame_size: int,
           frames: int, tie_word_embeddings: bool, resample: int | None) -> tuple[Any, Any]:
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    text = {**text, "vocab_size": text.get("vocab_size", len(tokenizer)), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = SmolVLMConfig(
        vision_config=vision, text_config=text, scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_word_embeddings,
    )
    model = SmolVLMForConditionalGeneration(config)
    size = {"longest_edge": frame_size}
    resampling = {} if resample is None else {"resample": resample}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False, **resampling),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size, num_frames=frames, fps=1,
                                              do_sample_frames=False, **resampling),
        tokenizer=tokenizer,
        image_seq_len=(frame_size // int(vision["patch_size"])) ** 2 // scale_factor**2,
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor


SMOLVLM2 = register(SmolVLM2(
    name="smolvlm2",
    model_types=("smolvlm",),
    hub_ids={
        "smolvlm2-256m": "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
        "smolvlm2-500m": "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
        "smolvlm2-2.2b": "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
    },
    end_of_turn="<end_of_utterance>",
    vision_module="model.vision_model",
    projector_module="model.connector",
    decoder_layers="model.text_model.layers",
    answer_prefix=" ",
    timestamps="VideoMetadata: 'Frame from MM:SS' before each frame",
    reference_archs=REFERENCE_ARCHS,
    tiny_token_merge=True,
))
