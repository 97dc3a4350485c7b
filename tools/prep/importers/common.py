"""What every importer shares: reading JSON that names its faults, keeping media inside the data
root, checking that a clip or an image really reads, and collecting refused records.

An importer walks its dataset record by record. A record it cannot use raises `Refused`
inside the loop; the loop turns that into a `Reject` (file, record, reason) and goes on, so one
bad clip never costs the rest. Faults that make the whole input unreadable (malformed JSON, a
missing root) raise `InputError` and stop the run with exit 2.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from videotune.core.io import InputError
from videotune.core.schemas import ErrorSpan, Reject, Sample
from videotune.core.video import SamplingSpec, VideoInfo, probe, sample_frames

# Media files an importer recognises by extension when a record names a video by id only.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")

# Annotation tools round times; a span may end up to 10 ms past the clip (as Sample allows).
END_TOLERANCE_S = 0.01


class Refused(Exception):
    """One record cannot be imported; the message is the reason written to rejects.jsonl.

    `file` names the file at fault where it is not the record's own annotation file.
    """

    def __init__(self, reason: str, file: Path | None = None):
        super().__init__(reason)
        self.file = file


@dataclass
class ImportResult:
    """What an importer hands back to the CLI: the samples, the refused records, and the files read."""

    samples: list[Sample] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)  # annotation files, hashed into run.json
    notes: list[str] = field(default_factory=list)  # things worth saying that are not rejects

    def refuse(self, file: str | Path, record: str, reason: str) -> None:
        self.rejects.append(Reject(file=str(file), record=record, reason=reason))


# --------------------------------------------------------------------------- JSON


def load_json(path: Path) -> tuple[Any, list[str]]:
    """Parse a JSON file; malformed JSON raises InputError with the file, line and column.

    Also returns the object keys that occur twice in one object: `json` keeps the last one
    silently, which would hide a duplicate id in a label file.
    """
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start}): not a JSON file") from err
    try:
        return json.loads(text, object_pairs_hook=pairs), duplicates
    except json.JSONDecodeError as err:
        raise InputError(
            f"{path}: malformed JSON at line {err.lineno}, column {err.colno} (char {err.pos}): {err.msg}"
        ) from err


def load_records(path: Path) -> list[Any]:
    """A list of records from a JSON array, or from JSON Lines (one object a line) for .jsonl files."""
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        records = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: malformed JSON at line {lineno}, column {err.colno}: {err.msg}") from err
        return records
    data, _ = load_json(path)
    if isinstance(data, dict):
        # Some releases wrap the list: {"data": [...]} or {"annotations": [...]}.
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of records, found a {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- media paths


def resolve_media(root: Path, given: str) -> tuple[Path, str]:
    """The file a record names and its path relative to `root`; Refused if it leaves the root.

    A path escapes when `..` climbs out, when it is absolute and outside the root, or when a
    symlink on the way resolves outside: the stored relative path must keep pointing at data
    the user meant to import, wherever the root is mounted next.
    """
    if not isinstance(given, str) or not given.strip():
        raise Refused("no media path")
    root_real = root.resolve()
    candidate = Path(given)
    if not candidate.is_absolute():
        candidate = root / candidate
    # Lexical normalisation first: "a/../b.mp4" stays inside, "../x.mp4" does not.
    lexical = Path(os.path.normpath(candidate.absolute()))
    root_lexical = Path(os.path.normpath(root.absolute()))
    try:
        relative = lexical.relative_to(root_lexical)
    except ValueError:
        try:
            relative = lexical.relative_to(root_real)
        except ValueError:
            raise Refused(f"media path {given!r} escapes the data root {root}") from None
    real = lexical.resolve()
    try:
        real.relative_to(root_real)
    except ValueError:
        raise Refused(f"media path {given!r} resolves to {real}, outside the data root {root} (a symlink?)") from None
    if not relative.parts:
        raise Refused(f"media path {given!r} names the data root itself")
    return root / relative, relative.as_posix()


def find_video(folder: Path, stem: str) -> Path | None:
    """The video in `folder` whose name is `stem` plus a known extension, else a frames folder named
    `stem` (core.video); None if there is neither."""
    for ext in VIDEO_EXTENSIONS:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file() or candidate.is_symlink():
                return candidate
    return folder / stem if (folder / stem).is_dir() else None


# --------------------------------------------------------------------------- media checks


def check_video(path: Path) -> VideoInfo:
    """Probe a clip and decode its first and last frame; Refused if it is missing, unreadable or cut.

    The header alone (probe) can promise frames a truncated file no longer holds, and bytes can
    demux but not decode: decoding the two ends catches both at the cost of two frames.
    """
    try:
        info = probe(path)
        sample_frames(path, SamplingSpec(n_frames=2, size=32))
    except InputError as err:  # VideoReadError, or no frame in the clip at all
        raise Refused(str(err), file=path) from None
    except (av.error.FFmpegError, OSError) as err:  # damaged packets the decoder gives up on
        raise Refused(f"{path}: cannot decode the video ({err})", file=path) from None
    return info


def check_image(path: Path) -> tuple[int, int]:
    """Open and fully decode an image; its (width, height) in px. Refused if missing, truncated or not an image."""
    from videotune.core.image import load_image

    try:
        height, width = load_image(path).shape[:2]  # decodes every pixel: truncation fails here, not in training
    except InputError as err:
        raise Refused(str(err), file=path) from None
    return width, height


# --------------------------------------------------------------------------- spans


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refused(f"{what} is {value!r}, not a number of seconds")
    return float(value)


def parse_intervals(raw: Any, name: str) -> list[tuple[float, float]]:
    """A label value: a list of [start_s, end_s] pairs ([] = no error); a bare [start_s, end_s] is one pair."""
    if not isinstance(raw, list):
        raise Refused(f"{name}: expected a list of [start_s, end_s] intervals, found {raw!r}")
    if len(raw) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raw = [raw]
    intervals = []
    for k, item in enumerate(raw):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise Refused(f"{name}: interval {k} is {item!r}, not [start_s, end_s]")
        intervals.append((_seconds(item[0], f"{name}: interval {k} start"), _seconds(item[1], f"{name}: interval {k} end")))
    return intervals


def make_spans(name: str, intervals: Iterable[tuple[float, float]], duration_s: float) -> list[ErrorSpan]:
    """Checked error spans: Refused for a negative time, an end before its start, or an end past the clip."""
    spans = []
    for start, end in intervals:
        if start < 0 or end < 0:
            raise Refused(f"error {name!r}: negative time in [{start}, {end}] s")
        if end < start:
            raise Refused(f"error {name!r}: interval ends ({end} s) before it starts ({start} s)")
        if duration_s and (start > duration_s + END_TOLERANCE_S or end > duration_s + END_TOLERANCE_S):
            raise Refused(f"error {name!r}: interval [{start}, {end}] s runs past the clip's end ({duration_s:.3f} s)")
        spans.append(ErrorSpan(name=name, start_s=start, end_s=end))
    return sorted(spans, key=lambda s: (s.start_s, s.end_s))


def merge_spans(spans: list[ErrorSpan]) -> list[ErrorSpan]:
    """Seed 002's reduction: each error's intervals collapsed to one (earliest start, latest end)."""
    merged = []
    for name in dict.fromkeys(s.name for s in spans):
        mine = [s for s in spans if s.name == name]
        merged.append(ErrorSpan(name=name, start_s=min(s.start_s for s in mine), end_s=max(s.end_s for s in mine)))
    return merged


# --------------------------------------------------------------------------- groups


def group_of(key: str, pattern: re.Pattern[str] | None) -> str:
    """The leakage unit of a record: the regex's first group (or whole match) on `key`, else `key` itself."""
    if pattern is None:
        return key
    match = pattern.search(key)
    if match is None:
        return key
    return match.group(1) if match.groups() else match.group(0)


def compile_group_regex(text: str | None) -> re.Pattern[str] | None:
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as err:
        raise InputError(f"--group-regex {text!r} is not a valid regular expression: {err}") from err


def json_meta(**values: Any) -> str:
    """Sample.meta as text, without empty values."""
    return json.dumps({k: v for k, v in values.items() if v not in (None, "", [], {})}, sort_keys=True)
