"""vt-infer: run models over examples."""

from __future__ import annotations

from rich.console import Console

from videotune.core.cli import add_command, make_app, run_app
from videotune.infer.generate import GenerateConfig, run_generate

console = Console(stderr=True)
app = make_app("Run video-language models over examples: batched greedy generation with timing.")


@app.callback()
def _root() -> None:
    """Run video-language models over examples: batched greedy generation with timing."""


def generate_command(config: GenerateConfig) -> None:
    summary = run_generate(config)
    console.print(f"{summary['n_predictions']}/{summary['n_examples']} predictions in {config.out / 'predictions.jsonl'}"
                  + (f" ({summary['n_errors_this_run']} errors)" if summary["n_errors_this_run"] else ""))


add_command(app, "generate", GenerateConfig, generate_command, example=(
    "vt-infer generate --model results/demo/train/model --examples data/gym/examples/test.jsonl "
    "--data-root data/gym --out results/demo/infer"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
