"""Fitness-AQA release -> samples (seed 002's dataset; layout in shared/formats/README.md).

```
<root>/Squat/Labeled_Dataset/videos/<id>.mp4
<root>/Squat/Labeled_Dataset/Labels/error_knees_forward.json   {"<id>": [[start_s, end_s], ...]}  ([] = no error)
<root>/Squat/Labeled_Dataset/Labels/error_knees_inward.json
<root>/Squat/Labeled_Dataset/Splits/{train,val,test}_keys.json  ["<id>", ...]
<root>/OHP/Labeled_Dataset/{videos/, Labels/error_elbows.json, Labels/error_knees.json, Splits/...}
```

Every interval is kept (a rep can go wrong twice); `merge_spans` reproduces seed 002, which
collapsed each error to (earliest start, latest end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from videotune.core import taxonomy
from videotune.core.io import InputError
from videotune.core.progress import track
from videotune.core.schemas import Sample
from videotune.prep.importers.common import (
    ImportResult,
    Refused,
    check_video,
    compile_group_regex,
    find_video,
    group_of,
    json_meta,
    load_json,
    make_spans,
    merge_spans,
    parse_intervals,
    resolve_media,
)

# Release folder -> taxonomy key ("BackSquat" is the folder Squat, "OverheadPress" is OHP).
FOLDERS: dict[str, str] = {"Squat": "squat", "BackSquat": "squat", "OHP": "overhead_press", "OverheadPress": "overhead_press"}
SPLITS = ("train", "val", "test")


@dataclass
class FitnessAqaOptions:
    merge_spans: bool = False
    group_regex: str | None = None  # leakage unit from the video id; default: the video itself
    dataset: str = "fitness_aqa"


@dataclass
class _Exercise:
    folder: str
    key: str
    base: Path
    labels: dict[str, dict[str, Any]]  # error -> {video id -> raw intervals}
    label_files: dict[str, Path]
    duplicated: dict[str, tuple[str, Path]]  # video id -> (why it is ambiguous, the label file)
    split_of: dict[str, str]
    in_two_splits: dict[str, list[str]]
    ids: list[str]


def _load_labels(base: Path, folder: str, key: str, result: ImportResult) -> tuple[dict, dict, dict]:
    exercise = taxonomy.EXERCISES[key]
    labels_dir = base / "Labels"
    if not labels_dir.is_dir():
        raise InputError(f"{labels_dir}: folder not found (a Fitness-AQA exercise keeps its labels there)")
    labels: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    duplicated: dict[str, tuple[str, Path]] = {}
    for path in sorted(labels_dir.glob("error_*.json")):
        name = path.stem[len("error_"):]
        if name not in exercise.errors:
            result.refuse(path, "*", f"unknown label {name!r} for {folder}: known errors are {', '.join(exercise.errors)}")
            continue
        data, duplicates = load_json(path)
        result.inputs.append(path)
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected an object mapping video id -> [[start_s, end_s], ...], found a {type(data).__name__}")
        for vid in duplicates:
            duplicated[vid] = (f"duplicate id {vid!r} in {path.name}: its labels are ambiguous", path)
        labels[name] = data
        files[name] = path
    missing = [e for e in exercise.errors if e not in labels]
    if missing:
        # Without the file every clip would read as free of that error: not a safe default.
        names = ", ".join(f"error_{e}.json" for e in missing)
        raise InputError(f"{labels_dir}: {names} not found; every {folder} clip needs a label for each of {exercise.errors}")
    return labels, files, duplicated


def _load_splits(base: Path, result: ImportResult) -> tuple[dict[str, str], dict[str, list[str]]]:
    split_of: dict[str, str] = {}
    in_two: dict[str, list[str]] = {}
    for split in SPLITS:
        path = base / "Splits" / f"{split}_keys.json"
        if not path.is_file():
            continue
        data, _ = load_json(path)
        result.inputs.append(path)
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON array of video ids, found a {type(data).__name__}")
        for vid in map(str, data):
            if vid in split_of and split_of[vid] != split:
                in_two.setdefault(vid, [split_of[vid]]).append(split)
            split_of.setdefault(vid, split)
    return split_of, in_two


def _exercises(root: Path, result: ImportResult) -> list[_Exercise]:
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    found = []
    for folder, key in FOLDERS.items():
        base = root / folder / "Labeled_Dataset"
        if not base.is_dir():
            continue
        labels, files, duplicated = _load_labels(base, folder, key, result)
        split_of, in_two = _load_splits(base, result)
        ids = sorted({str(v) for table in labels.values() for v in table} | set(split_of))
        found.append(_Exercise(folder, key, base, labels, files, duplicated, split_of, in_two, ids))
    if not found:
        raise InputError(
            f"{root}: no Fitness-AQA exercise found (expected {' or '.join(f'{f}/Labeled_Dataset' for f in FOLDERS)})"
        )
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in FOLDERS)
    if others:
        result.notes.append(f"skipped folders without video error labels we know: {', '.join(others)}")
    return found


def _sample(root: Path, ex: _Exercise, vid: str, options: FitnessAqaOptions, pattern: Any) -> Sample:
    if vid in ex.duplicated:
        raise Refused(ex.duplicated[vid][0], file=ex.duplicated[vid][1])
    if vid in ex.in_two_splits:
        raise Refused(f"duplicate id {vid!r}: listed in the splits {ex.in_two_splits[vid]}")
    unlabelled = [e for e in ex.labels if vid not in ex.labels[e]]
    if unlabelled:
        files = ", ".join(ex.label_files[e].name for e in unlabelled)
        raise Refused(f"unknown label: the clip is not in {files}, so whether it shows that error is unknown",
                      file=ex.label_files[unlabelled[0]])
    video = find_video(ex.base / "videos", vid)
    if video is None:
        raise Refused(f"video not found: {ex.base / 'videos' / vid}.mp4 (or another video extension)",
                      file=ex.base / "videos")
    path, media = resolve_media(root, str(video.relative_to(root)))
    info = check_video(path)
    spans = []
    for error, table in ex.labels.items():
        try:
            intervals = parse_intervals(table[vid], f"{ex.label_files[error].name}")
            spans.extend(make_spans(error, intervals, info.duration_s))
        except Refused as why:
            raise Refused(str(why), file=ex.label_files[error]) from None
    n_intervals = len(spans)
    if options.merge_spans:
        spans = merge_spans(spans)
    sample_id = f"{ex.key}/{vid}"
    group = group_of(vid, pattern) if pattern is not None else sample_id
    try:
        return Sample(
            id=sample_id, dataset=options.dataset, media=media, media_kind="video",
            duration_s=info.duration_s, fps=info.fps, split=ex.split_of.get(vid, ""), group=group,
            task="aqa", label=ex.key, errors=spans,
            meta=json_meta(source_id=vid, folder=ex.folder, width_px=info.width, height_px=info.height,
                           n_frames=info.n_frames, n_intervals=n_intervals, merged_spans=options.merge_spans or None),
        )
    except ValidationError as err:
        raise Refused("; ".join(e["msg"] for e in err.errors())) from None


def import_fitness_aqa(root: Path, options: FitnessAqaOptions) -> ImportResult:
    """Samples for every labelled clip of every known exercise; unusable clips become rejects."""
    result = ImportResult()
    pattern = compile_group_regex(options.group_regex)
    exercises = _exercises(root, result)
    jobs = [(ex, vid) for ex in exercises for vid in ex.ids]
    for ex, vid in track(jobs, "import fitness-aqa", len(jobs)):
        try:
            result.samples.append(_sample(root, ex, vid, options, pattern))
        except Refused as why:
            result.refuse(why.file or ex.base, vid, str(why))
    for ex in exercises:
        videos = ex.base / "videos"
        listed = set(ex.ids)
        unlisted = [p for p in videos.iterdir() if p.is_file() and p.stem not in listed] if videos.is_dir() else []
        if unlisted:
            result.notes.append(f"{len(unlisted)} video(s) in {videos} appear in no label or split file: not imported")
    return result
