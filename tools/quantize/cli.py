"""vt-quantize: write a quantized (or re-typed) copy of a model directory and its size report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, replace_dir, write_json
from videotune.core.manifest import RunManifest, seed_everything
from videotune.quantize.methods import calibration_texts, quantize, require_gptq, size_report

console = Console(stderr=True)
app = make_app("Quantize a model directory: fp32, bf16, fp16, int8 (dynamic or weight-only), int4 weight-only, GPTQ.")


class QuantizeConfig(CommandConfig):
    """Write OUT/model (a model directory that vt-infer generate/profile load unchanged), OUT/size.json
    (weight bytes before/after and their ratio) and OUT/run.json.

    int8-dynamic, int8-weight and int4-weight run on a CPU; gptq needs GPTQModel (the [gptq] extra) and
    runs on CUDA, or on the CPU slowly.
    """

    method: Literal["fp32", "bf16", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "gptq"] = Field(
        description="fp32|bf16|fp16: stored dtype; int8-dynamic: torch.ao dynamic int8 (CPU); int8-weight / "
        "int4-weight: torchao weight-only; gptq: GPTQModel 4-bit (CUDA, or CPU slowly)"
    )
    model: Path = Field(description="model directory to quantize (float weights, e.g. vt-train's model/)")
    out: Path = Field(description="output folder: model/, size.json, run.json")
    calibration: Path | None = Field(None, description="training examples JSONL whose texts calibrate gptq")
    calibration_examples: int = Field(128, ge=1, description="how many calibration examples gptq uses")
    group_size: int | None = Field(None, ge=8, description="int4/gptq group size (input channels per scale) [default: 128, "
                                   "or the largest of 64/32 dividing every layer for int4]")
    bits: int = Field(4, ge=2, le=8, description="gptq weight bits (2, 3, 4 or 8)")
    min_int8_weights: int = Field(
        models.DYNAMIC_INT8_MIN_WEIGHTS, ge=0,
        description="int8-dynamic: layers with fewer weights are stored in int8 but compute in float32, where "
        "torch.ao's int8 kernels are slower (crossover measured near 200k weights on AVX-512); 0: every layer int8")
    seed: int = Field(0, description="seed (quantization here is deterministic; kept for the manifest)")


def run_quantize(config: QuantizeConfig) -> dict:
    seed_everything(config.seed)
    ref = models.resolve(str(config.model))
    if not ref.is_local:
        raise InputError(f"--model {config.model}: pass a local model directory (no machine here reaches a hub)")
    manifest = RunManifest("quantize", "quantize", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.model, name="model")
    calibration = None
    if config.method == "gptq":
        require_gptq()
        if config.calibration is None:
            raise InputError("--calibration: gptq needs training examples to calibrate on")
        calibration = calibration_texts(config.calibration, config.calibration_examples)
        manifest.add_input(config.calibration, name="calibration")
    target = config.out / "model"
    with replace_dir(target) as tmp:
        result = quantize(config.method, config.model, tmp, calibration=calibration, group_size=config.group_size,
                          bits=config.bits, min_int8_weights=config.min_int8_weights)
    report = size_report(config.method, config.model, target)
    report["details"] = result.details
    write_json(config.out / "size.json", report)
    from videotune.core.summaries import QuantizeSummary, write_summary

    write_summary(config.out, QuantizeSummary(**{k: report[k] for k in QuantizeSummary.model_fields if k in report}))
    manifest.write(outputs={"model": "model", "size": "size.json", "summary": "summary.json"}, summary=report)
    return report


def quantize_command(config: QuantizeConfig) -> None:
    report = run_quantize(config)
    console.print(
        f"{report['method']}: weights {report['weights_bytes_before'] / 1e6:.2f} MB -> "
        f"{report['weights_bytes_after'] / 1e6:.2f} MB (x{report['ratio']}); model in {config.out / 'model'}"
    )


# One command: typer runs it as `vt-quantize --method ... --model ... --out ...` (no subcommand).
add_command(app, "quantize", QuantizeConfig, quantize_command, example=(
    "vt-quantize --method int8-dynamic --model results/demo/train/model --out results/int8-dynamic"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
