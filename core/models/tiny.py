"""`tiny-<family>` variants and random-weight reference architectures, built offline.

No machine here reaches a model hub. A tiny variant is a family's own transformers classes at toy size
with random weights, a byte-level BPE tokenizer trained locally on a text corpus, and the real processor
classes, saved with save_pretrained so that everything downstream loads it by path exactly like real
weights. A reference architecture is a released checkpoint's exact configuration with random weights
(same parameter count, bytes on disk and FLOPs), for size and speed benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.family import FAMILIES, Family


@dataclass
class TinySpec:
    """Toy sizes: a random-init model that still learns the synthetic tasks on a CPU."""

    frame_size: int = 64  # px, square
    patch_size: int = 8  # px -> (64/8)^2 = 64 patches, 16 tokens per frame after 2x2 pixel shuffle
    # patches per token side where the family merges patches into language-model tokens (SmolVLM's pixel-shuffle
    # scale factor, Qwen-VL's spatial merge): 4 -> 4 x 4 patches per token, 4 tokens per 64 px frame
    token_merge: int = 2
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    heads: int = 4
    vocab_size: int = 1024
    frames: int = 8


def train_tokenizer(
    corpus: Iterable[str], vocab_size: int, special_tokens: list[str], *,
    bos_token: str | None = "<|im_start|>", eos_token: str | None = "<end_of_utterance>",
    pad_token: str | None = "<|endoftext|>", unk_token: str | None = "<|endoftext|>",
    named_tokens: dict[str, str] | None = None,
):
    """A byte-level BPE tokenizer trained on `corpus`, wrapped as a transformers fast tokenizer.

    The defaults are SmolVLM's token roles; other families pass theirs (Qwen: no BOS, <|im_end|> as EOS).
    `named_tokens` become tokenizer attributes the processors look up (`image_token`, `video_token`, ...).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if named_tokens is None:
        named_tokens = {"image_token": "<image>", "video_token": "<video>",
                        "fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
                        "end_of_utterance_token": "<end_of_utterance>"}
    roles = {"bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token, "unk_token": unk_token}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, **{k: v for k, v in roles.items() if v is not None}, extra_special_tokens=named_tokens,
    )


def token_ids(tokenizer: Any, **tokens: str) -> dict[str, int]:
    """{config key: id} of named special tokens, for a config's `image_token_id=...` style arguments."""
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in tokens.items()}


def tiny_families() -> list[str]:
    """The families that can build a tiny variant."""
    return [name for name, family in FAMILIES.items() if type(family).build_tiny is not Family.build_tiny]


def build_tiny(family: str, out_dir: str | Path, corpus: Iterable[str], seed: int = 0, spec: TinySpec | None = None) -> Path:
    """Build `tiny-<family>` offline and save it like a real checkpoint (config, weights, processor)."""
    import torch

    available = tiny_families()
    if family not in available:
        raise InputError(f"no tiny variant for family {family!r}; available: {', '.join(available)}")
    spec = spec or TinySpec()
    if spec.token_merge != 2 and not FAMILIES[family].tiny_token_merge:
        takes = [name for name in available if FAMILIES[name].tiny_token_merge]
        raise InputError(f"tiny-{family} merges 2 x 2 patches per token; another token merge ({spec.token_merge}) "
                         f"is built for: {', '.join(takes)}")
    factor = spec.token_merge * spec.patch_size
    if spec.frame_size % factor:
        raise InputError(f"frame size {spec.frame_size} px: must be a multiple of token merge x patch size = "
                         f"{spec.token_merge} x {spec.patch_size} = {factor} px")
    torch.manual_seed(seed)  # the random weights; the tokenizer's training is deterministic on its own
    model, processor = FAMILIES[family].build_tiny(spec, corpus)
    return FAMILIES[family].save_built(model, processor, Path(out_dir))


def reference_archs() -> dict[str, str]:
    """Reference architecture name -> family name."""
    return {arch: name for name, family in FAMILIES.items() for arch in family.reference_archs}


def build_reference(arch: str, out_dir: str | Path, corpus: Iterable[str], seed: int = 0) -> Path:
    """Build the released architecture `arch` with random weights and a tokenizer trained on `corpus`, saved
    like a checkpoint (the tokenizer padded with `<unused_N>` tokens up to the real vocabulary size, so every id
    the model can emit decodes to its own text and text comparisons are token comparisons)."""
    import torch

    archs = reference_archs()
    if arch not in archs:
        raise InputError(f"unknown reference architecture {arch!r}; available: {', '.join(archs)}")
    family = FAMILIES[archs[arch]]
    torch.manual_seed(seed)
    model, processor = family.build_reference(arch, corpus)
    return family.save_built(model, processor, Path(out_dir))


def save_built(model: Any, processor: Any, out_dir: Path) -> Path:
    """Save a built model: generation stops at the end of the assistant turn (the tokenizer's EOS) and pads
    with its pad token."""
    tokenizer = processor.tokenizer
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
