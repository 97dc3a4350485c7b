"""Seed 000's hand-annotated error set (RQ2.1.1) -> samples.

`annotated_errors.json` (the seed's `experiments/data/annotated_errors.json`, written by its
`annotate_errors.py --interactive` or by `vt-prep annotate`) is a list of

    {"video": "squats/00123.mp4", "exercise": "squats", "errors": ["knee_valgus", "forward_lean"],
     "error_frames": [12, 15, 18], "ground_truth": "Keep knees aligned..."}

with videos relative to the folder that holds the file. `error_frames` are frame indices of the
clip (0 = its first frame, in presentation order); they become seconds at the clip's own frame
times (frame k of a constant-rate clip at k / fps) and are kept as given in `meta.error_frames`.

The format does not say which marked frame shows which error, so every named error gets the span of
the marked frames: from the first to the last (`span_gap_s` None), or one span per run of marks no
more than `span_gap_s` apart. `vt-prep annotate` also writes `error_spans` ({error: [[first frame,
last frame], ...]}), which, where present, gives each error its own spans. Named errors without any
marked frame keep whole-clip spans and are listed in `meta.untimed_errors` (as `import llava` does),
so `build --variant temporal` refuses them rather than inventing times.

The exercise is the record's own name, lower case with spaces as `_` (as `import qved` reads it):
"step-ups" stays whole. Task `auto`: `aqa` where the exercise and every error are in
core.taxonomy (the seed-002 answer templates and vt-analyze's error parser know them), else
`feedback` (the ground truth is the answer). An exercise the taxonomy knows under another spelling
("squats", "overhead-press": an alias, hyphens or a plural "s" aside) takes the taxonomy's key when
every error it names is the taxonomy's, so it builds as an aqa sample (`vt-prep build --variant temporal`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from videotune.core import taxonomy
from videotune.core.io import InputError
from videotune.core.progress import track
from videotune.core.schemas import ErrorSpan, Sample
from videotune.core.video import VideoReadError, frame_times
from videotune.prep.importers.common import (
    ImportResult,
    Refused,
    check_video,
    compile_group_regex,
    group_of,
    json_meta,
    load_json,
    resolve_media,
)
from videotune.prep.importers.qved import exercise_key
from videotune.prep.split import SPLITS

ANNOTATIONS_FILE = "annotated_errors.json"


@dataclass
class AnnotatedOptions:
    annotations: Path | None = None  # default <root>/annotated_errors.json
    task: Literal["auto", "aqa", "feedback"] = "auto"
    span_gap_s: float | None = None  # None: one span from the first marked frame to the last
    split: Literal["", "train", "val", "test"] = ""  # for records without their own; "" leaves it to `vt-prep split`
    group_regex: str | None = None
    dataset: str = "annotated_errors"


def _names(raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise Refused(f"{what} must be a list of names, found {raw!r}")
    return list(dict.fromkeys(x.strip() for x in raw))


def _frame_indices(raw: Any, n_frames: int, what: str = "error_frames") -> list[int]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Refused(f"{what} must be a list of frame indices, found {raw!r}")
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused(f"{what}: {value!r} is not a frame index (a whole number)")
        if value < 0:
            raise Refused(f"{what}: frame {value} is negative")
        if value >= n_frames:
            raise Refused(f"{what}: frame {value} is past the clip's end (it has {n_frames} frames, 0..{n_frames - 1})")
    return list(raw)


def frame_runs(frames: list[int], times_s: list[float], gap_s: float | None) -> list[tuple[int, int]]:
    """(first, last) marked frame of each run: all marks in one run when `gap_s` is None, else runs
    split where consecutive marks lie more than `gap_s` seconds apart."""
    ordered = sorted(set(frames))
    if not ordered:
        return []
    runs = [[ordered[0], ordered[0]]]
    for frame in ordered[1:]:
        if gap_s is not None and times_s[frame] - times_s[runs[-1][1]] > gap_s + 1e-9:
            runs.append([frame, frame])
        else:
            runs[-1][1] = frame
    return [(first, last) for first, last in runs]


def _own_spans(raw: Any, errors: list[str], n_frames: int) -> dict[str, list[tuple[int, int]]]:
    """`error_spans` ({error: [[first, last], ...]}) as `vt-prep annotate` writes it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Refused(f"error_spans must map an error to [[first frame, last frame], ...], found {raw!r}")
    spans: dict[str, list[tuple[int, int]]] = {}
    for name, pairs in raw.items():
        if name not in errors:
            raise Refused(f"error_spans names {name!r}, which is not in errors {errors}")
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise Refused(f"error_spans[{name!r}] must be [[first frame, last frame], ...], found {pairs!r}")
        checked = []
        for first, last in pairs:
            first, last = _frame_indices([first, last], n_frames, f"error_spans[{name!r}]")
            if last < first:
                raise Refused(f"error_spans[{name!r}]: span [{first}, {last}] ends before it starts")
            checked.append((first, last))
        spans[name] = sorted(checked)
    return spans


def taxonomy_exercise(label: str) -> str | None:
    """The taxonomy key an exercise name spells: the key itself or one of its aliases, spaces, hyphens and
    underscores alike, with an optional plural "s" ("squats", "Overhead-Press" -> squat, overhead_press)."""
    def norm(name: str) -> str:
        return re.sub(r"[\s_-]+", " ", name.strip().lower())

    wanted = norm(label)
    for key, exercise in taxonomy.EXERCISES.items():
        names = {norm(n) for n in (key, exercise.display, *exercise.aliases)}
        if wanted in names or (wanted.endswith("s") and wanted[:-1] in names):
            return key
    return None


def _label_and_task(label: str, errors: list[str], wanted: str) -> tuple[str, str]:
    """The sample's label and task: an exercise the taxonomy knows under another spelling takes the taxonomy's
    key where it becomes an aqa sample (its errors all the taxonomy's), so the answer templates and
    vt-analyze's parser know it; otherwise the name stays as written."""
    key = taxonomy_exercise(label)
    if key is not None and wanted != "feedback" and all(e in taxonomy.EXERCISES[key].errors for e in errors):
        return key, "aqa"
    return label, _task(key or label, errors, wanted)


def _task(label: str, errors: list[str], wanted: str) -> str:
    known = taxonomy.EXERCISES.get(label)
    fits = known is not None and all(e in known.errors for e in errors)
    if wanted == "aqa" and not fits:
        where = f"errors {[e for e in errors if e not in known.errors]} are not {label!r} errors" if known else \
            f"exercise {label!r} is not in the taxonomy ({', '.join(taxonomy.EXERCISES)})"
        raise Refused(f"unknown label: --task aqa needs the taxonomy's names: {where}")
    if wanted == "auto":
        return "aqa" if fits else "feedback"
    return wanted


def _record(root: Path, index: int, raw: Any, options: AnnotatedOptions, pattern: Any) -> Sample:
    if not isinstance(raw, dict):
        raise Refused(f"record {index} is a {type(raw).__name__}, not an object")
    video = raw.get("video")
    if not isinstance(video, str) or not video.strip():
        raise Refused("no video")
    path, media = resolve_media(root, video)
    exercise = raw.get("exercise")
    if not isinstance(exercise, str) or not exercise.strip():
        raise Refused("unknown label: no exercise")
    label = exercise_key(exercise)
    errors = _names(raw.get("errors"), "errors")
    truth = raw.get("ground_truth", "")
    if not isinstance(truth, str):
        raise Refused(f"ground_truth must be text, found {type(truth).__name__}")
    split = raw.get("split", "") or options.split
    if split not in ("", *SPLITS):
        raise Refused(f"unknown split {split!r}")
    info = check_video(path)
    try:
        info, times_s = frame_times(path)
    except (VideoReadError, InputError) as err:
        raise Refused(str(err), file=path) from None
    marked = _frame_indices(raw.get("error_frames"), len(times_s))
    if marked and not errors:
        raise Refused(f"error_frames {marked[:5]} are marked but no error is named")
    own = _own_spans(raw.get("error_spans"), errors, len(times_s))
    label, task = _label_and_task(label, errors, options.task)
    spans: list[ErrorSpan] = []
    untimed = []
    for name in errors:
        runs = own.get(name) or frame_runs(marked, times_s, options.span_gap_s)
        if not runs:
            untimed.append(name)
            spans.append(ErrorSpan(name=name, start_s=0.0, end_s=info.duration_s))
        spans.extend(ErrorSpan(name=name, start_s=times_s[first], end_s=times_s[last]) for first, last in runs)
    stem = media.rsplit(".", 1)[0] if not path.is_dir() else media
    meta = json_meta(
        exercise=exercise.strip(), video=video, error_frames=marked, error_times_s=[times_s[f] for f in marked],
        error_spans_frames={name: [list(run) for run in runs] for name, runs in own.items()},
        untimed_errors=untimed, annotator=raw.get("annotator") if isinstance(raw.get("annotator"), str) else None,
        fps=info.fps, n_frames=info.n_frames, width_px=info.width, height_px=info.height,
    )
    try:
        return Sample(
            id=stem, dataset=options.dataset, media=media, media_kind="video", duration_s=info.duration_s,
            fps=info.fps, split=split, group=group_of(stem, pattern), task=task, label=label,
            errors=sorted(spans, key=lambda s: (s.start_s, s.end_s, s.name)), answer=truth.strip(), meta=meta,
        )
    except ValidationError as err:
        raise Refused("; ".join(e["msg"] for e in err.errors())) from None


def load_annotations(path: Path) -> list[Any]:
    """The records of an annotated_errors.json (a JSON array); InputError when the file is not one."""
    data, _ = load_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of annotated clips, found a {type(data).__name__}")
    return data


def import_annotated(root: Path, options: AnnotatedOptions) -> ImportResult:
    result = ImportResult()
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    pattern = compile_group_regex(options.group_regex)
    source = options.annotations or root / ANNOTATIONS_FILE
    records = load_annotations(source)
    result.inputs.append(source)
    seen: dict[str, int] = {}
    for index, raw in track(list(enumerate(records)), "import annotated errors", len(records)):
        name = raw.get("video", f"#{index}") if isinstance(raw, dict) else f"#{index}"
        try:
            sample = _record(root, index, raw, options, pattern)
            if sample.id in seen:
                raise Refused(f"duplicate id {sample.id!r}: record {seen[sample.id]} names the same video")
            seen[sample.id] = index
            result.samples.append(sample)
        except Refused as why:
            result.refuse(source, f"{index}:{name}", str(why))
    untimed = sum(1 for s in result.samples if s.meta_dict().get("untimed_errors"))
    if untimed:
        result.notes.append(f"{untimed} clip(s) name errors without marked frames: whole-clip spans, "
                            "listed in meta.untimed_errors")
    return result
