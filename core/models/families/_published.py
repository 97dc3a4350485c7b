"""Checkpoints in their authors' own layouts: read and written tensor by tensor through a key map.

NVILA (folders llm/, vision_tower/, mm_projector/ beside a top-level config.json) and LLaVA-NeXT (one folder,
its own key names) publish checkpoints that transformers' Auto classes cannot read. Their families map every
published tensor name onto their transformers classes' parameter names (`rename`), load the renamed tensors
through `from_pretrained` (so dtype, device maps and quantization configs work as for any checkpoint) and refuse
a checkpoint with a tensor no parameter takes or a parameter no tensor fills (`load_renamed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from videotune.core import io
from videotune.core.io import InputError

# What a hub snapshot needs for these layouts (configs, tokenizer files, weights); trainer states and optimizer
# files stay on the hub.
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken"]


def local_dir(source: str) -> Path:
    """A local folder for `source`: the folder itself, or the hub snapshot (the local cache when offline; an
    OSError when it is not there, which `load` reports as an input error)."""
    path = Path(source)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, allow_patterns=HUB_FILES))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from the checkpoint (an input error naming the file when it is missing or not one)."""
    data = io.read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a folder: those its index names, else model.safetensors, else every *.safetensors."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{index}: no weight_map")
        return [folder / name for name in sorted(set(weight_map.values()))]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InputError(f"{folder}: no safetensors weights")
    return files


def tensor_names(folder: Path) -> list[str]:
    """Every tensor name in a folder's weight files, without reading the tensors."""
    from safetensors import safe_open

    names: list[str] = []
    for file in safetensors_files(folder):
        with safe_open(file, framework="pt") as handle:
            names.extend(handle.keys())
    return names


def read_tensors(folder: Path) -> dict[str, Any]:
    from safetensors import safe_open

    tensors: dict[str, Any] = {}
    for file in safetensors_files(folder):
        if not file.is_file():
            raise InputError(f"{file}: missing (named by the folder's index)")
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                tensors[name] = handle.get_tensor(name)
    return tensors


def rename(names: Iterable[str], rules: Sequence[tuple[str, str]], where: str) -> dict[str, str]:
    """{published name: parameter name}: the first rule (published prefix, parameter prefix) whose prefix starts
    the name replaces that prefix. A name no rule matches is an error naming it: nothing is dropped silently."""
    renamed = {}
    for name in names:
        for published, ours in rules:
            if name.startswith(published):
                renamed[name] = ours + name[len(published):]
                break
        else:
            raise InputError(f"{where}: tensor {name!r} belongs to no part of the model")
    return renamed


def load_renamed(model_class: Any, config: Any, state_dict: Mapping[str, Any], dtype: Any, where: str,
                 **kwargs: Any) -> Any:
    """`model_class` with `config`, filled from `state_dict` (already renamed) through from_pretrained (dtype,
    device_map, quantization_config); refused when a tensor is left over, a parameter unfilled or a shape differs.
    dtype "auto": the checkpoint's own floating dtype."""
    import torch

    if dtype == "auto":
        dtype = next((t.dtype for t in state_dict.values() if t.is_floating_point()), torch.float32)
    model, info = model_class.from_pretrained(None, config=config, state_dict=dict(state_dict), dtype=dtype,
                                              output_loading_info=True, **kwargs)
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        found = sorted(str(k) for k in info.get(kind) or ())
        if found:
            shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            problems.append(f"{kind.replace('_', ' ')}: {shown}")
    if problems:
        raise InputError(f"{where}: the weights do not fit the architecture its config describes ({'; '.join(problems)})")
    return model


def write_tensors(path: Path, tensors: Mapping[str, Any]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}, str(path),
              metadata={"format": "pt"})


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_json(path, dict(data))


def split_state(state: Mapping[str, Any], rules: Sequence[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """The inverse of loading: {part folder: {published name: tensor}} for rules (folder, published prefix,
    parameter prefix); a parameter no rule covers is an error (it would be lost on reload)."""
    parts: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        for folder, published, ours in rules:
            if name.startswith(ours):
                parts.setdefault(folder, {})[published + name[len(ours):]] = tensor
                break
        else:
            raise ValueError(f"parameter {name!r} has no place in the published layout")
    return parts


def set_generation_tokens(model: Any, tokenizer: Any) -> None:
    """A built model's generation stops at the tokenizer's EOS (the end of the assistant turn) and pads with its pad."""
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
