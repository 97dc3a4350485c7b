"""Video IO: H.264 encoding, and (below) frame sampling with exact timestamps and a cache, from video
files or from frames folders (a clip given as JPEG/PNG stills with their times)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from pathlib import Path
from typing import Any, NoReturn

import av
import numpy as np

from videotune.core.io import InputError, atomic_open, file_sha256, path_sha256

log = logging.getLogger("videotune")


def encode_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    keyframe_interval_s: float = 2.0,
    crf: int = 23,
) -> int:
    """Encode RGB uint8 frames (H, W, 3; even H and W) to an H.264 mp4, atomically.

    Single-threaded x264 with a fixed GOP, so the same frames give the same bytes.
    Returns the number of frames written.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_open(path, "wb") as fh:
        with av.open(fh, mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    height, width = frame.shape[:2]
                    stream = container.add_stream("libx264", rate=rate)
                    stream.width, stream.height = width, height
                    stream.pix_fmt = "yuv420p"
                    gop = max(1, round(keyframe_interval_s * fps))
                    stream.codec_context.gop_size = gop
                    stream.options = {
                        "crf": str(crf),
                        "preset": "veryfast",
                        "threads": "1",
                        # a fixed GOP: scene-cut keyframes would make seeking costs unpredictable;
                        # mbtree off: its lookahead reads uninitialised memory at small frame sizes,
                        # so the same frames gave different bytes from one process to the next
                        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:mbtree=0",
                    }
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError(f"{path}: no frames to encode")
            for packet in stream.encode():
                container.mux(packet)
    return count


# --------------------------------------------------------------------------- probing


class VideoReadError(InputError):
    """A video file that is missing, unreadable, undecodable or truncated; the message names it."""


@dataclass
class VideoInfo:
    duration_s: float
    fps: float
    n_frames: int
    width: int  # px
    height: int  # px


def _reason(err: BaseException) -> str:
    # FFmpeg errors read "[Errno N] text: 'file'"; after our own "path:" the text alone is enough
    return getattr(err, "strerror", None) or str(err)


# Opening options for a file already opened and probed once: FFmpeg's stream probing
# (avformat_find_stream_info) decodes the first frames to learn what the container may not
# store; the decoder-side option skip_frame=all makes it read packets only (4.5 -> 2.1 ms per
# open of the 640x480 bench clip). The probe's frames are discarded either way.
_REOPEN_OPTIONS = {"skip_frame": "all"}


@contextmanager
def _open_video(
    path: Path, options: dict[str, str] | None = None
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    if not path.exists():
        raise VideoReadError(f"{path}: file not found")
    if not path.is_file():
        raise VideoReadError(f"{path}: not a file")
    try:
        container = av.open(str(path), mode="r", options=options)
    except (av.error.FFmpegError, OSError) as err:
        raise VideoReadError(f"{path}: not a readable video ({_reason(err)})") from err
    try:
        if not container.streams.video:
            raise VideoReadError(f"{path}: no video stream")
        yield container, container.streams.video[0]
    finally:
        container.close()


def _read_info(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[VideoInfo, bool]:
    """The stream's metadata, and whether its frame count is the container's own (exact) count."""
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base  # container.duration is in microseconds
    else:
        duration_s = 0.0
    counted = bool(stream.frames and stream.frames > 0)
    n_frames = int(stream.frames) if counted else round(duration_s * fps)
    if counted and duration_s <= 0 and fps > 0:
        duration_s = n_frames / fps
    if counted and fps <= 0 and duration_s > 0:
        fps = n_frames / duration_s
    if fps <= 0 or duration_s <= 0 or n_frames <= 0:
        raise VideoReadError(
            f"{path}: the stream metadata gives no usable frame rate, duration or frame count "
            f"({fps:g} fps, {duration_s:g} s, {n_frames} frames)"
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    return VideoInfo(duration_s=duration_s, fps=fps, n_frames=n_frames, width=width, height=height), counted


def probe(path: str | Path) -> VideoInfo:
    """Duration, frame rate, frame count and size from the stream metadata (nothing is decoded).

    Where the container stores no frame count, it is derived as round(duration * fps).
    """
    path = Path(path)
    if is_frames_folder(path):
        return _read_frames_folder(path).info
    with _open_video(path) as (container, stream):
        return _read_info(path, container, stream)[0]


# --------------------------------------------------------------------------- sampling spec

# Bumped whenever the rule that maps a spec to frames changes, so old cache entries stop matching.
_SAMPLING_VERSION = 1


def _checked_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"SamplingSpec: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _checked_float(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"SamplingSpec: {name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"SamplingSpec: {name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SamplingSpec:
    """Which frames to take from a video.

    Either `n_frames` spread uniformly or `target_fps` frames per second of video (exactly one;
    `n_frames` defaults to 8, so pass `n_frames=None` with `target_fps`), inside [start_s, end_s]
    (seconds from the stream start; the whole clip by default), resized so that the longer side
    is `size` px (None keeps the source size). With `target_fps`, `max_frames` caps the count:
    where the rate would give more frames, that many are spread uniformly over the window instead
    (a long clip keeps its whole span rather than its first `max_frames` frames).
    """

    n_frames: int | None = 8
    target_fps: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    size: int | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if (self.n_frames is None) == (self.target_fps is None):
            raise ValueError(
                "SamplingSpec: give exactly one of n_frames and target_fps "
                f"(got n_frames={self.n_frames!r}, target_fps={self.target_fps!r}; n_frames defaults "
                "to 8, so pass n_frames=None with target_fps)"
            )
        # Normalised (int 2 and float 2.0 alike) so that equal specs give equal cache keys.
        if self.n_frames is not None:
            object.__setattr__(self, "n_frames", _checked_int("n_frames", self.n_frames, 1))
        if self.target_fps is not None:
            object.__setattr__(self, "target_fps", _checked_float("target_fps", self.target_fps, positive=True))
        if self.start_s is not None:
            object.__setattr__(self, "start_s", _checked_float("start_s", self.start_s, positive=False))
        if self.end_s is not None:
            object.__setattr__(self, "end_s", _checked_float("end_s", self.end_s, positive=True))
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"SamplingSpec: end_s ({self.end_s}) must be after start_s ({self.start_s})")
        if self.size is not None:
            object.__setattr__(self, "size", _checked_int("size", self.size, 1))
        if self.max_frames is not None:
            if self.target_fps is None:
                raise ValueError("SamplingSpec: max_frames caps a target_fps sampling; with n_frames it has no meaning")
            object.__setattr__(self, "max_frames", _checked_int("max_frames", self.max_frames, 1))

    def key(self) -> str:
        """A stable, filename-safe string naming this spec (and the sampling rule's version)."""

        def part(value: int | float | None) -> str:
            return "-" if value is None else repr(value)  # repr: the shortest exact float text

        # the cap is appended only when set, so the keys of uncapped specs (and their cache entries) stay as they were
        return (
            f"v{_SAMPLING_VERSION}_n{part(self.n_frames)}_fps{part(self.target_fps)}"
            f"_start{part(self.start_s)}_end{part(self.end_s)}_size{part(self.size)}"
            + (f"_max{self.max_frames}" if self.max_frames is not None else "")
        )


def example_sampling(example: Any, size: int | None, n_frames: int | None = None) -> SamplingSpec:
    """The frames a conversation example names, so that training and inference see exactly the frames
    its prompt states: the rule `meta.sampling` records (`{n_frames, start_s, end_s}` from `vt-prep
    frames`; `{target_fps, max_frames}` from `vt-prep build --fps`), else its frame count spread
    uniformly. `n_frames` overrides the count (uniform, inside the recorded window)."""
    window = (getattr(example, "meta", None) or {}).get("sampling") or {}
    frames = getattr(example, "frames", None)
    if window.get("target_fps") is not None and not n_frames:
        return SamplingSpec(n_frames=None, target_fps=window["target_fps"], max_frames=window.get("max_frames"),
                            start_s=window.get("start_s"), end_s=window.get("end_s"), size=size)
    count = n_frames or window.get("n_frames") or (frames.n if frames is not None else 1)
    return SamplingSpec(n_frames=count, start_s=window.get("start_s"), end_s=window.get("end_s"), size=size)


@dataclass(eq=False)
class SampledFrames:
    frames: np.ndarray  # uint8 [N, H, W, 3], RGB
    timestamps_s: list[float]  # presentation time of each frame, seconds from the stream start
    duration_s: float
    fps: float  # of the source video


def _select_positions(times_s: np.ndarray, spec: SamplingSpec, fps: float) -> np.ndarray:
    """Frame positions (presentation order) that `spec` picks, given every frame's time in s.

    Uniform: np.linspace(first, last, n, dtype=int) over the frames inside the window, the seed
    paper's rule. target_fps: every (fps / target_fps)-th frame from the first one in the window.
    With max_frames, a rate that would give more frames than that gives the uniform rule's
    max_frames frames instead. A window holding fewer frames than asked for repeats positions
    (linspace truncates to the same index; a step below one frame lands twice on one) rather than
    failing, so a batch always gets the frame count it was built for. Empty when no frame lies in
    the window.
    """
    # 1 ns of slack: a window edge written as 1.3 must include the frame whose time is 1.3000000000000000444
    inside = np.ones(len(times_s), dtype=bool)
    if spec.start_s is not None:
        inside &= times_s >= spec.start_s - 1e-9
    if spec.end_s is not None:
        inside &= times_s <= spec.end_s + 1e-9
    candidates = np.flatnonzero(inside)
    if candidates.size == 0:
        return candidates
    first, last = int(candidates[0]), int(candidates[-1])
    if spec.n_frames is not None:
        return np.linspace(first, last, spec.n_frames, dtype=int)
    step = fps / spec.target_fps  # frames
    count = math.floor((last - first) / step + 1e-9) + 1
    if spec.max_frames is not None and count > spec.max_frames:
        return np.linspace(first, last, spec.max_frames, dtype=int)
    # the 1e-9 keeps k * step from rounding down just below an integer (e.g. 3 * (10 / 3))
    return first + np.floor(np.arange(count) * step + 1e-9).astype(int)


def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    if size is None:
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    if frame.width == width and frame.height == height:
        return frame.to_ndarray(format="rgb24")
    # AREA averages the source pixels under each output pixel: no aliasing when shrinking
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


# --------------------------------------------------------------------------- decoding

# AVI stores decode-order times: with B-frames its "pts" do not give the presentation order.
_FORMATS_WITHOUT_PRESENTATION_TIMES = frozenset({"avi"})


@dataclass
class _FrameIndex:
    """Where each frame lies, from one demux pass: packets are read, nothing is decoded."""

    pts: list[int] | None  # presentation order, in stream.time_base; None: pts cannot place frames
    keyframe_positions: np.ndarray  # positions in `pts` of the keyframes, ascending
    n_packets: int  # packets with data, discarded ones included: what the header's count counts
    n_frames: int  # frames a decoder outputs (packets an edit list discards excluded)
    read_error: str | None  # why demuxing stopped early, if it did
    # Decode time (stream.time_base) of the last packet but one: every frame shown at or before
    # it was read whole, even in a cut file (the last packet read may be cut short).
    complete_through_pts: int | None

    def through(self, pts_limit: int) -> _FrameIndex:
        """The frames shown at or before `pts_limit` (pts mode only)."""
        assert self.pts is not None
        kept = [pts for pts in self.pts if pts <= pts_limit]
        keyframes = self.keyframe_positions[self.keyframe_positions < len(kept)]
        return _FrameIndex(kept, keyframes, self.n_packets, len(kept), self.read_error, self.complete_through_pts)


def _index_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> _FrameIndex:
    entries: list[tuple[int | None, bool]] = []
    n_packets = 0
    read_error = None
    decode_times: list[int] = []  # the last two packets' dts, in read order
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the empty packet demux yields at the end to flush the decoder
            n_packets += 1
            if packet.dts is not None:
                decode_times = [*decode_times[-1:], packet.dts]
            if packet.is_discard:
                continue  # before the edit list's start: decoded only as a reference, never shown
            entries.append((packet.pts, packet.is_keyframe))
    except av.error.FFmpegError as err:
        read_error = _reason(err)  # a cut file: keep what was read, the caller judges the shortfall
    complete_through = decode_times[0] if len(decode_times) == 2 else None
    usable = container.format.name not in _FORMATS_WITHOUT_PRESENTATION_TIMES and all(
        pts is not None for pts, _ in entries
    )
    if not usable:
        keyframes = np.flatnonzero([is_key for _, is_key in entries])
        return _FrameIndex(None, keyframes, n_packets, len(entries), read_error, complete_through)
    entries.sort(key=lambda entry: entry[0])
    keyframes = np.flatnonzero([is_key for _, is_key in entries])
    return _FrameIndex([pts for pts, _ in entries], keyframes, n_packets, len(entries), read_error, complete_through)


def _truncated(path: Path, end_s: float, wanted_s: float, detail: str | None = None) -> VideoReadError:
    return VideoReadError(
        f"{path}: truncated: the stream ends at {end_s:.2f} s but frames up to {wanted_s:.2f} s were expected"
        + (f" ({detail})" if detail else "")
    )


class _SeekFailed(Exception):
    """A seek gave no frame, or landed past the keyframe it was asked for."""


class _NotDecoded(Exception):
    """The decoder, drained after a run's last wanted packet, did not give that frame."""


def _decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    seek_pts: int | None,
    wanted_pts: frozenset[int],
    run_pts: frozenset[int] | None = None,
) -> Iterator[av.VideoFrame]:
    """Frames from `seek_pts` on (from where the container stands if None), until `run_pts` are out.

    A frame no other frame refers to (most B-frames) is not decoded at all unless it is
    wanted: skipping it changes no other frame's pixels, and saves about a third of the
    decoding time on x264 output with B-frames.
    Once the packets of every frame in `run_pts` are in, the decoder is drained: every frame a
    frame depends on comes before it in decode order, so the packets after them (which a decoder
    that reorders B-frames would otherwise read, and decode where they are references, before it
    shows the last of them) are not needed.
    """
    if seek_pts is not None:
        # lands on the keyframe at or before seek_pts and flushes the decoder's buffers
        container.seek(seek_pts, stream=stream, backward=True)
    codec = stream.codec_context
    not_sent = set(run_pts) if run_pts is not None else None
    for packet in container.demux(stream):
        # read per packet (frame threads copy it when the packet is submitted)
        codec.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted_pts else "NONREF"
        yield from packet.decode()
        if not_sent is not None:
            not_sent.discard(packet.pts)
            if not not_sent:
                yield from codec.decode(None)
                # reached only while the caller still waits: a frame of run_pts never came out
                raise _NotDecoded()


def _keyframe_at_or_before(keyframe_positions: np.ndarray, position: int) -> int:
    # a stream that opens on non-key frames (a cut transport stream) has none before them: 0
    before = int(np.searchsorted(keyframe_positions, position, side="right")) - 1
    return int(keyframe_positions[before]) if before >= 0 else 0


def _decode_positions(
    path: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: _FrameIndex,
    wanted: list[int],
    times_s: np.ndarray,
    width: int,
    height: int,
    seek: bool,
) -> dict[int, np.ndarray]:
    """Decode forward, keeping the wanted positions (ascending); a decoded frame's pts gives its position.

    With `seek`, every run starts with a seek (the index pass left the container at its end),
    and a later one jumps ahead wherever a keyframe lies between the last decoded frame and the
    next wanted one. Without it, the container must stand at its start: one run, no jumps.
    Raises _SeekFailed when a seek gives no frame or lands past the wanted frame.
    """
    assert index.pts is not None
    position_of = {pts: position for position, pts in enumerate(index.pts)}
    wanted_pts = frozenset(index.pts[position] for position in wanted)
    # The wanted frames of each forward run. Seeking, a new run starts where the next wanted frame's
    # keyframe lies past the frame after the last one: frames before that keyframe cannot help decode
    # it, so they are skipped by a seek (unless the current run is about to reach the keyframe anyway).
    run_of: dict[int, frozenset[int]] = {}
    run_starts: set[int] = set()
    run: list[int] = []
    for target, following in zip(wanted, [*wanted[1:], None]):
        if not run:
            run_starts.add(target)
        run.append(target)
        if following is None or (seek and _keyframe_at_or_before(index.keyframe_positions, following) > target + 1):
            run_of.update((member, frozenset(index.pts[p] for p in run)) for member in run)
            run = []
    kept: dict[int, np.ndarray] = {}
    frames: Iterator[av.VideoFrame] | None = None  # the current forward run
    last_decoded = -1  # position of the last frame that run produced
    try:
        for target in wanted:
            just_seeked = False
            if not seek:
                if frames is None:
                    frames = _decoded_frames(container, stream, None, wanted_pts, run_of[target])
            elif target in run_starts:
                if frames is not None:
                    frames.close()
                frames = _decoded_frames(container, stream, index.pts[target], wanted_pts, run_of[target])
                just_seeked = True
            while True:
                try:
                    frame = next(frames, None)
                except _NotDecoded:
                    raise VideoReadError(f"{path}: the frame at {times_s[target]:.2f} s could not be decoded") from None
                if frame is None:
                    if just_seeked:
                        raise _SeekFailed()  # no frame at all: the seek, not the file, failed
                    end = times_s[last_decoded] if last_decoded >= 0 else 0.0
                    raise _truncated(path, end, times_s[target], "no more frames could be decoded")
                position = position_of.get(frame.pts)
                if position is None:
                    continue  # not a presented frame: an edit list cuts it
                if just_seeked and position > target:
                    raise _SeekFailed()  # the index it used is kept in decode time, or coarse
                just_seeked = False
                last_decoded = position
                if position == target:
                    kept[target] = _to_rgb(frame, width, height)
                    break
                if position > target:
                    raise VideoReadError(
                        f"{path}: the frame at {times_s[target]:.2f} s could not be decoded "
                        f"(the decoder went on at {times_s[position]:.2f} s)"
                    )
    except av.error.FFmpegError as err:
        where = f"after {times_s[last_decoded]:.2f} s" if last_decoded >= 0 else "at the start"
        raise VideoReadError(f"{path}: cannot decode the video {where} ({_reason(err)})") from err
    finally:
        if frames is not None:
            frames.close()
    return kept


# Most decoders one sample_frames call runs side by side by default. Not the core count: keyframe
# runs cost about the same each, so 5 runs on 2 decoders leave one core idle for a run's time
# while 5 decoders on 2 cores share them to the end (~5% faster on the bench clip, docs/benchmarks.md).
# Each decoder holds its own reference frames (H.264: up to 16, ~3 MB each at 1080p), hence a cap.
DEFAULT_MAX_DECODERS = 8


def decode_workers() -> int:
    """Most decoders one sample_frames call runs side by side: VT_DECODE_WORKERS, else DEFAULT_MAX_DECODERS."""
    value = os.environ.get("VT_DECODE_WORKERS")
    if value:
        try:
            return max(1, int(value))
        except ValueError as err:
            raise InputError(f"VT_DECODE_WORKERS={value!r}: expected a whole number of decoders") from err
    return DEFAULT_MAX_DECODERS


def _seek_runs(keyframe_positions: np.ndarray, wanted: list[int]) -> list[list[int]]:
    """The wanted positions (ascending) cut where a keyframe lies after the previous wanted frame:
    a run decodes from its keyframe on and needs no frame of another run."""
    runs = [[wanted[0]]]
    for target in wanted[1:]:
        if _keyframe_at_or_before(keyframe_positions, target) > runs[-1][-1]:
            runs.append([target])
        else:
            runs[-1].append(target)
    return runs


def _split_runs(keyframe_positions: np.ndarray, runs: list[list[int]], parts: int) -> list[list[int]]:
    """Consecutive runs joined into at most `parts` chunks, the largest chunk's decoding work (frames
    from each run's keyframe to its last wanted frame) as small as it can be."""
    costs = [run[-1] - _keyframe_at_or_before(keyframe_positions, run[0]) + 1 for run in runs]

    def pack(capacity: int) -> list[list[int]] | None:
        chunks: list[list[int]] = [[]]
        load = 0
        for run, cost in zip(runs, costs):
            if chunks[-1] and load + cost > capacity:
                chunks.append([])
                load = 0
            chunks[-1].extend(run)
            load += cost
        return chunks if len(chunks) <= parts else None

    low, high = max(costs), sum(costs)  # the smallest capacity that packs: a binary search
    while low < high:
        middle = (low + high) // 2
        if pack(middle) is None:
            low = middle + 1
        else:
            high = middle
    chunks = pack(low)
    assert chunks is not None
    return chunks


def _decode_runs_in_parallel(
    path: Path,
    index: _FrameIndex,
    runs: list[list[int]],
    workers: int,
    times_s: np.ndarray,
    width: int,
    height: int,
    reorder_depth: int,
) -> dict[int, np.ndarray]:
    """Independent runs decoded side by side, each chunk by its own single-threaded decoder.

    Each run starts at a keyframe, so a chunk's frames are the ones a single pass would give, bit
    for bit. PyAV releases the GIL while decoding: two decoders on two cores take about the time of
    one on half the clip, where one decoder's frame threads gain only ~10% (docs/benchmarks.md).
    The chunks' containers are opened without probe decoding (_REOPEN_OPTIONS); `reorder_depth`,
    what the first, fully probed open found, stands in for what their probe would have learnt.
    """
    from concurrent.futures import ThreadPoolExecutor

    chunks = _split_runs(index.keyframe_positions, runs, workers)

    def decode(chunk: list[int]) -> dict[int, np.ndarray]:
        with _open_video(path, _REOPEN_OPTIONS) as (container, stream):
            stream.thread_type = "NONE"  # the chunks are the parallelism: no frame threads on top
            # B-frame reorder depth: without probe decoding, a stream whose parameter sets are in
            # band (MPEG-TS) opens at depth 1 instead of 2. The decoder would raise it at the first
            # parameter set it reads; this starts it where the full probe left it.
            stream.codec_context.reorder_depth = max(stream.codec_context.reorder_depth, reorder_depth)
            return _decode_positions(path, container, stream, index, chunk, times_s, width, height, seek=True)

    kept: dict[int, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="vt-decode") as pool:
        # results in clip order: the earliest chunk's error is the one raised
        for result in [pool.submit(decode, chunk) for chunk in chunks]:
            kept.update(result.result())
    return kept


def _decode_in_order(
    path: Path, wanted: list[int], times_s: np.ndarray, width: int, height: int
) -> dict[int, np.ndarray]:
    """Decode from the first frame, counting output frames: for files whose pts cannot place frames."""
    wanted_set = set(wanted)
    kept: dict[int, np.ndarray] = {}
    position = -1
    # a fresh container: the index pass left this one at the end, and such files may not seek
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    position += 1
                    if position in wanted_set:
                        kept[position] = _to_rgb(frame, width, height)
                    if position >= wanted[-1]:
                        return kept
        except av.error.FFmpegError as err:
            where = f"after {times_s[position]:.2f} s" if position >= 0 else "at the start"
            raise VideoReadError(f"{path}: cannot decode the video {where} ({_reason(err)})") from err
    end = times_s[position] if position >= 0 else 0.0
    raise _truncated(path, end, times_s[wanted[-1]], "no more frames could be decoded")


def _ticks_to_s(ticks: list[int], origin: int, time_base: Fraction) -> np.ndarray:
    """float((tick - origin) * time_base) for every tick, in s: one vectorised division where the
    products are exact in float64 (below 2**53), which rounds as float(Fraction) does; Fractions elsewhere."""
    numerator, denominator = time_base.numerator, time_base.denominator
    if ticks and max(abs(max(ticks) - origin), abs(min(ticks) - origin)) * numerator < 2**53 and denominator < 2**53:
        products = (np.array(ticks, dtype=np.int64) - origin) * numerator
        return products.astype(np.float64) / float(denominator)
    return np.array([float((tick - origin) * time_base) for tick in ticks], dtype=np.float64)


def _place_frames(
    path: Path, info: VideoInfo, counted: bool, index: _FrameIndex, stream: av.video.stream.VideoStream
) -> tuple[_FrameIndex, np.ndarray]:
    """Every frame's presentation time in s from the stream start, by position.

    Frames the header promises but a cut file lacks come last, one frame period apart, so
    that sampling places them where they would be and can report them missing. The index
    comes back shortened to the frames surely read.
    """
    # A count the container stores is exact; one derived from duration * fps may be off by
    # rounding (or a variable frame rate), so only a clear shortfall means a cut file.
    slack = 0 if counted else max(2, round(0.02 * info.n_frames))
    truncated = index.n_packets < info.n_frames - slack
    shown_in_header = info.n_frames - (index.n_packets - index.n_frames)  # less what edit lists hide
    if truncated and index.pts is not None and index.complete_through_pts is not None:
        # Near the cut, B-frames shown before the last frame read may be lost with it: keep
        # only frames that were surely read, so that positions stay exact up to there.
        index = index.through(index.complete_through_pts)
    if index.n_frames == 0:
        detail = "truncated before its first whole frame" if truncated else "no video frames"
        raise VideoReadError(f"{path}: {detail}" + (f" ({index.read_error})" if index.read_error else ""))
    if index.pts is not None:
        origin = stream.start_time if stream.start_time is not None else index.pts[0]
        present_s = _ticks_to_s(index.pts, origin, stream.time_base)
    else:
        present_s = np.arange(index.n_frames) / info.fps
    missing = shown_in_header - index.n_frames if truncated else 0
    promised_s = present_s[-1] + np.arange(1, missing + 1) / info.fps
    return index, np.concatenate([present_s, promised_s])


def _decode_from_the_start(
    path: Path, index: _FrameIndex, wanted: list[int], times_s: np.ndarray, width: int, height: int
) -> dict[int, np.ndarray]:
    if index.pts is None:
        return _decode_in_order(path, wanted, times_s, width, height)
    # a fresh container stands at the start of the file, where no seek is needed
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        return _decode_positions(path, container, stream, index, wanted, times_s, width, height, seek=False)


def _no_frame_in_window(path: Path, spec: SamplingSpec, info: VideoInfo) -> NoReturn:
    start_s = spec.start_s if spec.start_s is not None else 0.0
    end_s = spec.end_s if spec.end_s is not None else info.duration_s
    raise InputError(
        f"{path}: no frame lies inside the window {start_s:.2f}-{end_s:.2f} s "
        f"(the video lasts {info.duration_s:.2f} s)"
    )


def _positions_or_fail(path: Path, spec: SamplingSpec, info: VideoInfo, index: _FrameIndex, times_s: np.ndarray) -> np.ndarray:
    positions = _select_positions(times_s, spec, info.fps)
    if positions.size == 0:
        _no_frame_in_window(path, spec, info)
    if positions.max() >= index.n_frames:
        raise _truncated(path, times_s[index.n_frames - 1], times_s[positions.max()], index.read_error)
    return positions


def plan_frames(path: str | Path, spec: SamplingSpec) -> tuple[VideoInfo, list[float]]:
    """The clip's info and the timestamps `spec` would pick, from one demux pass (no decoding).

    Used where a prompt must state the frame times before any frame is decoded; the times are
    exactly those `sample_frames` returns for the same spec.
    """
    path = Path(path)
    if is_frames_folder(path):
        folder = _read_frames_folder(path)
        return folder.info, [float(folder.times_s[p]) for p in _folder_positions(path, folder, spec).tolist()]
    with _open_video(path) as (container, stream):
        info, counted = _read_info(path, container, stream)
        index, times_s = _place_frames(path, info, counted, _index_frames(container, stream), stream)
        positions = _positions_or_fail(path, spec, info, index, times_s)
    return info, [float(times_s[p]) for p in positions.tolist()]


def frame_times(path: str | Path) -> tuple[VideoInfo, list[float]]:
    """The clip's info and every frame's presentation time in s (from the stream start), in
    presentation order: frame k of the clip is at the k-th time (one demux pass, no decoding)."""
    path = Path(path)
    if is_frames_folder(path):
        folder = _read_frames_folder(path)
        return folder.info, folder.times_s.tolist()
    with _open_video(path) as (container, stream):
        info, counted = _read_info(path, container, stream)
        index, times_s = _place_frames(path, info, counted, _index_frames(container, stream), stream)
    return info, [float(t) for t in times_s[: index.n_frames]]


def sample_frames(path: str | Path, spec: SamplingSpec) -> SampledFrames:
    """The frames `spec` picks, as RGB arrays, with their presentation times.

    One demux pass reads every packet's pts and keyframe flag (no decoding) to place the frames;
    then the decoder walks forward from the keyframe before the first wanted frame, seeks past
    any keyframe that lies before the next wanted frame, and converts to RGB only the frames
    kept. Runs that start at different keyframes are decoded side by side, one decoder per run
    up to decode_workers() (beyond that, chunks of consecutive runs).
    The result equals decoding every frame and picking the positions.
    Files that hold fewer frames than their header claims raise VideoReadError when a wanted
    frame lies in the missing part; AVI, files without pts and files where seeking fails are
    decoded from the start. A frames folder (see FRAME_FILE_SUFFIXES) reads only the files it keeps.
    """
    path = Path(path)
    if is_frames_folder(path):
        return _sample_folder(path, spec)
    kept: dict[int, np.ndarray] | None = None
    with _open_video(path) as (container, stream):
        info, counted = _read_info(path, container, stream)
        index, times_s = _place_frames(path, info, counted, _index_frames(container, stream), stream)
        positions = _positions_or_fail(path, spec, info, index, times_s)
        wanted = sorted(set(positions.tolist()))
        width, height = _output_size(info.width, info.height, spec.size)
        if index.pts is not None:
            runs = _seek_runs(index.keyframe_positions, wanted)
            workers = min(decode_workers(), len(runs))
            try:
                if workers > 1:
                    kept = _decode_runs_in_parallel(
                        path, index, runs, workers, times_s, width, height, stream.codec_context.reorder_depth
                    )
                else:
                    stream.thread_type = "AUTO"  # frame and slice threads; set before the decoder opens
                    kept = _decode_positions(path, container, stream, index, wanted, times_s, width, height, seek=True)
            except _SeekFailed:
                log.info("%s: seeking does not work here, decoding from the start", path)
    if kept is None:
        kept = _decode_from_the_start(path, index, wanted, times_s, width, height)

    return SampledFrames(
        frames=np.stack([kept[position] for position in positions.tolist()]),
        timestamps_s=[float(times_s[position]) for position in positions.tolist()],
        duration_s=info.duration_s,
        fps=info.fps,
    )


# --------------------------------------------------------------------------- frames folders

# A clip given as a folder of still frames (pre-extracted, as LLaMA-Factory and ms-swift users train
# on): JPEG or PNG files, in natural name order (frame_2 before frame_10), with their times in
#   timestamps.txt  one presentation time in seconds per frame, in frame order (exact times), or
#   fps.txt         one number, frames per second (frame i at i / fps s).
# With both, the times come from timestamps.txt and fps.txt gives the nominal rate.
FRAME_FILE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
TIMESTAMPS_FILE = "timestamps.txt"
FPS_FILE = "fps.txt"


def is_frames_folder(path: str | Path) -> bool:
    """Whether `path` names a frames folder (a directory) rather than a video file."""
    return Path(path).is_dir()


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass
class _FramesFolder:
    root: Path
    names: list[str]  # the frames' file names, in frame order
    times_s: np.ndarray  # each frame's presentation time, s
    info: VideoInfo

    def file(self, position: int) -> Path:
        return self.root / self.names[position]


def _numbers(path: Path) -> tuple[np.ndarray, list[int]]:
    """The values of every non-blank, non-comment line of a numbers file, and their line numbers."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise VideoReadError(f"{path}: cannot read ({err})") from err
    try:  # a plain number on every line, as written for a clip's frames: parsed in one pass
        plain = np.array(list(map(float, lines)), dtype=np.float64)
        if np.isfinite(plain).all() and (plain >= 0).all():
            return plain, list(range(1, len(lines) + 1))
    except ValueError:
        pass  # comments, blank lines or a bad value: line by line, naming the bad line
    values, line_numbers = [], []
    for lineno, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise VideoReadError(f"{path}: line {lineno}: {text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0:
            raise VideoReadError(f"{path}: line {lineno}: {text!r} is not a time >= 0 s")
        values.append(value)
        line_numbers.append(lineno)
    return np.array(values, dtype=np.float64), line_numbers


def _read_frames_folder(path: Path) -> _FramesFolder:
    with os.scandir(path) as entries:  # the directory entries' types: no stat per file
        names = [e.name for e in entries if os.path.splitext(e.name)[1].lower() in FRAME_FILE_SUFFIXES and e.is_file()]
    if not names:
        raise VideoReadError(f"{path}: a frames folder without JPEG or PNG frames")
    names.sort(key=_natural_key)
    n = len(names)
    fps = None
    if (path / FPS_FILE).is_file():
        given, _ = _numbers(path / FPS_FILE)
        if len(given) != 1 or given[0] <= 0:
            raise VideoReadError(f"{path / FPS_FILE}: expected one frame rate > 0 (frames per second)")
        fps = float(given[0])
    if (path / TIMESTAMPS_FILE).is_file():
        times_s, line_numbers = _numbers(path / TIMESTAMPS_FILE)
        if len(times_s) != n:
            raise VideoReadError(f"{path / TIMESTAMPS_FILE}: {len(times_s)} times for {n} frames")
        if n > 1 and not (np.diff(times_s) > 0).all():
            k = int(np.flatnonzero(np.diff(times_s) <= 0)[0]) + 1  # the first time not after the one before it
            raise VideoReadError(f"{path / TIMESTAMPS_FILE}: line {line_numbers[k]}: {float(times_s[k])} s does not "
                                 f"follow {float(times_s[k - 1])} s")
        if fps is None:
            if n == 1:
                raise VideoReadError(f"{path}: one frame and no {FPS_FILE}: how long it lasts is unknown")
            fps = (n - 1) / float(times_s[-1] - times_s[0])  # the average rate
        # the last frame is shown for one frame period, as a video's last frame is
        duration_s = float(times_s[-1]) + 1.0 / fps
    elif fps is not None:
        times_s = np.arange(n) / fps
        duration_s = n / fps
    else:
        raise VideoReadError(
            f"{path}: a frames folder needs {TIMESTAMPS_FILE} (one time in s per frame, in frame order) "
            f"or {FPS_FILE} (frames per second) beside its frames"
        )
    from PIL import Image, UnidentifiedImageError

    first_file = path / names[0]
    try:
        with Image.open(first_file) as first:  # the header only: its size
            width, height = first.size
    except (UnidentifiedImageError, OSError) as err:
        raise VideoReadError(f"{first_file}: not a readable image ({err})") from err
    info = VideoInfo(duration_s=duration_s, fps=fps, n_frames=n, width=width, height=height)
    return _FramesFolder(root=path, names=names, times_s=times_s, info=info)


def _resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB frame at `width` x `height` px, scaled by FFmpeg's swscale exactly as `_to_rgb` scales
    a decoded RGB video frame (AREA), so a lossless RGB clip and its frames as PNGs give the same pixels."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


def _jpeg_decoder() -> Any:
    """OpenCV's JPEG decoder where OpenCV is installed (vt-prep's extra), else None (PIL decodes)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2 if hasattr(cv2, "IMREAD_COLOR_RGB") else None


def _load_frame(file: Path, info: VideoInfo, width: int, height: int) -> np.ndarray:
    """One frame of a frames folder as RGB at `width` x `height` px.

    JPEGs go through OpenCV where it is installed: it decodes straight to an RGB array, about a
    quarter less CPU than PIL's decode and copies, with the same libjpeg-turbo and so the same
    pixels (tested); EXIF orientation is ignored, as PIL ignores it. Anything else, or no OpenCV: PIL.
    """
    cv2 = _jpeg_decoder() if file.suffix.lower() in (".jpg", ".jpeg") else None
    if cv2 is not None:
        try:
            rgb = cv2.imdecode(np.fromfile(file, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
        except OSError as err:
            raise VideoReadError(f"{file}: cannot read ({err})") from err
        if rgb is None:
            raise VideoReadError(f"{file}: not a readable image (OpenCV could not decode it)")
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as opened:
                rgb = np.asarray(opened if opened.mode == "RGB" else opened.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise VideoReadError(f"{file}: not a readable image ({err})") from err
    if rgb.shape[1] != info.width or rgb.shape[0] != info.height:
        raise VideoReadError(f"{file}: {rgb.shape[1]}x{rgb.shape[0]} px, but the folder's first frame is "
                             f"{info.width}x{info.height} px: every frame of a clip must have one size")
    return _resize_rgb(rgb, width, height)


def _folder_positions(path: Path, folder: _FramesFolder, spec: SamplingSpec) -> np.ndarray:
    positions = _select_positions(folder.times_s, spec, folder.info.fps)
    if positions.size == 0:
        _no_frame_in_window(path, spec, folder.info)
    return positions


def _sample_folder(path: Path, spec: SamplingSpec) -> SampledFrames:
    """Frames of a frames folder: each wanted file decoded once, side by side (OpenCV and PIL decode
    without the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    folder = _read_frames_folder(path)
    positions = _folder_positions(path, folder, spec)
    wanted = sorted(set(positions.tolist()))
    width, height = _output_size(folder.info.width, folder.info.height, spec.size)
    frames = np.empty((len(wanted), height, width, 3), np.uint8)  # each worker writes its frame in place

    def load(k: int) -> None:
        frames[k] = _load_frame(folder.file(wanted[k]), folder.info, width, height)

    # Images cost the same each: threads beyond the cores only add overhead (unlike a video's keyframe
    # runs, where more decoders than cores keep both cores busy to the end)
    workers = min(decode_workers(), len(wanted), os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vt-frames") as pool:
            list(pool.map(load, range(len(wanted))))
    else:
        for k in range(len(wanted)):
            load(k)
    if len(wanted) != len(positions):  # a window with fewer frames than asked for repeats some
        frames = frames[np.searchsorted(wanted, positions)]
    return SampledFrames(
        frames=frames,
        timestamps_s=[float(folder.times_s[p]) for p in positions.tolist()],
        duration_s=folder.info.duration_s,
        fps=folder.info.fps,
    )


# --------------------------------------------------------------------------- frame cache

# Content hashes by (resolved path, size in bytes, mtime in ns; for a frames folder, those of every
# file in it): a clip that has not changed is hashed once per process. Bounded; the oldest entry goes first.
_HASH_MEMO: dict[tuple[Any, ...], str] = {}
_HASH_MEMO_MAX_ENTRIES = 4096


def _folder_stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size in bytes, mtime in ns) of every file in a frames folder: what its hash memo is keyed by."""
    stamps = []
    for child in sorted(path.rglob("*")):
        if child.is_file():
            stat = child.stat()
            stamps.append((str(child.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def media_sha256(path: str | Path) -> str:
    """The content hash of a clip: a video file's bytes, or a frames folder's (every file's name and
    bytes, sorted). Remembered per process while the files' sizes and mtimes stay the same."""
    return _content_sha256(Path(path))


def _content_sha256(path: Path) -> str:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise VideoReadError(f"{path}: file not found") from None
    except OSError as err:
        raise VideoReadError(f"{path}: cannot read ({err.strerror})") from err
    folder = path.is_dir()
    if not folder and not path.is_file():
        raise VideoReadError(f"{path}: not a file")
    try:
        memo_key: tuple[Any, ...] = (
            (str(path.resolve()), _folder_stamp(path)) if folder else (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        )
    except OSError as err:
        raise VideoReadError(f"{path}: cannot read ({err.strerror})") from err
    digest = _HASH_MEMO.get(memo_key)
    if digest is None:
        try:
            digest = path_sha256(path) if folder else file_sha256(path)
        except OSError as err:
            raise VideoReadError(f"{path}: cannot read ({err.strerror})") from err
        if len(_HASH_MEMO) >= _HASH_MEMO_MAX_ENTRIES:
            _HASH_MEMO.pop(next(iter(_HASH_MEMO)))
        _HASH_MEMO[memo_key] = digest
    return digest


def default_cache_dir() -> Path:
    """$VT_CACHE_DIR, else ~/.cache/videotune/frames."""
    configured = os.environ.get("VT_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "videotune" / "frames"


class FrameCache:
    """Sampled frames on disk, keyed by (sha256 of the clip's bytes: media_sha256, spec.key()).

    An entry is two files written atomically: the frames as a plain .npy (uint8 [N, H, W, 3]; read
    back at disk speed: an .npz costs a zip CRC pass, ~5x slower for 16 VGA frames) and, written
    after it, a .json with timestamps_s, duration_s and fps, whose presence marks the entry whole.
    A killed run never leaves half an entry; an unreadable or inconsistent entry is sampled again
    and rewritten. A hit reads the entry only: the video is hashed (once per process while its
    size and mtime stay the same) but never opened by the decoder.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def entry_path(self, path: str | Path, spec: SamplingSpec) -> Path:
        """The entry's frames file (its metadata lies beside it, with the suffix .json)."""
        digest = _content_sha256(Path(path))
        # a two-character fan-out keeps any one directory small
        return self.root / digest[:2] / f"{digest}.{spec.key()}.npy"

    def get_or_sample(self, path: str | Path, spec: SamplingSpec) -> SampledFrames:
        entry = self.entry_path(path, spec)
        cached = self._load(entry)
        if cached is not None:
            return cached
        sampled = sample_frames(path, spec)
        self._store(entry, sampled)
        return sampled

    @staticmethod
    def _load(entry: Path) -> SampledFrames | None:
        meta_path = entry.with_suffix(".json")
        if not (entry.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            timestamps_s = [float(t) for t in meta["timestamps_s"]]
            duration_s, fps = float(meta["duration_s"]), float(meta["fps"])
            frames = np.load(entry, allow_pickle=False)
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(f"frames are {frames.dtype} {frames.shape}, not uint8 [N, H, W, 3]")
            if len(timestamps_s) != frames.shape[0]:
                raise ValueError(f"{len(timestamps_s)} timestamps for {frames.shape[0]} frames")
        except (OSError, ValueError, KeyError, TypeError, EOFError) as err:
            log.warning("%s: unreadable frame cache entry, sampling again (%s)", entry, err)
            return None
        return SampledFrames(frames=frames, timestamps_s=timestamps_s, duration_s=duration_s, fps=fps)

    @staticmethod
    def _store(entry: Path, sampled: SampledFrames) -> None:
        try:
            with atomic_open(entry, "wb") as fh:
                np.save(fh, np.ascontiguousarray(sampled.frames, dtype=np.uint8), allow_pickle=False)
            meta = {"timestamps_s": list(map(float, sampled.timestamps_s)), "duration_s": float(sampled.duration_s),
                    "fps": float(sampled.fps)}
            with atomic_open(entry.with_suffix(".json"), "w") as fh:
                fh.write(json.dumps(meta))
        except OSError as err:
            # the frames are in hand: a full or read-only cache costs speed, not the result
            log.warning("%s: cannot write frame cache entry (%s)", entry, err)


# --------------------------------------------------------------------------- prompt


def time_instruction(duration_s: float, timestamps_s: list[float]) -> str:
    """The seed paper's timing sentence, e.g. "The video lasts for 3.10 seconds, and 8 frames are
    uniformly sampled from it. These frames are located at 0.00s, 0.43s, ..., 3.07s."."""
    if not timestamps_s:
        raise ValueError("time_instruction: no frame timestamps")
    located = ", ".join(f"{t:.2f}s" for t in timestamps_s)
    if len(timestamps_s) == 1:
        return (
            f"The video lasts for {duration_s:.2f} seconds, and 1 frame is uniformly sampled from it. "
            f"This frame is located at {located}."
        )
    return (
        f"The video lasts for {duration_s:.2f} seconds, and {len(timestamps_s)} frames are uniformly "
        f"sampled from it. These frames are located at {located}."
    )


def restate_frames(example: Any, timestamps_s: list[float], duration_s: float | None = None) -> Any:
    """`example` (a core.schemas.Example) sampling the frames at `timestamps_s`: its prompt's time sentence
    and its `frames` restated for them, through the same `time_instruction` vt-prep build writes.

    Returned unchanged when the sentence would not change (the frames it was built with). InputError when
    its prompt does not hold the sentence vt-prep build wrote for its frames: the count cannot be changed
    then, since the prompt would misdescribe the frames the model gets.
    """
    from videotune.core.schemas import FrameSpec, Message

    if example.frames is None:
        raise InputError(f"example {example.id}: an image example has no frames to restate")
    duration = float(example.meta.get("duration_s", duration_s if duration_s is not None else 0.0))
    old_intro = time_instruction(duration, example.frames.timestamps_s)
    new_intro = time_instruction(duration, list(timestamps_s))
    if old_intro == new_intro:
        return example
    messages = list(example.messages)
    for index, message in enumerate(messages):
        if message.role == "user" and old_intro in message.content:
            messages[index] = Message(role="user", content=message.content.replace(old_intro, new_intro, 1))
            return example.model_copy(update={
                "messages": messages,
                "frames": FrameSpec(n=len(timestamps_s), timestamps_s=[float(t) for t in timestamps_s]),
            })
    raise InputError(
        f"example {example.id}: its prompt does not state its {example.frames.n} frames the way vt-prep build "
        f"writes them ({old_intro[:60]!r}...), so it cannot be given {len(timestamps_s)} frames with a prompt "
        "that says so; build frame-count variants with `vt-prep frames`, or leave the count as built"
    )


def with_sampled_frames(example: Any, sampled: SampledFrames) -> Any:
    """`example` with a prompt that states exactly the frames `sampled` holds (see `restate_frames`)."""
    if example.frames is None:
        return example
    return restate_frames(example, sampled.timestamps_s, sampled.duration_s)


def frames_restatement_problem(example: Any, n_frames: int | None) -> str | None:
    """Why `example` cannot be given `n_frames` frames with a prompt that states them, or None: its prompt
    must hold the time sentence vt-prep build wrote for its frames (see `restate_frames`)."""
    if n_frames is None or example.frames is None or example.frames.n == n_frames:
        return None
    duration = example.meta.get("duration_s")
    intro = time_instruction(float(duration), example.frames.timestamps_s) if duration is not None else None
    if intro is not None and any(m.role == "user" and intro in m.content for m in example.messages):
        return None
    return (f"--frames {n_frames}: its prompt does not state its {example.frames.n} frames the way vt-prep build "
            f"writes them, so it cannot be restated for {n_frames} frames; build frame-count variants with "
            "`vt-prep frames`, or leave the count as built")


def check_frames_restatable(examples: Iterable[Any], n_frames: int | None, source: Path | str) -> None:
    """Before any model loads: InputError naming every example of `source` that cannot be given `n_frames`
    frames with a prompt that says so (see `frames_restatement_problem`)."""
    refused = [e.id for e in examples if frames_restatement_problem(e, n_frames)]
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise InputError(
            f"{source}: --frames {n_frames}: {len(refused)} examples do not state their frames the way vt-prep build "
            f"writes them, so their prompts cannot be restated for {n_frames} frames ({shown}); build frame-count "
            "variants with `vt-prep frames`, or leave --frames unset"
        )
