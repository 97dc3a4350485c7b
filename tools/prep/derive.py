"""What every derived video set shares: decode a clip, change its frames, re-encode it, record lineage.

A derived set is a new data root: `videos/` (re-encoded with core.video.encode_video, x264
single-threaded with mbtree off, so the same seed gives the same bytes) and `samples.parquet`,
plus `run.json` whose `lineage` names the parent set, the operation, its parameters and the seed.
Clips that pass through unchanged are hard-linked (copied where links are impossible), so a
derived root is self-contained without doubling the disk use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import av
import numpy as np

from videotune.core.io import InputError, path_sha256
from videotune.core.schemas import Reject, Sample
from videotune.core.video import VideoReadError, encode_video, probe

# albumentations asks PyPI for a newer version on import; our machines do not reach it
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# the GOP the synthetic clips use; a derived clip keeps seeking costs like its parent's
KEYFRAME_INTERVAL_S = 2.0

FrameFn = Callable[[np.ndarray], np.ndarray]


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any parts, the same in every process (Python's hash() is salted)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(*parts: object) -> np.random.Generator:
    """A generator of its own per (seed, clip, operation): one clip's draws never shift another's."""
    return np.random.default_rng(stable_seed(*parts))


def iter_rgb_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video in presentation order, as uint8 RGB [H, W, 3]."""
    if not path.is_file():
        raise VideoReadError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise VideoReadError(f"{path}: cannot decode ({getattr(err, 'strerror', None) or err})") from err


def even(frame: np.ndarray) -> np.ndarray:
    """Crop a trailing row/column so both sides are even (H.264 with 4:2:0 chroma needs it)."""
    height, width = frame.shape[:2]
    return frame[: height - height % 2, : width - width % 2]


def transform_clip(src: Path, dst: Path, fn: FrameFn, crf: int = 23) -> int:
    """Decode `src`, apply `fn` to each frame, encode to `dst` (atomically) at the source's frame
    rate; returns the frame count."""
    fps = probe(src).fps
    return encode_video(dst, (even(np.ascontiguousarray(fn(f))) for f in iter_rgb_frames(src)), fps,
                        keyframe_interval_s=KEYFRAME_INTERVAL_S, crf=crf)


def link_or_copy(src: Path, dst: Path) -> None:
    """Make `dst` hold `src`'s bytes: a hard link where the filesystem allows, else a copy."""
    if not src.is_file():
        raise VideoReadError(f"{src}: file not found")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def with_meta(sample: Sample, **entries: Any) -> str:
    meta = sample.meta_dict()
    meta.update(entries)
    return json.dumps(meta, sort_keys=True)


def select(samples: list[Sample], splits: list[str]) -> tuple[list[Sample], list[Sample]]:
    """(samples an operation applies to, samples passed through): `splits` empty means all."""
    if not splits:
        return list(samples), []
    chosen = [s for s in samples if s.split in splits]
    return chosen, [s for s in samples if s.split not in splits]


@dataclass
class Lineage:
    """What run.json records about a derived set."""

    parent: str  # the parent set's samples.parquet (or examples file)
    parent_sha256: str
    operation: str
    params: dict[str, Any]
    seed: int

    @classmethod
    def of(cls, parent: Path, operation: str, params: dict[str, Any], seed: int) -> Lineage:
        return cls(str(parent), path_sha256(parent), operation, params, seed)

    def as_dict(self) -> dict[str, Any]:
        return {"parent": self.parent, "parent_sha256": self.parent_sha256, "operation": self.operation,
                "params": self.params, "seed": self.seed}


@dataclass
class ClipJob:
    """One output clip: a new sample and how to make its video from the parent's."""

    sample: Sample
    source: Path
    fn: FrameFn | None = None  # None: the bytes pass through unchanged (linked)
    crf: int = 23


@dataclass
class DerivedResult:
    samples: list[Sample] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def run_jobs(jobs: list[ClipJob], out_root: Path, advance: Callable[[], None] | None = None) -> DerivedResult:
    """Write every job's clip under `out_root`; a clip that cannot be read is rejected with the reason.

    A re-encoded clip has its parent's frames one for one at its parent's frame rate, so the
    parent's duration and error spans still hold.
    """
    result = DerivedResult()
    for job in jobs:
        sample = job.sample
        if job.fn is not None and PurePosixPath(sample.media).suffix != ".mp4":
            # what encode_video writes is an mp4, whatever the parent's container was
            sample = sample.model_copy(update={"media": str(PurePosixPath(sample.media).with_suffix(".mp4"))})
        target = out_root / sample.media
        try:
            if job.fn is None:
                link_or_copy(job.source, target)
            else:
                transform_clip(job.source, target, job.fn, crf=job.crf)
        except (VideoReadError, ValueError) as err:
            target.unlink(missing_ok=True)
            result.rejects.append(Reject(file=str(job.source), record=sample.id, reason=str(err)))
        else:
            result.samples.append(sample)
        if advance is not None:
            advance()
    return result


def check_videos(samples: list[Sample], samples_path: Path) -> None:
    """Derived video sets re-encode clips: refuse a set holding images, naming the first one."""
    for sample in samples:
        if sample.media_kind != "video":
            raise InputError(f"{samples_path}: sample {sample.id!r} is an {sample.media_kind}; "
                             "derived video sets take video samples only")


def write_video_set(
    out_root: Path,
    jobs: list[ClipJob],
    lineage: Lineage,
    command: str,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    refused: list[Any] | None = None,
) -> DerivedResult:
    """Write one derived set: its clips, samples.parquet, rejects.jsonl (if any) and run.json with the lineage.

    `refused`: records turned away before any clip was written (they come first in rejects.jsonl and count in run.json)."""
    from videotune.core.io import write_jsonl, write_samples
    from videotune.core.manifest import RunManifest
    from videotune.core.progress import Progress

    manifest = RunManifest("prep", command, config, out_root, seed=lineage.seed)
    manifest.add_input(lineage.parent, name="parent")
    with Progress(f"{command} {out_root.name}", len(jobs)) as progress:
        result = run_jobs(jobs, out_root, progress.advance)
    result.rejects = list(refused or []) + result.rejects
    write_samples(out_root / "samples.parquet", result.samples)
    if result.rejects:
        write_jsonl(out_root / "rejects.jsonl", result.rejects)
    manifest.write(outputs={"samples": "samples.parquet", "n_samples": len(result.samples),
                            "n_rejected": len(result.rejects)},
                   lineage=lineage.as_dict(), **(extra or {}))
    return result
