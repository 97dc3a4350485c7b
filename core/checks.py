"""Checks that run before any work starts, and before any model loads.

Bad input is found up front, reported whole (every refused record, not just the first) and
named by file and record, so that a user learns in seconds what a run would otherwise fail on
after minutes of model loading:

- `check_out`: an output folder that is an existing file;
- `check_model_dir`: a local model directory whose JSON does not parse, whose safetensors are cut
  short, or whose index names a shard that is not there;
- `media_path`: a media path that leaves its data root (`..`, absolute, or a symlink out);
- `check_examples` / `refuse`: every record of an examples file and every clip or image it names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ValidationError

from videotune.core.io import InputError, describe_error, iter_jsonl_lines, parse_jsonl_line, write_jsonl
from videotune.core.progress import Progress
from videotune.core.schemas import Example, Reject
from videotune.core.video import frames_restatement_problem

log = logging.getLogger("videotune")

REJECTS_FILE = "rejects.jsonl"


def check_out(path: Path, flag: str = "--out", kind: str = "folder") -> None:
    """Refuse an output `kind` (folder or file) that exists as the other kind, or that lies under a file."""
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path}: an existing file, not a folder; pass a folder to write into")
    if kind == "file" and path.is_dir():
        raise InputError(f"{flag} {path}: an existing folder, not a file; pass the file to write")
    for where in path.parents:
        if where.is_dir():
            return
        if where.exists():
            raise InputError(f"{flag} {path}: {where} is a file, so no folder can be made under it")


def check_model_dir(path: Path) -> None:
    """Refuse a local model directory that cannot load, naming the broken file.

    Every JSON file must parse, every safetensors file must hold its whole header and every
    tensor the header lists (a copy or a download cut short fails here), and every shard an
    index names must exist. Nothing is checked for a name that is not a local directory (a
    registry name or a hub id).
    """
    if not path.is_dir():
        return
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model directory (no config.json)")
    for file in sorted(path.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{file}: not valid JSON ({err}); the model directory is damaged") from None
        if file.name.endswith(".index.json") and isinstance(data, dict):
            for shard in sorted(set((data.get("weight_map") or {}).values())):
                if not (path / shard).is_file():
                    raise InputError(f"{file}: names the weight shard {shard}, which is not in {path}")
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # a tool installed without the model extras: transformers will say more
        return
    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="numpy"):
                pass
        except (SafetensorError, OSError) as err:
            raise InputError(f"{file}: not a readable safetensors file ({err}); was it cut short?") from None


def media_path(data_root: Path, media: str) -> Path:
    """The file `media` names under `data_root`; InputError when it leaves the root.

    `..` and absolute paths are refused by the schemas already; here the path is resolved on
    disk, so a symlink inside the root that leads out of it is refused too.
    """
    path = data_root / media
    root = data_root.resolve()
    if not (media and not Path(media).is_absolute()):
        raise InputError(f"media path {media!r} must be relative to the data root {data_root}")
    real = path.resolve()
    if not real.is_relative_to(root):
        why = "climbs out of" if ".." in Path(media).parts else f"resolves through a symlink to {real}, outside"
        raise InputError(f"media path {media!r} {why} the data root {data_root}")
    return path


def _media_problem(example: Example, data_root: Path, n_frames: int | None) -> str | None:
    """Why the media of `example` cannot be used, or None (nothing is decoded: headers and packets only)."""
    from videotune.core.image import is_image_path

    try:
        path = media_path(data_root, example.media)
        if example.frames is None and is_image_path(example.media):
            _check_image(path)
        else:
            from videotune.core.video import example_sampling, plan_frames

            # The frames the example would use: a clip cut short before them fails here.
            plan_frames(path, example_sampling(example, None, n_frames))
    except InputError as err:
        return str(err)
    return None


def _check_image(path: Path) -> None:
    from PIL import Image

    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file and its checksums, decodes nothing
    except Exception as err:  # noqa: BLE001 - PIL raises many types (SyntaxError among them) for a bad file
        raise InputError(f"{path}: not a readable image ({err})") from None


def check_examples(
    path: Path, data_root: Path | None, n_frames: int | None = None, limit: int | None = None
) -> tuple[list[Example], list[Reject]]:
    """Every record of an examples file and the media it names, checked before any model loads.

    Returns the valid examples (the first `limit` records) and one Reject per refused record:
    a line that is not a valid example, a duplicate id, or media that leaves `data_root`, is
    missing or cannot be read up to the frames the example uses, or a prompt that cannot state
    `n_frames` frames where that changes the count. `data_root` None checks the records only. An empty file is refused outright.
    """
    examples: list[Example] = []
    rejects: list[Reject] = []
    lines = list(iter_jsonl_lines(path))[:limit]
    if not lines:
        raise InputError(f"{path}: no examples (the file is empty)")
    first_line: dict[str, int] = {}
    with Progress(f"check {path.name}", len(lines)) as progress:
        for lineno, line in lines:
            progress.advance()
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                rejects.append(Reject(file=str(path), record=f"line {lineno}", reason=f"malformed JSON: {err.msg}"))
                continue
            rid = raw.get("id", "?") if isinstance(raw, dict) else "?"
            record = f"line {lineno} (id {rid!r})"
            try:
                example = Example.model_validate(raw)
            except ValidationError as err:
                rejects.append(Reject(file=str(path), record=record, reason=describe_error(err)))
                continue
            if example.id in first_line:
                rejects.append(Reject(file=str(path), record=record,
                                      reason=f"duplicate id (first on line {first_line[example.id]})"))
                continue
            first_line[example.id] = lineno
            problem = frames_restatement_problem(example, n_frames)
            if problem is None and data_root is not None:
                problem = _media_problem(example, data_root, n_frames)
            if problem:
                rejects.append(Reject(file=str(path), record=record, reason=problem))
                continue
            examples.append(example)
    return examples, rejects


def check_media_paths(path: Path, data_root: Path, record_type: type[BaseModel] = Example) -> None:
    """Refuse every record of `path` whose media leaves `data_root`, all named in one error (nothing is opened).

    For the tools that read media as they go: a file that is missing or unreadable is named
    when it is reached; one outside the data root is never opened at all.
    """
    refused = []
    for lineno, line in iter_jsonl_lines(path):
        record = parse_jsonl_line(path, lineno, line, record_type)
        try:
            media_path(data_root, record.media)  # type: ignore[attr-defined]
        except InputError as err:
            refused.append(f"line {lineno} (id {record.id!r}): {err}")  # type: ignore[attr-defined]
    if refused:
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        raise InputError(f"{path}: {len(refused)} records name media outside the data root: "
                         f"{'; '.join(refused[:3])}{more}")


def refuse(rejects: Sequence[Reject], out_dir: Path, n_records: int) -> None:
    """Write `rejects` to OUT/rejects.jsonl and raise InputError naming the first ones; with none,
    remove a rejects.jsonl an earlier refused run left there."""
    target = out_dir / REJECTS_FILE
    if not rejects:
        target.unlink(missing_ok=True)
        return
    write_jsonl(target, rejects)
    shown = "; ".join(f"{r.file}: {r.record}: {r.reason}" for r in rejects[:3])
    more = f" (and {len(rejects) - 3} more)" if len(rejects) > 3 else ""
    raise InputError(f"{len(rejects)} of {n_records} records refused before loading the model: {shown}{more}; "
                     f"every reason in {target}")


def differences(before: dict, now: dict, keys: Sequence[str]) -> list[str]:
    """`key earlier -> now` for each of `keys` whose value differs (a key missing from `before` is skipped)."""
    return [f"{key} {before[key]!r} -> {now.get(key)!r}" for key in keys if key in before and before[key] != now.get(key)]
