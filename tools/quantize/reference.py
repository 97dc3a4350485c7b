"""Random-weight models of real architectures, built offline, for size and speed benchmarks.

Quantization's size and latency effects depend on the layer shapes, not on the weights' values:
a random-init model with a released checkpoint's exact configuration has the same parameter count,
bytes on disk and FLOPs. Its outputs are meaningless, so output agreement measured on it says how
much quantization perturbs greedy argmax on near-flat logits (a harsh test), not task accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError

# HuggingFaceTB/SmolVLM2-256M-Video-Instruct's config.json: SigLIP-B/16 at 512 px, pixel shuffle
# x4 (64 tokens per frame), SmolLM2-135M text model (Llama, GQA 9 query / 3 key-value heads),
# untied lm_head: 256M parameters, 1.03 GB of float32 safetensors.
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


def build_reference(arch: str, out_dir: str | Path, corpus: Iterable[str], seed: int = 0) -> Path:
    """Build `arch` with random weights and a tokenizer trained on `corpus`, saved like a checkpoint.

    The tokenizer is padded with `<unused_N>` tokens up to the real vocabulary size, so every id
    the model can emit decodes to its own text and text comparisons are token comparisons.
    """
    if arch not in REFERENCE_ARCHS:
        raise InputError(f"unknown reference architecture {arch!r}; available: {', '.join(REFERENCE_ARCHS)}")
    import torch
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    spec = REFERENCE_ARCHS[arch]
    text = dict(spec["text_config"])
    tokenizer = models.train_tokenizer(corpus, 1024, models.SMOLVLM_SPECIAL_TOKENS)
    if len(tokenizer) > text["vocab_size"]:
        raise InputError(f"the corpus tokenizer has {len(tokenizer)} tokens, more than {arch}'s {text['vocab_size']}")
    tokenizer.add_tokens([f"<unused_{i}>" for i in range(text["vocab_size"] - len(tokenizer))])
    text.update(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    scale = spec["scale_factor"]
    vision = spec["vision_config"]
    config = SmolVLMConfig(
        vision_config=vision, text_config=text, scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=text["tie_word_embeddings"],
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config)
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    size = {"longest_edge": spec["frame_size"]}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size, num_frames=spec["frames"], fps=1,
                                              do_sample_frames=False),
        tokenizer=tokenizer,
        image_seq_len=(vision["image_size"] // vision["patch_size"]) ** 2 // scale**2,
        chat_template=models.SMOLVLM_CHAT_TEMPLATE,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


# --------------------------------------------------------------------------- command


class ReferenceConfig(CommandConfig):
    """Build a random-weight model of a released architecture (exact sizes, random weights), offline.

    Writes OUT: a model directory (config, weights, processor) with its run.json.
    """

    arch: str = Field("smolvlm2-256m", description=f"architecture: {', '.join(REFERENCE_ARCHS)}")
    corpus: list[Path] = Field(description="examples JSONL files whose messages train the tokenizer")
    out: Path = Field(description="model directory to write")
    seed: int = Field(0, description="seed of the random weights")


def reference_command(config: ReferenceConfig) -> None:
    from videotune.core.io import read_jsonl, replace_dir
    from videotune.core.manifest import RunManifest
    from videotune.core.schemas import Example

    texts = [m.content for path in config.corpus for e in read_jsonl(path, Example) for m in e.messages]
    with replace_dir(config.out) as tmp:
        build_reference(config.arch, tmp, texts, seed=config.seed)
        manifest = RunManifest("quantize", "reference", config.model_dump(mode="json"), tmp, seed=config.seed)
        for path in config.corpus:
            manifest.add_input(path)
        manifest.write(outputs={"model": "."})
    print(f"built a random-weight {config.arch} in {config.out}")


app = make_app("Build random-weight models of released architectures for benchmarks.")
add_command(app, "reference", ReferenceConfig, reference_command, example=(
    "python -m videotune.quantize.reference --arch smolvlm2-256m --corpus data/gym/split/examples/train.jsonl "
    "--out models/smolvlm2-256m-random"))

if __name__ == "__main__":
    run_app(app)
