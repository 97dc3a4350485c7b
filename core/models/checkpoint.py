"""`videotune.json`: what videotune records in every model directory it writes, and the sizes of one.

vt-train writes how a checkpoint was trained (`base_model`, `mode`, `task`), vt-quantize how it was
quantized (`quantization`); the loader reads `quantization` to rebuild formats transformers cannot
(torch.ao dynamic int8) or that need another library (GPTQModel). One schema, one writer, one reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from videotune.core.io import InputError, write_json

CHECKPOINT_FILE = "videotune.json"

QuantizationMethod = Literal["fp32", "bf16", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "gptq"]
FLOAT_METHODS = ("fp32", "bf16", "fp16")


class QuantizationMeta(BaseModel):
    """How vt-quantize made the checkpoint. Method-specific details (backend, per-layer notes) ride along."""

    model_config = ConfigDict(extra="allow")

    method: QuantizationMethod
    source: str | None = Field(None, description="the float checkpoint it was made from")
    # int8-dynamic: layers with fewer weights compute in float32 (stored in int8 all the same). None in
    # checkpoints made before the threshold existed: every layer was quantized.
    min_int8_weights: StrictInt | None = Field(None, ge=0)
    versions: dict[str, str] = Field(default_factory=dict, description="library versions that made it")


class CheckpointMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str | None = Field(None, description="the model it was fine-tuned from (name, hub id or path)")
    mode: Literal["full", "lora", "qlora"] | None = Field(None, description="vt-train's training mode")
    task: Literal["stream"] | None = Field(None, description="stream: a streaming DST model with its heads")
    quantization: QuantizationMeta | None = None


def write_checkpoint_meta(model_dir: str | Path, meta: CheckpointMeta) -> Path:
    """Write `model_dir/videotune.json` (atomically)."""
    path = Path(model_dir) / CHECKPOINT_FILE
    write_json(path, meta.model_dump(mode="json", exclude_none=True))
    return path


def read_checkpoint_meta(model_dir: str | Path) -> CheckpointMeta | None:
    """The directory's videotune.json, validated; None where there is none (a checkpoint from elsewhere)."""
    path = Path(model_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return CheckpointMeta.model_validate(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not readable as JSON ({err})") from err
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in err.errors())
        raise InputError(f"{path}: {problems}") from err


def read_quantization(model_dir: str | Path) -> QuantizationMeta | None:
    """The `quantization` block of a model directory's videotune.json, or None."""
    meta = read_checkpoint_meta(model_dir)
    return meta.quantization if meta is not None else None


def weights_bytes(model_dir: str | Path) -> int:
    """Bytes of a model directory's weight files (safetensors, torch pickles): its size on disk
    less the tokenizer, processor and config files, which do not change with precision."""
    suffixes = (".safetensors", ".pt", ".bin", ".pth")
    return sum(p.stat().st_size for p in Path(model_dir).rglob("*") if p.is_file() and p.name.endswith(suffixes))


def dir_bytes(model_dir: str | Path) -> int:
    """Bytes of every file in a model directory."""
    return sum(p.stat().st_size for p in Path(model_dir).rglob("*") if p.is_file())


def quantization_summary(meta: QuantizationMeta | None) -> dict[str, Any] | None:
    """The quantization block as plain JSON (profile reports, run.json)."""
    return meta.model_dump(mode="json", exclude_none=True) if meta is not None else None
