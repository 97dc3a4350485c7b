"""summary.json: the typed figures each step of a run reports, read by `vt-analyze collect`.

Every tool that an experiment run chains (vt-train sft, vt-infer profile, vt-quantize, vt-judge
score) writes one `summary.json` into its output folder, validated by its schema here, so that
the results tables read one documented shape per tool instead of each tool's private files.
Values are in base units (bytes, seconds); vt-analyze names and scales them as metrics.
Unlike run.json (provenance: times, host, commit), a summary holds results only, so it is part
of the output's content hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from videotune.core.io import InputError, read_json, write_json
from videotune.core.schemas import Strict

SUMMARY_NAME = "summary.json"


class TrainSummary(Strict):
    """vt-train sft: parameters, time, final losses, memory and size of one fine-tune."""

    tool: Literal["train"] = "train"
    trainable_params: int = Field(ge=0)
    total_params: int = Field(ge=0)
    n_train: int = Field(ge=0)  # training examples
    runtime_s: float = Field(ge=0)  # trainer.train() wall time
    epoch_times_s: list[float] = []
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    peak_memory_bytes: int | None = None  # CUDA peak allocation, else the process's peak RSS
    model_size_bytes: int | None = None  # the saved model (or adapter) folder


class ProfileSample(Strict):
    latency_s: float  # seconds per sample (its batch's total / batch size)
    batch_size: int
    frames: int
    resolution_px: int


class ProfileSummary(Strict):
    """vt-infer profile: its first configuration that ran (None figures when every one ran out of memory)."""

    tool: Literal["profile"] = "profile"
    n_samples: int = Field(0, ge=0)
    batch_size: int | None = None
    frames: int | None = None
    resolution_px: int | None = None
    latency_p50_s: float | None = None  # per sample
    latency_p95_s: float | None = None
    latency_mean_s: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    peak_memory_bytes: int | None = None
    model_weights_bytes: int | None = None
    samples: list[ProfileSample] = []  # every recorded sample of every configuration


class QuantizeSummary(Strict):
    """vt-quantize: weight and folder bytes before and after."""

    tool: Literal["quantize"] = "quantize"
    method: str
    weights_bytes_before: int | None = None
    weights_bytes_after: int | None = None
    ratio: float | None = None  # weights after / before
    dir_bytes_before: int | None = None
    dir_bytes_after: int | None = None
    dir_ratio: float | None = None


class JudgeSummary(Strict):
    """vt-judge score: verdict counts, rates and mean score per rubric dimension over `ok` verdicts."""

    tool: Literal["judge"] = "judge"
    n: int = Field(ge=0)
    rubric: str
    judge: str | None = None
    counts: dict[str, int]
    parse_failure_rate: float | None = None
    error_rate: float | None = None
    mean: dict[str, float | None]
    overall_mean: float | None = None


StepSummary = Annotated[TrainSummary | ProfileSummary | QuantizeSummary | JudgeSummary, Field(discriminator="tool")]
_ADAPTER: TypeAdapter = TypeAdapter(StepSummary)


def write_summary(out_dir: str | Path, summary: TrainSummary | ProfileSummary | QuantizeSummary | JudgeSummary) -> Path:
    """Validate and write OUT/summary.json atomically."""
    target = Path(out_dir) / SUMMARY_NAME
    write_json(target, type(summary).model_validate(summary.model_dump()).model_dump(mode="json"))
    return target


def read_summary(path: str | Path) -> TrainSummary | ProfileSummary | QuantizeSummary | JudgeSummary:
    """Read a summary.json; InputError naming the file and field when it is not one.

    A judge summary written before the field `tool` existed is read as a judge summary.
    """
    raw = read_json(path)
    if isinstance(raw, dict) and "tool" not in raw and "rubric" in raw:
        raw = {"tool": "judge", **raw}
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in err.errors()[:5])
        raise InputError(f"{path}: not a step summary.json ({problems})") from err
