"""QVED (physiotherapy feedback, seed 000) -> samples.

`ground_truth.json` is a list of `{"video_path": "<exercise_dir>/<id>.mp4", "labels_descriptive":
"<exercise> - <what is wrong>; <how to correct it>", "labels": [...]}`. The exercise is the text
before the first " - " (names can hold hyphens: "step-ups"). An optional `manifest.json`
(`{"<path>": "<exercise>"}`) finds videos by file name when `video_path` is not under the root,
and names the exercise when the descriptive label does not.

Splits: a record's own `split`, else a `--splits` file ({"train": [ids or paths], ...}), else
a seeded group-aware 60/20/20 split (the seed-000 scripts split 60/20/20 with seed 42).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from videotune.core.io import InputError
from videotune.core.progress import track
from videotune.core.schemas import Sample
from videotune.prep.importers.common import (
    ImportResult,
    Refused,
    check_video,
    compile_group_regex,
    group_of,
    json_meta,
    load_json,
    load_records,
    resolve_media,
)
from videotune.prep.split import SPLITS, assign_groups

SEPARATOR = " - "


@dataclass
class QvedOptions:
    ground_truth: Path | None = None  # default <root>/ground_truth.json
    manifest: Path | None = None  # default <root>/manifest.json when it exists
    splits: Path | None = None
    exercises: list[str] = field(default_factory=list)  # allowed exercise labels; empty: any
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 42
    group_regex: str | None = None
    dataset: str = "qved"


def exercise_key(name: str) -> str:
    """A QVED exercise name as a label: lower case, runs of spaces as one underscore ("Step-ups" -> "step-ups")."""
    return re.sub(r"\s+", "_", name.strip().lower())


def _load_manifest(path: Path | None) -> tuple[dict[str, str], dict[str, str]]:
    """(file name -> path, file name -> exercise) from a manifest {"<path>": "<exercise>"}."""
    if path is None:
        return {}, {}
    data, _ = load_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object mapping video path -> exercise, found a {type(data).__name__}")
    by_name, exercise_by_name = {}, {}
    for full, exercise in data.items():
        name = PurePosixPath(full.replace("\\", "/")).name
        by_name[name] = full
        if isinstance(exercise, str):
            exercise_by_name[name] = exercise
    return by_name, exercise_by_name


def _load_split_file(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    data, _ = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise InputError(f'{path}: expected {{"train": [...], "val": [...], "test": [...]}} of video ids or paths')
    unknown = [k for k in data if k not in SPLITS]
    if unknown:
        raise InputError(f"{path}: unknown split name(s) {unknown}; use {', '.join(SPLITS)}")
    split_of: dict[str, str] = {}
    for split, keys in data.items():
        for key in map(str, keys):
            if split_of.get(key, split) != split:
                raise InputError(f"{path}: {key!r} is listed in both {split_of[key]!r} and {split!r}")
            split_of[key] = split
    return split_of


def _record(
    root: Path, index: int, raw: Any, options: QvedOptions, manifest: tuple[dict, dict], split_file: dict[str, str],
    pattern: Any,
) -> Sample:
    if not isinstance(raw, dict):
        raise Refused(f"record {index} is a {type(raw).__name__}, not an object")
    video_path = raw.get("video_path")
    if not isinstance(video_path, str) or not video_path.strip():
        raise Refused("no video_path")
    name = PurePosixPath(video_path.replace("\\", "/")).name
    by_name, exercise_by_name = manifest
    path, media = resolve_media(root, video_path)
    if not path.exists() and name in by_name:
        path, media = resolve_media(root, by_name[name])
    descriptive = raw.get("labels_descriptive")
    if not isinstance(descriptive, str) or not descriptive.strip():
        raise Refused("unknown label: labels_descriptive is missing or empty")
    labels = raw.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise Refused(f"unknown label: labels must be a list of strings, found {labels!r}")
    if SEPARATOR in descriptive:
        exercise = descriptive.split(SEPARATOR, 1)[0]
    elif name in exercise_by_name:
        exercise = exercise_by_name[name]
    else:
        raise Refused(f"unknown label: no exercise before {SEPARATOR!r} in {descriptive[:60]!r} and none in the manifest")
    label = exercise_key(exercise)
    if not label:
        raise Refused(f"unknown label: empty exercise name in {descriptive[:60]!r}")
    if options.exercises and label not in options.exercises:
        raise Refused(f"unknown label {label!r}: not one of --exercises {options.exercises}")
    split = raw.get("split", "")
    if split not in ("", *SPLITS):
        raise Refused(f"unknown split {split!r}")
    stem = media.rsplit(".", 1)[0]
    split = split or split_file.get(video_path) or split_file.get(media) or split_file.get(stem) \
        or split_file.get(PurePosixPath(stem).name, "")
    info = check_video(path)
    try:
        return Sample(
            id=stem, dataset=options.dataset, media=media, media_kind="video", duration_s=info.duration_s,
            fps=info.fps, split=split, group=group_of(stem, pattern), task="feedback", label=label,
            answer=descriptive.strip(),
            meta=json_meta(exercise=exercise.strip(), labels=labels, video_path=video_path, width_px=info.width,
                           height_px=info.height, n_frames=info.n_frames),
        )
    except ValidationError as err:
        raise Refused("; ".join(e["msg"] for e in err.errors())) from None


def _assign_missing_splits(samples: list[Sample], ratios: tuple[float, float, float], seed: int) -> list[Sample]:
    """Seeded group-aware split of the samples without one; a group that already has a split keeps it."""
    fixed = {s.group: s.split for s in samples if s.split}
    open_groups = Counter(s.group for s in samples if not s.split and s.group not in fixed)
    assignment = {**assign_groups(dict(open_groups), ratios, seed), **fixed} if open_groups else fixed
    return [s if s.split else s.model_copy(update={"split": assignment[s.group]}) for s in samples]


def import_qved(root: Path, options: QvedOptions) -> ImportResult:
    result = ImportResult()
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    pattern = compile_group_regex(options.group_regex)
    truth = options.ground_truth or root / "ground_truth.json"
    records = load_records(truth)
    result.inputs.append(truth)
    manifest_path = options.manifest or (root / "manifest.json" if (root / "manifest.json").is_file() else None)
    manifest = _load_manifest(manifest_path)
    if manifest_path:
        result.inputs.append(manifest_path)
    split_file = _load_split_file(options.splits)
    if options.splits:
        result.inputs.append(options.splits)
    seen: dict[str, int] = {}
    for index, raw in track(list(enumerate(records)), "import qved", len(records)):
        record = raw.get("video_path", f"#{index}") if isinstance(raw, dict) else f"#{index}"
        try:
            sample = _record(root, index, raw, options, manifest, split_file, pattern)
            if sample.id in seen:
                raise Refused(f"duplicate id {sample.id!r}: record {seen[sample.id]} names the same video")
            seen[sample.id] = index
            result.samples.append(sample)
        except Refused as why:
            result.refuse(truth, f"{index}:{record}", str(why))
    result.samples = _assign_missing_splits(result.samples, options.ratios, options.seed)
    return result
