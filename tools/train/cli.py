"""vt-train: fine-tune models; build the offline tiny variants."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from rich.console import Console

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import iter_jsonl
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Example
from videotune.train.sft import SftConfig, run_sft

console = Console(stderr=True)
app = make_app("Fine-tune video-language models (TRL SFTTrainer, full or LoRA).")


@app.callback()
def _root() -> None:
    """Fine-tune video-language models (TRL SFTTrainer, full or LoRA)."""


def sft_command(config: SftConfig) -> None:
    summary = run_sft(config)
    console.print(
        f"trained {summary['global_step']} steps in {summary['train_runtime_s']:.1f} s; "
        f"final train loss {summary['final_train_loss']:.4f}; model in {config.out / 'model'}"
    )


add_command(app, "sft", SftConfig, sft_command, example=(
    "vt-train sft --model models/tiny-smolvlm2 --train data/gym/examples/train.jsonl "
    "--val data/gym/examples/val.jsonl --data-root data/gym --out results/demo/train --epochs 30 --lr 1e-3"))


class TinyModelConfig(CommandConfig):
    """Build a tiny random-weight model offline (tokenizer trained on the examples' text)."""

    family: str = Field("smolvlm2", description=f"model family: {', '.join(models.FAMILIES)}")
    corpus: list[Path] = Field(description="examples JSONL files whose messages train the tokenizer")
    out: Path = Field(description="model directory to write (config, weights, processor)")
    vocab_size: int = Field(1024, ge=300, description="tokenizer vocabulary size")
    text_hidden: int = Field(128, ge=16, description="language model width")
    text_layers: int = Field(2, ge=1, description="language model layers")
    vision_hidden: int = Field(64, ge=16, description="vision encoder width")
    vision_layers: int = Field(2, ge=1, description="vision encoder layers")
    frame_size: int = Field(64, ge=16, description="frame side fed to the vision encoder (px)")
    seed: int = Field(0, description="seed of the random weights")


def tiny_model_command(config: TinyModelConfig) -> None:
    manifest = RunManifest("train", "tiny-model", config.model_dump(mode="json"), config.out, seed=config.seed)
    texts = []
    for path in config.corpus:
        manifest.add_input(path)
        texts.extend(m.content for example in iter_jsonl(path, Example) for m in example.messages)
    spec = models.TinySpec(frame_size=config.frame_size, vision_hidden=config.vision_hidden,
                           vision_layers=config.vision_layers, text_hidden=config.text_hidden,
                           text_layers=config.text_layers, vocab_size=config.vocab_size)
    models.build_tiny(config.family, config.out, texts, seed=config.seed, spec=spec)
    model, _ = models.load(models.resolve(str(config.out)))
    total, _ = models.count_parameters(model)
    manifest.write(outputs={"model": "."}, parameters=total)
    console.print(f"built tiny-{config.family} ({total:,} parameters) in {config.out}")


add_command(app, "tiny-model", TinyModelConfig, tiny_model_command, example=(
    "vt-train tiny-model --family smolvlm2 --corpus data/gym/examples/train.jsonl --out models/tiny-smolvlm2"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
