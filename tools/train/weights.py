"""Class weights from `vt-prep balance`: one weight per training example.

The file (agreed with vt-prep balance):
`{"scheme": ..., "group_by": "label+errors", "groups": {"<label>|<err1+err2 or none>": w},
"examples": {"<example id or sample id>": w}}`. An example's weight is looked up by its example id,
then its sample id, then its group key built from example.meta's label and error names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from videotune.core.io import InputError
from videotune.core.schemas import Example


def group_key(example: Example) -> str:
    """`<label>|<error names, sorted, joined by +>` or `<label>|none` (vt-prep balance's label+errors)."""
    label = example.meta.get("label")
    if label is None:
        return ""
    names = sorted({e["name"] if isinstance(e, dict) else str(e) for e in example.meta.get("errors") or []})
    return f"{label}|{'+'.join(names) if names else 'none'}"


def read_class_weights(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise InputError(f"{path}: class-weights file not found") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("groups", {}), dict) \
            or not isinstance(data.get("examples", {}), dict):
        raise InputError(f"{path}: expected an object with `groups` and/or `examples` maps (vt-prep balance)")
    for section in ("groups", "examples"):
        for key, value in data.get(section, {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise InputError(f"{path}: {section}[{key!r}] = {value!r}: a weight must be a finite number > 0")
    return data


def example_weights(path: Path, examples: list[Example]) -> list[float]:
    """The weight of every example, in order; an example with no weight is an error naming it."""
    data = read_class_weights(path)
    by_id, groups = data.get("examples", {}), data.get("groups", {})
    weights = []
    for line, example in enumerate(examples, start=1):
        for key in (example.id, example.sample_id):
            if key in by_id:
                weights.append(float(by_id[key]))
                break
        else:
            key = group_key(example)
            if key not in groups:
                raise InputError(
                    f"{path}: no weight for training example {example.id!r} (line {line}; sample {example.sample_id!r}, "
                    f"group {key or '(no label in meta)'!r}); the file has {len(by_id)} example and "
                    f"{len(groups)} group weights"
                )
            weights.append(float(groups[key]))
    return weights
