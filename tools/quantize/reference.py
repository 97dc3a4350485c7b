"""`python -m videotune.quantize.reference`: a released architecture with random weights, for benchmarks.

The builders live in the model layer (`videotune.core.models.build_reference`). Quantization's size and
latency effects depend on the layer shapes, not on the weights' values: a random-init model with a
released checkpoint's exact configuration has the same parameter count, bytes on disk and FLOPs. Its
outputs are meaningless, so output agreement measured on it says how much quantization perturbs greedy
argmax on near-flat logits (a harsh test), not task accuracy.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app


class ReferenceConfig(CommandConfig):
    """Build a random-weight model of a released architecture (exact sizes, random weights), offline.

    Writes OUT: a model directory (config, weights, processor) with its run.json.
    """

    arch: str = Field("smolvlm2-256m", description=f"architecture: {', '.join(models.reference_archs())}")
    corpus: list[Path] = Field(description="examples JSONL files whose messages train the tokenizer")
    out: Path = Field(description="model directory to write")
    seed: int = Field(0, description="seed of the random weights")


def reference_command(config: ReferenceConfig) -> None:
    from videotune.core.io import read_jsonl, replace_dir
    from videotune.core.manifest import RunManifest
    from videotune.core.schemas import Example

    texts = [m.content for path in config.corpus for e in read_jsonl(path, Example) for m in e.messages]
    with replace_dir(config.out) as tmp:
        models.build_reference(config.arch, tmp, texts, seed=config.seed)
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
