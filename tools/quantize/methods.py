"""Precision and quantization methods: each turns a model directory into another loadable one.

Every output directory loads through `videotune.core.models.load` like any checkpoint:
- fp32 / bf16 / fp16: plain transformers checkpoints stored in that dtype;
- int8-weight / int4-weight: torchao tensor subclasses saved by transformers (safetensors with
  torchao metadata; config.json carries the TorchAoConfig, so from_pretrained rebuilds them);
- int8-dynamic: torch.ao dynamic quantization, which transformers can neither save nor reload:
  the quantized state dict goes to `model.int8-dynamic.pt` and videotune.json names the method,
  so that core's loader rebuilds the architecture, re-applies the same quantize_dynamic and
  loads the int8 weights;
- gptq: GPTQModel, calibrated on training examples, on CUDA or (slowly) on the CPU; transformers
  cannot rebuild GPTQModel's smolvlm checkpoints (its optimum path finds no decoder blocks), so
  videotune.json names the method and core's loader loads it through GPTQModel.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videotune.core import models
from videotune.core.io import InputError

log = logging.getLogger("videotune.quantize")

METHODS = ("fp32", "bf16", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "gptq")
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# int4 groups: the largest of these that divides every quantized layer's input width. Smaller
# groups track the weights more closely and cost one scale (4 bytes) per group.
_INT4_GROUP_SIZES = (128, 64, 32)


@dataclass
class QuantizeResult:
    method: str
    model_dir: Path
    details: dict[str, Any]


def linear_weight_pattern(model) -> str:
    """A torchao FqnToConfig regex that matches every nn.Linear weight of `model` and nothing else.

    Parameter-level keys (`...weight`), not module-level ones: a module-level match also claims the
    Linear's bias when transformers reloads the checkpoint, and torchao cannot quantize a 1-d tensor.
    """
    import torch

    linear_leaves = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    if not linear_leaves:
        raise InputError("the model has no nn.Linear layer to quantize")
    pattern = r"(?:.*\.)?(?:" + "|".join(re.escape(leaf) for leaf in linear_leaves) + r")\.weight"
    linear_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    matched = {name for name, _ in model.named_parameters() if re.fullmatch(pattern, name)}
    if matched != linear_weights:  # a non-Linear module shares a leaf name: list the weights one by one
        pattern = "|".join(re.escape(name) for name in sorted(linear_weights))
    return "re:" + pattern


def int4_group_size(model, requested: int | None = None) -> int:
    """The int4 group size: `requested` if every Linear's input width is a multiple of it, else the
    largest of 128/64/32 that is."""
    import torch

    widths = {m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear)}
    candidates = (requested,) if requested else _INT4_GROUP_SIZES
    for size in candidates:
        if all(w % size == 0 for w in widths):
            return size
    raise InputError(
        f"int4 group size: no group of {list(candidates)} divides every Linear input width {sorted(widths)}"
    )


def torchao_config(method: str, model, group_size: int | None = None):
    """The TorchAoConfig for int8-weight / int4-weight on `model` (an fp32 instance of the checkpoint).

    Linear weights: int8 per output channel (Int8WeightOnlyConfig) or int4 per group of input
    channels (IntxWeightOnlyConfig, symmetric). The input embedding: int8 per row in both cases
    (a 49k x 576 table is a tenth of SmolVLM2-256M; 4 bits there costs more accuracy than it saves).
    torchao 0.18 keeps CPU int4 values in int8 containers (IntxUnpackedToInt8Tensor: the packed
    int4 CPU format cannot be saved to safetensors), so int4-weight is no smaller on disk than
    int8-weight; it measures the accuracy cost of 4-bit weights.
    """
    import torch
    from torchao.quantization import FqnToConfig, Int8WeightOnlyConfig, IntxWeightOnlyConfig, PerAxis, PerGroup
    from transformers import TorchAoConfig

    if method == "int8-weight":
        linear_config, details = Int8WeightOnlyConfig(), {"linear": "int8 per output channel (Int8WeightOnlyConfig)"}
    elif method == "int4-weight":
        size = int4_group_size(model, group_size)
        linear_config = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(size))
        details = {"linear": f"int4 symmetric, groups of {size} input channels (IntxWeightOnlyConfig)", "group_size": size}
    else:
        raise ValueError(method)
    mapping = {linear_weight_pattern(model): linear_config}
    embedding = model.get_input_embeddings()
    embedding_name = next(name for name, m in model.named_modules() if m is embedding)
    mapping[f"{embedding_name}.weight"] = IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    details["embedding"] = f"{embedding_name}: int8 per row (IntxWeightOnlyConfig)"
    return TorchAoConfig(FqnToConfig(mapping), include_input_output_embeddings=True), details


def calibration_texts(examples_path: Path, limit: int) -> list[str]:
    """GPTQ calibration text from a training examples file: each conversation's user turn and target."""
    from videotune.core.io import iter_jsonl
    from videotune.core.schemas import Example

    texts = []
    for example in iter_jsonl(examples_path, Example):
        texts.append(example.messages[-2].content + " " + example.target)
        if len(texts) >= limit:
            break
    if not texts:
        raise InputError(f"{examples_path}: no examples to calibrate on")
    return texts


def _marker(method: str, source: Path, details: dict[str, Any]) -> models.CheckpointMeta:
    import torch

    versions = {"torch": torch.__version__}
    try:
        import torchao

        versions["torchao"] = torchao.__version__
    except ImportError:
        pass
    return models.CheckpointMeta(
        quantization=models.QuantizationMeta(method=method, source=str(source), **details, versions=versions))


def quantize(
    method: str,
    source: Path,
    out_dir: Path,
    calibration: Sequence[str] | None = None,
    group_size: int | None = None,
    bits: int = 4,
    min_int8_weights: int = models.DYNAMIC_INT8_MIN_WEIGHTS,
) -> QuantizeResult:
    """Write `source` quantized by `method` into `out_dir` (an empty or new folder).

    int8-dynamic: layers with fewer than `min_int8_weights` weights are stored in int8 and compute in
    float32 (faster there than torch.ao's int8 kernels; 0 runs every layer in int8).
    """
    import torch

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    existing = models.read_quantization(source)
    if existing is not None and existing.method not in models.FLOAT_METHODS:
        raise InputError(f"{source}: already quantized ({existing.method}); start from a float checkpoint")
    ref = models.resolve(str(source))
    processor = ref.family.load_processor(str(source))
    details: dict[str, Any]
    if method in _DTYPES:
        dtype = _DTYPES[method]
        model, _ = models.load(ref, dtype=dtype)
        model.save_pretrained(out_dir)
        details = {"dtype": dtype, "note": "load with dtype 'auto' (vt-infer profile's default) or this dtype to run in it"}
    elif method == "int8-dynamic":
        if min_int8_weights < 0:
            raise InputError(f"min_int8_weights {min_int8_weights}: a number of weights, >= 0")
        model, _ = models.load(ref, dtype="float32")
        kept = models.quantize_dynamic_int8(model, min_int8_weights)
        model.config.save_pretrained(out_dir)
        model.generation_config.save_pretrained(out_dir)
        torch.save(models.dynamic_int8_state_dict(model, kept), out_dir / models.DYNAMIC_INT8_WEIGHTS)
        details = {
            "backend": "torch.ao.quantization.quantize_dynamic (CPU: fbgemm/onednn)",
            "linear": "int8 per tensor weights, activations quantized per batch at run time",
            "embedding": "quint8 per row (float_qparams_weight_only_qconfig)",
            "min_int8_weights": min_int8_weights,
            "float_compute_layers": len(kept),
            "float_compute": "layers with fewer weights than min_int8_weights: stored in int8 as above, "
                             "dequantized to float32 at load (faster than the int8 kernels at that size)",
            "weights": models.DYNAMIC_INT8_WEIGHTS,
            "note": "transformers cannot reload this; videotune.core.models.load rebuilds it from this file",
        }
    elif method in ("int8-weight", "int4-weight"):
        reference, _ = models.load(ref, dtype="float32")
        config, details = torchao_config(method, reference, group_size)
        del reference
        model = ref.family.load_model(str(source), torch.float32, quantization_config=config, device_map="cpu")
        model.save_pretrained(out_dir)
        details["backend"] = "torchao via transformers TorchAoConfig"
    else:  # gptq
        details = _gptq(source, out_dir, calibration, group_size, bits)
    processor.save_pretrained(out_dir)
    models.write_checkpoint_meta(out_dir, _marker(method, source, details))
    return QuantizeResult(method, out_dir, details)


def require_gptq():
    """GPTQModel's entry points, or InputError saying why gptq cannot run here (not installed)."""
    models.configure_gptqmodel()
    try:
        from gptqmodel import GPTQModel, QuantizeConfig
    except ImportError as err:
        raise InputError(
            "gptq needs GPTQModel: pip install 'videotune[gptq]' (not auto-gptq, which is end-of-life and "
            f"does not import with transformers 5) ({err})"
        ) from err
    return GPTQModel, QuantizeConfig


def _gptq(source: Path, out_dir: Path, calibration: Sequence[str] | None, group_size: int | None, bits: int) -> dict[str, Any]:
    """GPTQ with GPTQModel: calibration forward passes layer by layer, on CUDA when there is one, else on the CPU."""
    import torch

    GPTQModel, QuantizeConfig = require_gptq()
    if not calibration:
        raise InputError("gptq needs calibration examples: pass --calibration TRAIN.jsonl")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        log.warning("gptq on the CPU: correct but slow (about 30 s for the tiny model here; hours for billions of weights)")
    config = QuantizeConfig(bits=bits, group_size=group_size or 128)
    source, out_dir = Path(source).resolve(), Path(out_dir).resolve()
    # GPTQModel writes per-layer logs into ./logs of the working directory: keep them out of the user's
    with tempfile.TemporaryDirectory(prefix="gptqmodel-") as scratch, contextlib.chdir(scratch):
        model = GPTQModel.load(str(source), config, device=device)
        model.quantize(list(calibration), batch_size=1)
        model.save(str(out_dir))
    # GPTQModel leaves its own log beside the weights; it is not part of the model
    (out_dir / "quant_log.csv").unlink(missing_ok=True)
    return {
        "backend": f"GPTQModel {_version('gptqmodel')}", "bits": bits, "group_size": group_size or 128,
        "calibration_examples": len(calibration), "quantized_on": device,
        "scope": "the language model's decoder layers (GPTQModel's smolvlm definition); vision tower, "
                 "connector, embeddings and lm_head stay in float",
        "note": "loads through GPTQModel (videotune.core.models.load), which picks a CPU or CUDA kernel",
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def size_report(method: str, source: Path, out_dir: Path) -> dict[str, Any]:
    """Bytes on disk before and after: weight files (what precision changes) and whole directories."""
    before_w, after_w = models.weights_bytes(source), models.weights_bytes(out_dir)
    before_d, after_d = models.dir_bytes(source), models.dir_bytes(out_dir)
    return {
        "method": method,
        "source": str(source),
        "model": str(out_dir),
        "weights_bytes_before": before_w,
        "weights_bytes_after": after_w,
        "ratio": round(after_w / before_w, 4) if before_w else None,
        "dir_bytes_before": before_d,
        "dir_bytes_after": after_d,
        "dir_ratio": round(after_d / before_d, 4) if before_d else None,
    }

