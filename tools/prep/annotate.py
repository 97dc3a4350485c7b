"""`vt-prep annotate`: a local page where an annotator marks form errors on clips, frame by frame
(seed 000's `annotate_errors.py --interactive`, the test set of RQ2.1.1).

The server (core.localweb: loopback only) serves one page (annotate.html beside this file), the
clips to annotate, each clip's frames as JPEG images decoded by core.video (so frame k on the page
is frame k of the clip, for videos and frames folders alike, and stepping is exact), and takes one
annotation per clip by POST. Every save rewrites the annotations file atomically, in seed 000's
format (`annotated_errors.json`: a list of {video, exercise, errors, error_frames, ground_truth})
plus what the format cannot say: `error_spans` ({error: [[first frame, last frame], ...]}), the
`annotator` and `annotated_at`. `vt-prep import annotated-errors` reads it; the page opens at the
first clip without an annotation.

`agreement` compares the files of several annotators: Cohen's kappa per error (whether each clip
shows it), pairwise and averaged over pairs (Light's kappa), and the IoU of the marked frames.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from videotune.core import taxonomy
from videotune.core.io import InputError, read_samples, write_json
from videotune.core.localweb import LoopbackHandler, loopback_server
from videotune.core.schemas import Reject
from videotune.core.video import FPS_FILE, TIMESTAMPS_FILE, SamplingSpec, VideoInfo, frame_times, sample_frames
from videotune.prep.importers.annotated import load_annotations
from videotune.prep.importers.common import VIDEO_EXTENSIONS, Refused, load_json, load_records, resolve_media
from videotune.prep.importers.qved import SEPARATOR

PAGE = Path(__file__).resolve().parent / "annotate.html"
CHUNK_FRAMES = 32  # frames decoded per request for a frame not yet cached: one seek serves the next 31 steps
CACHE_FRAMES = 1024  # JPEG frames kept in memory (about 30 KB each at 640 px)
MAX_TEXT = 20000  # characters of feedback text accepted


def error_key(name: str) -> str:
    """An error name as the file stores it: trimmed, lower case, runs of spaces as one underscore."""
    return "_".join(name.strip().lower().split())


# --------------------------------------------------------------------------- clips


@dataclass
class Clip:
    video: str  # relative to the root, as the annotations file names it
    exercise: str
    ground_truth: str = ""  # the dataset's own feedback, offered as the starting text
    path: Path = field(default=Path())


def _exercise_from_path(video: str) -> str:
    # QVED keeps each exercise's clips in a folder of its name (<exercise_dir>/<id>.mp4)
    parts = Path(video).parts
    return parts[0] if len(parts) > 1 else ""


def _clip_of(root: Path, raw: dict[str, Any]) -> Clip:
    """A clip from a record of a samples file, a QVED ground truth, a LLaVA JSON or an annotations file."""
    video = next((raw[k] for k in ("video", "video_path", "media") if isinstance(raw.get(k), str)), None)
    if not video:
        raise Refused("no video, video_path or media")
    path, media = resolve_media(root, video)
    if not path.exists():
        raise Refused(f"{path}: file not found")
    truth = raw.get("ground_truth") or raw.get("labels_descriptive") or raw.get("answer") or ""
    if not truth and isinstance(raw.get("conversations"), list):
        truth = next((t.get("value", "") for t in raw["conversations"] if isinstance(t, dict) and t.get("from") == "gpt"), "")
    exercise = raw.get("exercise") or raw.get("label") or ""
    if not exercise and isinstance(truth, str) and SEPARATOR in truth:
        exercise = truth.split(SEPARATOR, 1)[0]  # QVED: "<exercise> - <what is wrong>; <how to correct it>"
    exercise = str(exercise).strip() or _exercise_from_path(media)
    return Clip(video=media, exercise=exercise, ground_truth=truth if isinstance(truth, str) else "", path=path)


def _scan(root: Path) -> list[dict[str, Any]]:
    """Every video file and frames folder under `root`, in path order."""
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here != root and (TIMESTAMPS_FILE in files or FPS_FILE in files):
            found.append(here.relative_to(root).as_posix())
            dirs.clear()  # a frames folder's images are its frames, not clips
            continue
        dirs.sort()
        found += [(here / f).relative_to(root).as_posix() for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
    return [{"video": v} for v in sorted(found)]


def load_clips(root: Path, source: Path | None) -> tuple[list[Clip], list[Reject]]:
    """The clips to annotate and the records refused (a missing clip, a path escaping the root).

    `source`: samples.parquet, a JSON array or JSONL of records naming `video`/`video_path`/`media`
    (QVED's ground truth, a LLaVA JSON, another annotator's file), or None: every clip under `root`.
    """
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    if source is None:
        records: list[Any] = _scan(root)
    elif source.suffix == ".parquet":
        records = [{"media": s.media, "label": s.meta_dict().get("exercise") or s.label, "answer": s.answer}
                   for s in read_samples(source) if s.media_kind == "video"]
    else:
        records = load_records(source)
    clips, rejects, seen = [], [], set()
    for index, raw in enumerate(records):
        name = str(raw.get("video") or raw.get("video_path") or raw.get("media") or f"#{index}") if isinstance(raw, dict) \
            else f"#{index}"
        try:
            if not isinstance(raw, dict):
                raise Refused(f"record {index} is a {type(raw).__name__}, not an object")
            clip = _clip_of(root, raw)
        except Refused as why:
            rejects.append(Reject(file=str(source or root), record=f"{index}:{name}", reason=str(why)))
            continue
        if clip.video not in seen:  # a clip listed twice (several questions about it) is annotated once
            seen.add(clip.video)
            clips.append(clip)
    if not clips:
        raise InputError(f"{source or root}: no clip to annotate" + (f" ({len(rejects)} refused)" if rejects else ""))
    return clips, rejects


# Seed 000's RQ2.1.1 errors to label ("knee valgus, excessive forward lean, incomplete range of motion, poor
# alignment"): offered for exercises that core.taxonomy and the --taxonomy file do not name (key "*").
SEED_000_ERRORS = ("knee_valgus", "forward_lean", "incomplete_range_of_motion", "poor_alignment")


def load_taxonomy(path: Path | None) -> dict[str, list[str]]:
    """Error names to offer per exercise: core.taxonomy's, a file's ({exercise: [errors]}, JSON or YAML;
    "*": every other exercise), and seed 000's four for any exercise left."""
    offered: dict[str, list[str]] = {key: list(ex.errors) for key, ex in taxonomy.EXERCISES.items()}
    offered["*"] = list(SEED_000_ERRORS)
    if path is None:
        return offered
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"{path}: not a readable YAML file ({err})") from err
    else:
        data, _ = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(e, str) for e in v) for v in data.values()):
        raise InputError(f"{path}: expected {{exercise: [error names]}}")
    if "*" in data:
        offered["*"] = []
    for exercise, errors in data.items():
        merged = offered.setdefault(str(exercise).strip().lower(), [])
        merged += [error_key(e) for e in errors if error_key(e) not in merged]
    return offered


# --------------------------------------------------------------------------- the annotations file


class AnnotationStore:
    """The annotations file in memory, keyed by video, rewritten atomically on every save.

    Records of clips not being annotated now stay in the file untouched, in their place.
    """

    def __init__(self, path: Path, annotator: str):
        self.path = path
        self.annotator = annotator
        self._lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        if path.exists():
            for index, record in enumerate(load_annotations(path)):
                if not isinstance(record, dict) or not isinstance(record.get("video"), str):
                    raise InputError(f"{path}: record {index} has no video")
                others = record.get("annotator")
                if isinstance(others, str) and others != annotator:
                    raise InputError(
                        f"{path}: record {index} ({record['video']}) was annotated by {others!r}, not {annotator!r}; "
                        f"give each annotator their own --out (e.g. {path.with_name(f'annotated_errors.{annotator}.json')})")
                self.records[record["video"]] = record

    def get(self, video: str) -> dict[str, Any] | None:
        with self._lock:
            return self.records.get(video)

    def put(self, record: dict[str, Any]) -> None:
        with self._lock:
            updated = {**self.records, record["video"]: record}
            write_json(self.path, list(updated.values()))  # temp file + rename: never half a file
            self.records = updated  # only once on disk: a failed write leaves the page's view as the file's

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.records)

    def first_unannotated(self, videos: list[str]) -> int | None:
        with self._lock:
            return next((i for i, video in enumerate(videos) if video not in self.records), None)


# --------------------------------------------------------------------------- the page's data


@dataclass
class ClipFrames:
    info: VideoInfo
    times_s: list[float]


class AnnotateApp:
    """What the handler serves: the clips, their frames as JPEG, the store."""

    def __init__(self, clips: list[Clip], store: AnnotationStore, offered: dict[str, list[str]],
                 frame_size: int | None = 640, refused: list[Reject] | None = None):
        self.clips = clips
        self.videos = [c.video for c in clips]
        self.store = store
        self.offered = offered
        self.frame_size = frame_size
        self.refused = refused or []
        self._clip_frames: dict[int, ClipFrames | str] = {}  # the frames' times, or why the clip cannot be read
        self._jpegs: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()  # one decode at a time: 2 cores, and a chunk serves the next requests

    def state(self) -> dict[str, Any]:
        records = self.store.snapshot()
        used: dict[str, list[str]] = {}
        for record in records.values():  # errors this file already names, per exercise
            names = used.setdefault(str(record.get("exercise", "")), [])
            names += [n for n in record.get("errors") or [] if n not in names]
        offered = {}
        for exercise in {c.exercise for c in self.clips}:
            names = list(self.offered.get(exercise.strip().lower(), self.offered.get("*", [])))
            offered[exercise] = names + [n for n in used.get(exercise, []) if n not in names]
        return {
            "annotator": self.store.annotator,
            "file": self.store.path.name,
            "clips": [{"video": c.video, "exercise": c.exercise, "ground_truth": c.ground_truth} for c in self.clips],
            "annotations": {v: records[v] for v in self.videos if v in records},
            "offered": offered,
            "start": self.store.first_unannotated(self.videos),
            "refused": [r.model_dump() for r in self.refused],
        }

    def clip_frames(self, index: int) -> ClipFrames | str:
        with self._lock:
            if index not in self._clip_frames:
                try:
                    info, times_s = frame_times(self.clips[index].path)
                    self._clip_frames[index] = ClipFrames(info, times_s)
                except InputError as err:
                    self._clip_frames[index] = str(err)
            return self._clip_frames[index]

    def clip_info(self, index: int) -> tuple[int, dict[str, Any]]:
        frames = self.clip_frames(index)
        if isinstance(frames, str):
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": frames}
        info = frames.info
        return HTTPStatus.OK, {"n_frames": len(frames.times_s), "fps": info.fps, "duration_s": info.duration_s,
                               "width": info.width, "height": info.height, "times_s": frames.times_s}

    def frame_jpeg(self, index: int, frame: int) -> bytes | None:
        """Frame `frame` of clip `index` as JPEG; its chunk of CHUNK_FRAMES is decoded on a miss."""
        frames = self.clip_frames(index)
        if isinstance(frames, str) or not 0 <= frame < len(frames.times_s):
            return None
        with self._lock:
            cached = self._jpegs.get((index, frame))
            if cached is not None:
                self._jpegs.move_to_end((index, frame))
                return cached
            first = frame - frame % CHUNK_FRAMES
            last = min(first + CHUNK_FRAMES, len(frames.times_s)) - 1
            # the window [time of first, time of last] holds exactly frames first..last: n of them, uniformly, is each one
            spec = SamplingSpec(n_frames=last - first + 1, start_s=frames.times_s[first], end_s=frames.times_s[last],
                                size=self.frame_size)
            from PIL import Image

            for offset, rgb in enumerate(sample_frames(self.clips[index].path, spec).frames):
                buffer = io.BytesIO()
                Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
                self._jpegs[(index, first + offset)] = buffer.getvalue()
            while len(self._jpegs) > CACHE_FRAMES:
                self._jpegs.popitem(last=False)
            return self._jpegs.get((index, frame))

    def save(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and store one clip's annotation; (HTTP status, JSON reply)."""
        if not isinstance(body, dict) or not isinstance(body.get("clip"), int) or not 0 <= body["clip"] < len(self.clips):
            return HTTPStatus.BAD_REQUEST, {"error": "unknown clip"}
        clip = self.clips[body["clip"]]
        frames = self.clip_frames(body["clip"])
        if isinstance(frames, str):
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": frames}
        n_frames = len(frames.times_s)
        raw_errors = body.get("errors", [])
        if not isinstance(raw_errors, list) or not all(isinstance(e, str) and error_key(e) for e in raw_errors):
            return HTTPStatus.BAD_REQUEST, {"error": "errors must be a list of names"}
        errors = list(dict.fromkeys(error_key(e) for e in raw_errors))
        raw_spans = body.get("spans", [])
        if not isinstance(raw_spans, list):
            return HTTPStatus.BAD_REQUEST, {"error": "spans must be a list"}
        spans: list[tuple[int, int, str]] = []
        for span in raw_spans:
            if not isinstance(span, dict) or not all(type(span.get(k)) is int for k in ("start", "end")):
                return HTTPStatus.BAD_REQUEST, {"error": f"a span needs whole frame numbers start and end: {span!r}"}
            start, end, error = span["start"], span["end"], error_key(str(span.get("error") or ""))
            if not 0 <= start <= end < n_frames:
                return HTTPStatus.BAD_REQUEST, {"error": f"span {start}-{end} is not inside frames 0-{n_frames - 1}"}
            if error and error not in errors:
                return HTTPStatus.BAD_REQUEST, {"error": f"span {start}-{end} names {error!r}, which is not ticked"}
            spans.append((start, end, error))
        if spans and not errors:
            return HTTPStatus.BAD_REQUEST, {"error": "frames are marked but no error is chosen"}
        truth = body.get("ground_truth", "")
        if not isinstance(truth, str) or len(truth) > MAX_TEXT:
            return HTTPStatus.BAD_REQUEST, {"error": f"ground_truth must be text of at most {MAX_TEXT} characters"}
        spans.sort()
        marked = sorted({f for start, end, _ in spans for f in range(start, end + 1)})
        record = {
            "video": clip.video, "exercise": clip.exercise, "errors": errors, "error_frames": marked,
            "ground_truth": truth.strip(),
            # which error each marked span shows (a span for no error in particular shows every one)
            "error_spans": {e: [[s, t] for s, t, which in spans if which in ("", e)] for e in errors},
            "annotator": self.store.annotator,
            "annotated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put(record)
        return HTTPStatus.OK, {"saved": clip.video, "next": self.store.first_unannotated(self.videos)}


class _Handler(LoopbackHandler):
    app: AnnotateApp  # set on the subclass made by make_server
    server_version = "vt-prep-annotate"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return self._json(HTTPStatus.FORBIDDEN, {"error": "bad Host header"})
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts in ([""], ["index.html"]):
            return self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        if parts == ["api", "state"]:
            return self._json(HTTPStatus.OK, self.app.state())
        if len(parts) == 3 and parts[:2] == ["api", "clip"] and (clip := _index(parts[2], len(self.app.clips))) is not None:
            return self._json(*self.app.clip_info(clip))
        if len(parts) == 3 and parts[0] == "frame" and parts[2].endswith(".jpg"):  # /frame/<clip>/<frame>.jpg
            clip, frame = _index(parts[1], len(self.app.clips)), _index(parts[2].removesuffix(".jpg"), 1 << 31)
            jpeg = self.app.frame_jpeg(clip, frame) if clip is not None and frame is not None else None
            if jpeg is not None:
                return self._send(HTTPStatus.OK, jpeg, "image/jpeg")
        self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._json(HTTPStatus.FORBIDDEN, {"error": "bad Host header"})
        if urlsplit(self.path).path != "/api/save":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        ok, body = self._read_json()
        if ok:
            self._json(*self.app.save(body))


def _index(text: str, limit: int) -> int | None:
    return int(text) if text.isdigit() and int(text) < limit else None


def make_server(app: AnnotateApp, port: int = 8766, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The annotation server, not yet serving (call core.localweb.serve). Loopback only."""
    return loopback_server(type("AnnotateHandler", (_Handler,), {"app": app}), port, host, what="the annotation page")


# --------------------------------------------------------------------------- agreement


def _marks(record: dict[str, Any], error: str | None = None) -> set[int]:
    """The frames a record marks (for one error where it says which spans show it)."""
    if error is not None and isinstance(record.get("error_spans"), dict):
        return {f for start, end in record["error_spans"].get(error, []) for f in range(start, end + 1)}
    if error is not None and error not in (record.get("errors") or []):
        return set()
    return {int(f) for f in record.get("error_frames") or []}


def _iou(a: set[int], b: set[int]) -> float | None:
    union = a | b
    return len(a & b) / len(union) if union else None


def agreement(files: list[Path]) -> dict[str, Any]:
    """Inter-annotator agreement over the clips every pair of annotators both annotated.

    kappa/<error>: Cohen's kappa of "the clip shows <error>", per pair of annotators, and its mean
    over pairs (Light's kappa); None where it is undefined (both gave one same answer to every clip:
    no disagreement is possible to measure, so the observed agreement is given instead).
    span_iou: IoU of the marked frames per clip (and per error where both files say which spans show
    it), averaged over the clips where either annotator marked frames.
    """
    from sklearn.metrics import cohen_kappa_score

    if len(files) < 2:
        raise InputError("agreement needs the annotation files of at least two annotators")
    annotators: dict[str, dict[str, dict[str, Any]]] = {}
    for path in files:
        records = {r["video"]: r for r in load_annotations(path) if isinstance(r, dict) and isinstance(r.get("video"), str)}
        names = {r.get("annotator") for r in records.values() if isinstance(r.get("annotator"), str)}
        name = names.pop() if len(names) == 1 else path.stem
        if name in annotators:
            name = f"{name} ({path.name})"
        annotators[name] = records
    pairs: dict[str, Any] = {}
    kappas: dict[str, list[float]] = {}
    ious: list[float] = []
    error_ious: dict[str, list[float]] = {}
    for (a, ra), (b, rb) in itertools.combinations(annotators.items(), 2):
        common = sorted(set(ra) & set(rb))
        errors = sorted({e for v in common for e in (ra[v].get("errors") or []) + (rb[v].get("errors") or [])})
        pair: dict[str, Any] = {"n_clips": len(common), "kappa": {}, "observed_agreement": {}}
        for error in errors:
            ya = [error in (ra[v].get("errors") or []) for v in common]
            yb = [error in (rb[v].get("errors") or []) for v in common]
            pair["observed_agreement"][error] = sum(x == y for x, y in zip(ya, yb)) / len(common)
            value = float(cohen_kappa_score(ya, yb)) if len(set(ya) | set(yb)) > 1 else math.nan
            pair["kappa"][error] = None if math.isnan(value) else value
            if not math.isnan(value):
                kappas.setdefault(error, []).append(value)
        clip_ious = [x for v in common if (x := _iou(_marks(ra[v]), _marks(rb[v]))) is not None]
        pair["span_iou"] = sum(clip_ious) / len(clip_ious) if clip_ious else None
        pair["n_clips_marked"] = len(clip_ious)
        ious += clip_ious
        for error in errors:
            both = [v for v in common if isinstance(ra[v].get("error_spans"), dict) and isinstance(rb[v].get("error_spans"), dict)]
            values = [x for v in both if (x := _iou(_marks(ra[v], error), _marks(rb[v], error))) is not None]
            error_ious.setdefault(error, []).extend(values)
        pairs[f"{a} vs {b}"] = pair
    return {
        "annotators": list(annotators),
        "kappa": {e: sum(v) / len(v) for e, v in sorted(kappas.items())},
        "span_iou": sum(ious) / len(ious) if ious else None,
        "span_iou_per_error": {e: sum(v) / len(v) for e, v in sorted(error_ious.items()) if v},
        "pairs": pairs,
    }


def agreement_markdown(result: dict[str, Any]) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"Annotators: {', '.join(result['annotators'])}", "", "| pair | clips | error | kappa | observed agreement |",
             "|---|---|---|---|---|"]
    for name, pair in result["pairs"].items():
        for error, value in pair["kappa"].items():
            lines.append(f"| {name} | {pair['n_clips']} | {error} | {fmt(value)} | {pair['observed_agreement'][error]:.3f} |")
    lines += ["", "| error | mean kappa over pairs | span IoU |", "|---|---|---|"]
    for error in sorted(set(result["kappa"]) | set(result["span_iou_per_error"])):
        lines.append(f"| {error} | {fmt(result['kappa'].get(error))} | {fmt(result['span_iou_per_error'].get(error))} |")
    lines += ["", f"Span IoU of the marked frames, all errors: {fmt(result['span_iou'])}"]
    return "\n".join(lines) + "\n"
