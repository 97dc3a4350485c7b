"""vt-train: fine-tune models; build the offline tiny variants."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from pydantic import Field
from rich.console import Console

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import write_json
from videotune.core.manifest import RunManifest
from videotune.train.modes import ModeOptions, format_report, report_parameters
from videotune.train.sft import SftConfig, run_sft

console = Console(stderr=True)
app = make_app("Fine-tune video-language models (TRL SFTTrainer: full, LoRA, QLoRA, last N blocks).")


@app.callback()
def _root() -> None:
    """Fine-tune video-language models (TRL SFTTrainer: full, LoRA, QLoRA, last N blocks)."""


def sft_command(config: SftConfig) -> None:
    summary = run_sft(config)
    params = summary["parameters"]
    where = config.out / ("adapter" if config.mode == "qlora" else "model")
    console.print(
        f"trained {summary['global_step']} steps in {summary['train_runtime_s']:.1f} s "
        f"({params['trainable']:,} of {params['total']:,} parameters, {summary['tokens_per_s'] or 0:.0f} tokens/s); "
        f"final train loss {summary['final_train_loss']:.4f}; {config.mode} weights in {where}"
    )


add_command(app, "sft", SftConfig, sft_command, example=(
    "vt-train sft --model models/tiny-smolvlm2 --train-examples data/gym/split/examples/train.jsonl "
    "--val-examples data/gym/split/examples/val.jsonl --data-root data/gym/raw --out results/demo/train --epochs 1 --lr 1e-3"))


class ParamsConfig(CommandConfig, ModeOptions):
    """Count total and trainable parameters per part (vision, projector, decoder blocks, rest) for a mode."""

    model: str = Field(description="registry name (smolvlm2-256m), hub id, or local model directory")
    out: Path | None = Field(None, description="folder to write params.json and run.json into [default: print only]")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint")


def params_command(config: ParamsConfig) -> None:
    report = report_parameters(config.model, config, trust_remote_code=config.trust_remote_code)
    console.print(format_report(report))
    if config.out is not None:
        manifest = RunManifest("train", "params", config.model_dump(mode="json"), config.out)
        write_json(config.out / "params.json", report)
        manifest.write(outputs={"params": "params.json"})


add_command(app, "params", ParamsConfig, params_command, example=(
    "vt-train params --model models/tiny-smolvlm2 --mode full --last-blocks 1 --freeze-vision"))


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
    token_merge: int = Field(
        2, ge=1, description="8 px patches per language-model token side (SmolVLM2's pixel shuffle, Qwen-VL's spatial "
        "merge): 2 gives (64/8/2)^2 = 16 tokens per 64 px frame, 4 gives 4, 8 gives one carrying the whole frame. "
        "SmolVLM2 and the Qwen-VL families only; the others merge 2")
    seed: int = Field(0, description="seed of the random weights")


def tiny_model_command(config: TinyModelConfig) -> None:
    manifest = RunManifest("train", "tiny-model", config.model_dump(mode="json"), config.out, seed=config.seed)
    texts = []
    for path in config.corpus:
        manifest.add_input(path)
        texts.extend(corpus_texts(path))  # conversation examples or stream examples (vt-prep dst)
    spec = models.TinySpec(frame_size=config.frame_size, vision_hidden=config.vision_hidden,
                           vision_layers=config.vision_layers, text_hidden=config.text_hidden,
                           text_layers=config.text_layers, vocab_size=config.vocab_size,
                           token_merge=config.token_merge)
    models.build_tiny(config.family, config.out, texts, seed=config.seed, spec=spec)
    model, _ = models.load(models.resolve(str(config.out)))
    total, _ = models.count_parameters(model)
    manifest.write(outputs={"model": "."}, parameters=total)
    console.print(f"built tiny-{config.family} ({total:,} parameters) in {config.out}")


add_command(app, "tiny-model", TinyModelConfig, tiny_model_command, example=(
    "vt-train tiny-model --family smolvlm2 --corpus data/gym/split/examples/train.jsonl --out models/tiny-smolvlm2"))


from videotune.train.pretrain import PretrainVisionConfig, run_pretrain_vision  # noqa: E402


def pretrain_vision_command(config: PretrainVisionConfig) -> None:
    summary = run_pretrain_vision(config)
    final = summary["final"]
    error = f"; val keypoint error {final['val_keypoint_error_px']:.2f} px" if "val_keypoint_error_px" in final else ""
    console.print(f"pretrained the vision tower ({summary['trained_parameters']:,} parameters) on {summary['joints']} "
                  f"keypoints of {summary['clips']['train']} clips in {summary['steps']} steps "
                  f"({summary['train_runtime_s']:.1f} s){error}; model in {config.out / 'model'}")


add_command(app, "pretrain-vision", PretrainVisionConfig, pretrain_vision_command, example=(
    "vt-train pretrain-vision --model models/tiny-smolvlm2 --train-examples data/gym/split/examples/train.jsonl "
    "--val-examples data/gym/split/examples/val.jsonl --data-root data/gym/raw --out results/demo/pretrain --epochs 2"))


# --------------------------------------------------------------------------- curriculum (seed 001) and launchers
from videotune.train.curriculum import (  # noqa: E402
    CurriculumConfig,
    CurriculumTableConfig,
    run_curriculum,
    run_curriculum_table,
)


def curriculum_command(config: CurriculumConfig) -> None:
    result = run_curriculum(config)
    if "final" not in result:  # a process other than rank 0 of a distributed run: rank 0 reports
        return
    final = result["final"]
    stages = ", ".join(f"{name} {100 * acc['normalized']:.1f}%" for name, acc in final["stages"].items())
    cost = result["compute_hours_per_point"]
    console.print(f"{result['experiment']} ({result['order']}, {result['budget']['total_steps']} steps): {stages}; "
                  f"overall {100 * final['overall']['normalized']:.1f}%; {result['compute']['compute_hours']:.4f} compute-hours"
                  + (f", {cost:.2e} per point" if cost is not None else "") + f"; table in {config.out / 'cost_benefit.md'}")


add_command(app, "curriculum", CurriculumConfig, curriculum_command, example=[
    "vt-prep build --samples data/clinic/raw/samples.parquet --out data/clinic/built --task vqa",
    "vt-prep split --examples data/clinic/built/examples/all.jsonl --out data/clinic/split",
    "vt-train tiny-model --corpus data/clinic/split/examples/train.jsonl --out models/tiny-clinic",
    "vt-train curriculum --model models/tiny-clinic --examples data/clinic/split/examples --data-root data/clinic/raw "
    "--stages initial_assessment,findings_identification,clinical_context --epochs 1 --out results/curriculum_exp2"])


def curriculum_table_command(config: CurriculumTableConfig) -> None:
    rows = run_curriculum_table(config)
    console.print(f"{len(rows)} runs in {config.out / 'cost_benefit.md'}")


add_command(app, "curriculum-table", CurriculumTableConfig, curriculum_table_command, example=[
    "vt-train curriculum --model models/tiny-clinic --examples data/clinic/split/examples --data-root data/clinic/raw "
    "--stages initial_assessment,findings_identification,clinical_context --order random --epochs 1 "
    "--out results/curriculum_exp1",
    "vt-train curriculum-table --runs results/curriculum_exp1,results/curriculum_exp2 --out results/curriculum"])

from videotune.train.launch import LaunchConfig, run_launch  # noqa: E402


def launch_command(config: LaunchConfig) -> None:
    result = run_launch(config)
    if config.dry_run:
        print(result.get("script") or result["command"], end="" if "script" in result else "\n")
    elif "submitted" in result:
        console.print(f"{result['submitted']} ({result['script_path']})")


add_command(app, "launch", LaunchConfig, launch_command, example=(
    "vt-train launch --launcher slurm --gpus 2 --partition gpu --time 14:00:00 --dry-run -- "
    "sft --model models/tiny-smolvlm2 --train-examples data/gym/split/examples/train.jsonl --data-root data/gym/raw "
    "--out results/slurm/train"))


def _launch_argv(argv: list[str]) -> list[str]:
    """`vt-train launch [options] -- <command>`: what follows `--` becomes --command (one quoted string)."""
    if len(argv) > 2 and argv[1] == "launch" and "--" in argv:
        cut = argv.index("--")
        return argv[:cut] + ["--command", shlex.join(argv[cut + 1:])]
    return argv


# --------------------------------------------------------------------------- streaming DST (issue 8)
from videotune.train.dst import DstTrainConfig, corpus_texts, run_dst_train  # noqa: E402


def dst_command(config: DstTrainConfig) -> None:
    summary = run_dst_train(config)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in summary["final_losses"].items() if v is not None)
    console.print(f"trained {summary['global_step']} steps in {summary['train_runtime_s']:.1f} s ({losses}); "
                  f"thresholds speak {summary['thresholds']['speak']}, dst_update {summary['thresholds']['dst_update']}; "
                  f"model in {config.out / 'model'}")


add_command(app, "dst", DstTrainConfig, dst_command, example=[
    "vt-train tiny-model --corpus data/assembly/stream/train.jsonl --frame-size 32 --out models/tiny-dst",
    "vt-train dst --model models/tiny-dst --train-examples data/assembly/stream/train.jsonl "
    "--val-examples data/assembly/stream/val.jsonl --data-root data/assembly/raw --out results/dst/train --epochs 1"])


def main() -> None:
    sys.argv = _launch_argv(sys.argv)
    run_app(app)


if __name__ == "__main__":
    main()
