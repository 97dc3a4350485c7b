"""Offline `tiny-<family>` builders beyond SmolVLM2: toy-size random weights, the real processor classes.

Each builder takes a locally trained tokenizer's corpus and a `TinySpec` and returns (model, processor)
built from transformers' own classes (Qwen2VLForConditionalGeneration, Qwen2VLProcessor, ...), so that
`save_pretrained` writes a directory that loads through the Auto classes exactly like a hub checkpoint.
The chat templates below render our message shapes (one user turn: a video then the text; the
assistant's answer) token for token as the families' published templates do; they are written here
because no hub is reachable to copy them from.

`core.models.build_tiny` dispatches here; SmolVLM2 stays in core/models.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Qwen2-VL and Qwen2.5-VL: a default system turn, media as <|vision_start|><|video_pad|><|vision_end|>.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL: no default system turn; the processor writes "<t seconds>" before every temporal patch.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# LLaVA-OneVision (llava-hf): the role, then media tokens, then "\n" + text; Qwen2's <|im_end|> closes turns.
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ '\n' + message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# VideoLLaMA3 (Qwen2.5 chat format): the processor expands <|video_pad|> to "Time t s:<pads>," per frame.
VIDEOLLAMA3_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|image_pad|>\n"
    "{% elif content['type'] == 'video' %}<|video_pad|>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
]
LLAVA_ONEVISION_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]

# Qwen-format tokenizers: no BOS; <|im_end|> ends a turn (generation's EOS), <|endoftext|> pads.
_QWEN_TOKENS = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None}


def _qwen_tokenizer(corpus: Iterable[str], vocab_size: int):
    from videotune.core.models import train_tokenizer

    return train_tokenizer(
        corpus, vocab_size, QWEN_SPECIAL_TOKENS, **_QWEN_TOKENS,
        named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                      "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    )


def _ids(tokenizer, **tokens: str) -> dict[str, int]:
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in tokens.items()}


def _qwen_text_config(spec, tokenizer, head_dim: int, **extra) -> dict[str, Any]:
    # M-RoPE splits each head's rotary half (head_dim / 2 frequencies) over time, height and width.
    half = head_dim // 2
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    return {
        "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden, "intermediate_size": spec.text_hidden * 2,
        "num_hidden_layers": spec.text_layers, "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section, **extra},
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None,
    }


def _qwen_processors(spec, image_cls, video_cls, tokenizer, processor_cls, chat_template, per_clip: bool):
    """Image and video processors that keep `spec.frame_size` square frames at that size.

    Qwen2-VL/2.5-VL budget pixels per frame (`size` = [min, max] pixels); Qwen3-VL's video budget is per
    clip (t x h x w) with a per-frame ceiling of `max_video_tokens` merged-patch areas.
    """
    side = spec.frame_size
    factor = spec.patch_size * 2  # patch x spatial merge
    geometry = {"patch_size": spec.patch_size, "temporal_patch_size": 2, "merge_size": 2}
    image_processor = image_cls(size={"shortest_edge": factor * factor, "longest_edge": side * side}, **geometry)
    if per_clip:
        video_processor = video_cls(
            size={"shortest_edge": 2 * factor * factor, "longest_edge": side * side * 256},
            max_video_tokens=(side // factor) ** 2, cap_pixels_per_frame=True, do_sample_frames=False, **geometry,
        )
    else:
        video_processor = video_cls(
            size={"shortest_edge": factor * factor, "longest_edge": side * side}, cap_pixels_per_frame=True,
            do_sample_frames=False, **geometry,
        )
    return processor_cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                         chat_template=chat_template)


def build_qwen2_vl(spec, corpus: Iterable[str]):
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _qwen_tokenizer(corpus, spec.vocab_size)
    config = Qwen2VLConfig(
        vision_config={
            "depth": spec.vision_layers, "embed_dim": spec.vision_hidden, "hidden_size": spec.text_hidden,
            "mlp_ratio": 2, "num_heads": spec.heads, "patch_size": spec.patch_size, "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        text_config=_qwen_text_config(spec, tokenizer, spec.text_hidden // spec.heads),
        **_ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>"),
        tie_word_embeddings=False,
    )
    processor = _qwen_processors(spec, Qwen2VLImageProcessor, Qwen2VLVideoProcessor, tokenizer, Qwen2VLProcessor,
                                 QWEN2_VL_CHAT_TEMPLATE, per_clip=False)
    return Qwen2VLForConditionalGeneration(config), processor


def build_qwen2_5_vl(spec, corpus: Iterable[str]):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _qwen_tokenizer(corpus, spec.vocab_size)
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": spec.vision_layers, "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
            "num_heads": spec.heads, "out_hidden_size": spec.text_hidden, "patch_size": spec.patch_size,
            "spatial_merge_size": 2, "temporal_patch_size": 2,
            # windowed attention over 2 x 2 merged patches; the last block attends over the whole frame
            "window_size": spec.patch_size * 2 * 2, "fullatt_block_indexes": [spec.vision_layers - 1],
            "tokens_per_second": 2,
        },
        text_config=_qwen_text_config(spec, tokenizer, spec.text_hidden // spec.heads),
        **_ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>"),
        tie_word_embeddings=False,
    )
    processor = _qwen_processors(spec, Qwen2VLImageProcessor, Qwen2VLVideoProcessor, tokenizer,
                                 Qwen2_5_VLProcessor, QWEN2_VL_CHAT_TEMPLATE, per_clip=False)
    return Qwen2_5_VLForConditionalGeneration(config), processor


def build_qwen3_vl(spec, corpus: Iterable[str]):
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer = _qwen_tokenizer(corpus, spec.vocab_size)
    head_dim = spec.text_hidden // spec.heads
    config = Qwen3VLConfig(
        vision_config={
            "depth": spec.vision_layers, "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
            "num_heads": spec.heads, "out_hidden_size": spec.text_hidden, "patch_size": spec.patch_size,
            "spatial_merge_size": 2, "temporal_patch_size": 2,
            "num_position_embeddings": (spec.frame_size // spec.patch_size) ** 2,
            "deepstack_visual_indexes": [0],  # the first vision block's features feed the first decoder layer
        },
        text_config={**_qwen_text_config(spec, tokenizer, head_dim, mrope_interleaved=True), "head_dim": head_dim},
        **_ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>"),
        tie_word_embeddings=False,
    )
    processor = _qwen_processors(spec, Qwen2VLImageProcessor, Qwen3VLVideoProcessor, tokenizer, Qwen3VLProcessor,
                                 QWEN3_VL_CHAT_TEMPLATE, per_clip=True)
    return Qwen3VLForConditionalGeneration(config), processor


def build_llava_onevision(spec, corpus: Iterable[str]):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    from videotune.core.models import train_tokenizer

    tokenizer = train_tokenizer(corpus, spec.vocab_size, LLAVA_ONEVISION_SPECIAL_TOKENS, **_QWEN_TOKENS,
                                named_tokens={"image_token": "<image>", "video_token": "<video>"})
    side = spec.frame_size
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_hidden * 2, "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.heads, "image_size": side, "patch_size": spec.patch_size,
        },
        text_config={
            "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_hidden * 2, "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads, "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": None,
        },
        **_ids(tokenizer, image_token_index="<image>", video_token_index="<video>"),
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
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def build_videollama3(spec, corpus: Iterable[str]):
    from transformers import (
        VideoLlama3Config,
        VideoLlama3ForConditionalGeneration,
        VideoLlama3ImageProcessor,
        VideoLlama3Processor,
        VideoLlama3VideoProcessor,
    )

    from videotune.core.models import train_tokenizer

    tokenizer = train_tokenizer(corpus, spec.vocab_size, QWEN_SPECIAL_TOKENS, **_QWEN_TOKENS,
                                named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    side, factor = spec.frame_size, spec.patch_size * 2
    config = VideoLlama3Config(
        vision_config={
            "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
            "num_hidden_layers": spec.vision_layers, "num_attention_heads": spec.heads, "patch_size": spec.patch_size,
        },
        text_config={
            "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_hidden * 2, "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads, "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": None,
        },
        **_ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>"),
        tie_word_embeddings=False,
    )
    geometry = {"patch_size": spec.patch_size, "merge_size": 2}
    image_processor = VideoLlama3ImageProcessor(size={"shortest_edge": factor * factor, "longest_edge": side * side},
                                                **geometry)
    # The video budget is per clip and split evenly over its frames: room for 180 frames (the processor's
    # max_frames) at side x side, and a floor of one frame at that size so short clips keep it too.
    video_processor = VideoLlama3VideoProcessor(
        size={"shortest_edge": side * side, "longest_edge": side * side * 180}, do_sample_frames=False,
        **geometry,
    )
    processor = VideoLlama3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                     video_processor=video_processor, chat_template=VIDEOLLAMA3_CHAT_TEMPLATE)
    return VideoLlama3ForConditionalGeneration(config), processor


BUILDERS = {
    "qwen2-vl": build_qwen2_vl,
    "qwen2.5-vl": build_qwen2_5_vl,
    "qwen3-vl": build_qwen3_vl,
    "llava-onevision": build_llava_onevision,
    "videollama3": build_videollama3,
}
