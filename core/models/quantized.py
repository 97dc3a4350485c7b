"""Quantized checkpoints transformers cannot rebuild by itself: torch.ao dynamic int8 and GPTQModel's.

vt-quantize makes them (`quantize_dynamic_int8`, `dynamic_int8_state_dict`); the loader rebuilds them
(`load_dynamic_int8`, `load_gptq`). torchao's weight-only formats need nothing here: transformers rebuilds
them from config.json's `quantization_config`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videotune.core.io import InputError
from videotune.core.models.checkpoint import CHECKPOINT_FILE, read_quantization
from videotune.core.models.family import Family

# The int8-dynamic weights: torch.save of the quantized model's state dict (packed int8 Linear
# weights with their scales, per-row quint8 embeddings, the rest float32).
DYNAMIC_INT8_WEIGHTS = "model.int8-dynamic.pt"

# torch.ao's int8 kernels pay a fixed cost per call (quantizing the activations: ~21 us per Linear at
# batch 1 on the 2 AVX-512 cores here, whatever its size) that a small layer's float32 matmul never
# reaches: a 384x448 Linear took 20.7 us in fp32 against 22.2 us in int8, a 448x448 one 23.8 against
# 22.5 us, a 576x576 one 35.2 against 24.6 us; a quantized Embedding lookup costs ~10 us more than a
# float one at any size. Layers with fewer weights than this are stored in int8 all the same (the same
# bytes on disk) but dequantized to float32 at load, so they compute at float32 speed.
DYNAMIC_INT8_MIN_WEIGHTS = 196_608  # weights: a 384 x 512 Linear


def quantize_dynamic_int8(model, min_weights: int = 0) -> list[str]:
    """torch.ao dynamic int8, in place: every nn.Linear / nn.Embedding with at least `min_weights`
    weights becomes an int8 module (Linear: int8 weights, activations quantized per batch at run time by
    fbgemm/onednn; Embedding: per-row quint8). Returns the names of the smaller ones, left in float:
    `dynamic_int8_state_dict` stores their weights in int8 and `load_dynamic_int8` dequantizes them.

    One function for vt-quantize (which makes the checkpoint) and `load_dynamic_int8` (which must
    rebuild the very same module structure before the saved state dict fits it).
    """
    import torch
    from torch.ao.quantization import quantize_dynamic

    spec: dict[str, Any] = {}
    kept: list[str] = []
    for name, module in model.named_modules():
        qconfig = _dynamic_int8_qconfig(module)
        if qconfig is None:
            continue
        if module.weight.numel() >= min_weights:
            spec[name] = qconfig
        else:
            kept.append(name)
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it moves to torchao; torchao has no dynamic-int8 CPU
        # path with int8 storage that transformers can save, so this stays until it has one.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        if spec:
            quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    return kept


def _dynamic_int8_qconfig(module):
    """The qconfig quantize_dynamic gives this module's exact type (its module swap is by exact type), or None."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, float_qparams_weight_only_qconfig

    return {torch.nn.Linear: default_dynamic_qconfig, torch.nn.Embedding: float_qparams_weight_only_qconfig}.get(type(module))


def dynamic_int8_state_dict(model, kept: Sequence[str]) -> dict[str, Any]:
    """The state dict vt-quantize saves: the int8 modules' packed weights as they are, and each kept
    float module's weight quantized exactly as its int8 module would have held it (per-tensor qint8 for a
    Linear, per-row quint8 for an Embedding), so that the file is as small as if every layer ran in int8."""
    from torch.ao.nn.quantized.modules.utils import _quantize_weight  # what the int8 modules' from_float use

    state = model.state_dict()
    modules = dict(model.named_modules())
    quantized: dict[int, Any] = {}  # a weight shared by two kept modules (tied) is stored once
    for name in kept:
        weight = modules[name].weight  # the Parameter itself: tied modules share it, and its id lives as long
        if id(weight) not in quantized:
            observer = _dynamic_int8_qconfig(modules[name]).weight()
            observer(weight.detach())
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
                quantized[id(weight)] = _quantize_weight(weight.detach().float(), observer)
        state[f"{name}.weight"] = quantized[id(weight)]
    return state


def load_dynamic_int8(family: Family, model_dir: str | Path, trust_remote_code: bool = False):
    """Rebuild an int8-dynamic checkpoint: the architecture from config.json (no weight init), the same
    quantize_dynamic_int8 as vt-quantize applied (with the size threshold videotune.json records; none
    in checkpoints made before it existed: every layer int8), the kept layers' int8 weights dequantized,
    then the state dict loaded strictly."""
    import torch
    from transformers import GenerationConfig

    model_dir = Path(model_dir)
    weights = model_dir / DYNAMIC_INT8_WEIGHTS
    if not weights.is_file():
        raise InputError(f"{model_dir}: {CHECKPOINT_FILE} says int8-dynamic but {DYNAMIC_INT8_WEIGHTS} is missing")
    quantization = read_quantization(model_dir)  # validated: a whole number >= 0, or absent
    min_weights = quantization.min_int8_weights if quantization is not None else None
    min_weights = min_weights or 0
    model = family.empty_model(str(model_dir), trust_remote_code=trust_remote_code)  # the state dict fills it
    kept = quantize_dynamic_int8(model, min_weights)
    with warnings.catch_warnings():
        # torch's rebuild of quantized tensors touches TypedStorage and the deprecated quantized-tensor
        # constructors, and says so on every load
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        state = torch.load(weights, map_location="cpu", weights_only=True)
    for name in kept:
        stored = state.get(f"{name}.weight")
        if stored is None or not stored.is_quantized:
            raise InputError(f"{weights}: {name}.weight should hold int8 weights (min_int8_weights {min_weights}), "
                             f"found {'nothing' if stored is None else stored.dtype}")
        state[f"{name}.weight"] = stored.dequantize()
    model.load_state_dict(state, strict=True)
    if (model_dir / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    return model.eval()


def configure_gptqmodel() -> None:
    """Settings GPTQModel reads at import time.

    On small machines GPTQModel sizes its CPU pool to (cores + 1) // 2 workers and then asks for
    2 loader workers from it, which fails with 2 cores; 2 workers is the least it accepts.
    """
    import os

    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, ((os.cpu_count() or 1) + 1) // 2)))


def load_gptq(model_dir: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """A GPTQModel checkpoint as a plain transformers model whose linear layers are GPTQ kernels."""
    configure_gptqmodel()
    try:
        from gptqmodel import GPTQModel
    except ImportError as err:
        raise InputError(f"{model_dir} is a GPTQ model: loading it needs GPTQModel (pip install 'videotune[gptq]') ({err})") from err
    wrapper = GPTQModel.load(str(model_dir), device=str(device), trust_remote_code=trust_remote_code)
    return wrapper.model
