"""Image VQA records -> samples, for the clinic/surgical curriculum task (seed 001).

A record: `{"image": "<path>", "question": "...", "answer": "...", "stage"?: "...", "id"?: "...",
"group"?: "...", "split"?: "train|val|test"}`, in a JSON array or JSON Lines. The group (the
leakage unit) defaults to the image, so every question about one image lands in one split.
Ids default to `<image path>#<k>`, k counting the questions about that image from 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from videotune.core.io import InputError
from videotune.core.progress import track
from videotune.core.schemas import Sample
from videotune.prep.importers.common import ImportResult, Refused, check_image, json_meta, load_records, resolve_media
from videotune.prep.split import SPLITS


@dataclass
class VqaOptions:
    stages: list[str] = field(default_factory=list)  # allowed curriculum stages, in order; empty: any
    dataset: str = ""  # default: the JSON file's stem


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"no {key}")
    return value.strip()


def _record(root: Path, raw: Any, record_id: str, options: VqaOptions, dataset: str, media: str, path: Path) -> Sample:
    question, answer = _text(raw, "question"), _text(raw, "answer")
    stage = raw.get("stage", "")
    stage = "" if stage is None else str(stage)
    if options.stages and stage not in options.stages:
        raise Refused(f"unknown label: stage {stage!r} is not one of --stages {options.stages}")
    split = raw.get("split", "") or ""
    if split not in ("", *SPLITS):
        raise Refused(f"unknown split {split!r}")
    width, height = check_image(path)
    known = {"id", "image", "question", "answer", "stage", "group", "split"}
    extra = {k: v for k, v in raw.items() if k not in known and isinstance(v, (str, int, float, bool))}
    try:
        return Sample(
            id=record_id, dataset=dataset, media=media, media_kind="image", duration_s=0.0, fps=0.0, split=split,
            group=str(raw.get("group") or media), task="vqa", question=question, answer=answer, stage=stage,
            meta=json_meta(width_px=width, height_px=height, extra=extra),
        )
    except ValidationError as err:
        raise Refused("; ".join(e["msg"] for e in err.errors())) from None


def import_vqa(json_path: Path, root: Path, options: VqaOptions) -> ImportResult:
    result = ImportResult()
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    records = load_records(json_path)
    result.inputs.append(json_path)
    dataset = options.dataset or json_path.stem
    per_image: Counter[str] = Counter()
    seen: dict[str, int] = {}
    for index, raw in track(list(enumerate(records)), "import vqa", len(records)):
        try:
            if not isinstance(raw, dict):
                raise Refused(f"a {type(raw).__name__}, not an object")
            image = raw.get("image")
            if not isinstance(image, str):
                raise Refused("no image path")
            path, media = resolve_media(root, image)
            given_id = raw.get("id")
            if given_id not in (None, ""):
                record_id = str(given_id)
            else:
                record_id = f"{media}#{per_image[media]}"
                per_image[media] += 1
            if record_id in seen:
                raise Refused(f"duplicate id {record_id!r}: record {seen[record_id]} has it too")
            seen[record_id] = index
            result.samples.append(_record(root, raw, record_id, options, dataset, media, path))
        except Refused as why:
            label = raw.get("id") if isinstance(raw, dict) and raw.get("id") is not None else ""
            result.refuse(json_path, f"{index}:{label}" if label != "" else str(index), str(why))
    return result
