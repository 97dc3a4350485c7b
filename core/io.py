"""Artifact IO: atomic writes, validated JSONL/Parquet, resumable JSONL keyed by id.

Every reader validates each record against its schema and raises `InputError` naming the
file, the record (line number and id) and the problem; the CLIs turn that into exit 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from videotune.core.schemas import Sample

M = TypeVar("M", bound=BaseModel)


class InputError(Exception):
    """Bad input from the user: a CLI reports it and exits with status 2."""


class WorkFailed(Exception):
    """The work ran and its outputs are written, but it did not succeed (every judge request failed,
    say): a CLI reports it in one line and exits with status 1."""


def describe_error(err: ValidationError) -> str:
    # "Value error, " is pydantic's prefix for a validator's ValueError: the message says enough
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors()
    )


# --------------------------------------------------------------------------- atomic writes


def _plain_mode(base: int) -> int:
    """The mode a plain open()/mkdir() would give: `base` less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; rename it over `path` only if the block succeeds.

    A crash mid-write leaves the previous file (or none) in place, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, _plain_mode(0o666))  # mkstemp creates 0600
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replace_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temp folder beside `path`; swap it in for `path` only if the block succeeds.

    For outputs that are whole folders (a model directory): a crash while writing leaves the
    previous folder intact, never a mix of old and new files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        os.chmod(path, _plain_mode(0o777))  # mkdtemp creates 0700
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err


# --------------------------------------------------------------------------- hashing


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def path_sha256(path: str | Path) -> str:
    """Content hash of a file, or of a directory (relative names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(child.relative_to(path)).encode())
        digest.update(file_sha256(child).encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- JSONL


def parse_jsonl_line(path: Path, lineno: int, line: str, model: type[M]) -> M:
    """One validated record; InputError naming the file, the line and the id when it is bad."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {lineno}: malformed JSON at column {err.colno}: {err.msg}") from err
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        rid = raw.get("id", "?") if isinstance(raw, dict) else "?"
        raise InputError(f"{path}: line {lineno} (id {rid!r}): {describe_error(err)}") from err


def iter_jsonl_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; InputError when the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                yield lineno, line


def iter_jsonl(path: str | Path, model: type[M]) -> Iterator[M]:
    """Yield validated records; a bad line raises InputError naming file, line and id."""
    path = Path(path)
    for lineno, line in iter_jsonl_lines(path):
        yield parse_jsonl_line(path, lineno, line, model)


def read_jsonl(path: str | Path, model: type[M]) -> list[M]:
    records = list(iter_jsonl(path, model))
    ids = [getattr(r, "id", None) for r in records]
    seen: set[Any] = set()
    for rid in ids:
        if rid is not None and rid in seen:
            raise InputError(f"{path}: duplicate id {rid!r}")
        seen.add(rid)
    return records


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> int:
    """Write validated records atomically; returns the count."""
    count = 0
    with atomic_open(path, "w") as fh:
        for record in records:
            type(record).model_validate(record.model_dump())  # re-validate what we write
            fh.write(record.model_dump_json() + "\n")
            count += 1
    return count


class ResumableJsonl:
    """Append-only JSONL keyed by id, for long runs that may be killed.

    On open it reads the ids already written (dropping a last line cut short by a kill),
    so a rerun skips them; each append is flushed and fsynced, so a kill loses at most
    the record being written and never duplicates one.
    """

    def __init__(self, path: str | Path, model: type[M]):
        self.path = Path(path)
        self.model = model
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._recover()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _recover(self) -> None:
        raw = self.path.read_bytes()
        good_end = 0
        for lineno, line in enumerate(raw.splitlines(keepends=True), start=1):
            if not line.endswith(b"\n"):
                break  # the record being written when the run was killed
            if line.strip():
                try:
                    record = self.model.model_validate_json(line)
                except ValidationError as err:
                    raise InputError(
                        f"{self.path}: cannot resume: line {lineno} is not a valid record ({describe_error(err)})"
                    ) from err
                self.done.add(record.id)  # type: ignore[attr-defined]
            good_end += len(line)
        if good_end != len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def append(self, record: BaseModel) -> None:
        rid = record.id  # type: ignore[attr-defined]
        if rid in self.done:
            return
        self._fh.write(record.model_dump_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done.add(rid)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ResumableJsonl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- samples.parquet

_LIST_COLUMNS = ("errors",)


def write_samples(path: str | Path, samples: Iterable[Sample]) -> int:
    import pandas as pd

    rows = [Sample.model_validate(s.model_dump()).model_dump() for s in samples]
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{path}: duplicate sample id {dup!r}")
    columns = list(Sample.model_fields)
    frame = pd.DataFrame(rows, columns=columns)
    with atomic_open(path, "wb") as fh:
        frame.to_parquet(fh, index=False)
    return len(rows)


def read_samples(path: str | Path) -> list[Sample]:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable parquet file ({err})") from err
    missing = [c for c in Sample.model_fields if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    samples = []
    seen: set[str] = set()
    for index, row in enumerate(frame.to_dict(orient="records")):
        for col in _LIST_COLUMNS:
            row[col] = [dict(x) for x in row[col]] if row[col] is not None else []
        try:
            sample = Sample.model_validate(row)
        except ValidationError as err:
            raise InputError(f"{path}: row {index} (id {row.get('id')!r}): {describe_error(err)}") from err
        if sample.id in seen:
            raise InputError(f"{path}: row {index}: duplicate id {sample.id!r}")
        seen.add(sample.id)
        samples.append(sample)
    return samples
