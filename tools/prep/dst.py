"""ProAssist-with-DST annotations -> stream examples: per-frame DST state, update, speak and response targets.

Input: JSON files holding a list of videos in the ProAssist-with-DST format
(shared/formats/README.md): `video_uid`, `conversation` (turns with `role` in
system|user|assistant|DST_UPDATE, `content`, `time` in s), `dst` (steps with `id`, `start_ts`,
`end_ts`, `name`). Optional keys this project's synthetic data adds: `video` (the video's path
relative to the data root; default `<video_uid>.mp4`) and `duration_s`.

Ground truth comes from the step timestamps, never from the turn order: at time t a node is
completed if end_ts <= t, in progress if start_ts <= t < end_ts, else not started. A frame's
DST update is the set of nodes whose state differs from the previous frame's (all not started
before the first frame). A turn at time tau belongs to the first sampled frame at or after tau
(the public code this format comes from takes the previous turn's frame, one turn late; the
frame is derived from `time` here). Frame times are the video's own presentation times at the
target rate (core.video.plan_frames), so training and inference see exactly these frames.

A video with a problem is refused as a whole (rejects.jsonl names the file, the video and the
turn): an unknown node id in a DST_UPDATE, a node completed before it starts, a time past the
video's end, a missing or unreadable video; a file that is not valid JSON is refused with the
line and column of the error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from videotune.core.cli import CommandConfig
from videotune.core.schemas import DstNode, Reject, StreamExample, StreamFrame
from videotune.core.video import SamplingSpec, VideoReadError, plan_frames

TIME_TOLERANCE_S = 0.05  # annotation tools round times; a turn this far past the end is still inside
ROLES = ("system", "user", "assistant", "DST_UPDATE")
TRANSITIONS = ("start", "complete")


class RecordError(ValueError):
    """A video record that cannot be converted; the message says which turn or step and why."""


@dataclass
class Source:
    file: Path
    index: int  # position of the video in the file's list
    record: dict[str, Any]

    @property
    def label(self) -> str:
        uid = self.record.get("video_uid") if isinstance(self.record, dict) else None
        return f"video {self.index}" + (f" ({uid})" if uid else "")


def node_state(t: float, start_s: float, end_s: float) -> str:
    """A node's ground-truth state at time t (seconds) from its step's timestamps."""
    if end_s <= t:
        return "completed"
    if start_s <= t:
        return "in_progress"
    return "not_started"


def states_at(t: float, steps: list[tuple[str, float, float]]) -> dict[str, str]:
    return {node: node_state(t, start, end) for node, start, end in steps}


def frame_of(time_s: float, frame_times: list[float]) -> int:
    """The first frame at or after `time_s` (the last frame for a time after it)."""
    index = int(np.searchsorted(np.asarray(frame_times), time_s - 1e-6, side="left"))
    return min(index, len(frame_times) - 1)


def read_sources(inputs: list[Path]) -> tuple[list[Source], list[Reject]]:
    """Every video record of the input files (a folder: its *.json files, sorted); malformed files refused."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            from videotune.core.io import InputError

            raise InputError(f"{path}: no such file or folder")
    sources, rejects = [], []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            rejects.append(Reject(file=str(file), record=f"line {err.lineno}, column {err.colno}",
                                  reason=f"malformed JSON: {err.msg}"))
            continue
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            rejects.append(Reject(file=str(file), record="file", reason="expected a list of video records"))
            continue
        sources.extend(Source(file, i, record) for i, record in enumerate(data))
    return sources, rejects


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"{what}: {value!r} is not a finite number")
    return float(value)


def _steps(record: dict[str, Any], duration_s: float) -> tuple[list[DstNode], list[tuple[str, float, float]]]:
    dst = record.get("dst")
    if not isinstance(dst, list) or not dst:
        raise RecordError("`dst` is missing or empty")
    nodes, steps = [], []
    for position, step in enumerate(dst):
        if not isinstance(step, dict) or not isinstance(step.get("id"), str) or not step["id"]:
            raise RecordError(f"dst[{position}]: a step needs a string `id`")
        node = step["id"]
        start = _number(step.get("start_ts"), f"dst[{position}] ({node}) start_ts")
        end = _number(step.get("end_ts"), f"dst[{position}] ({node}) end_ts")
        if start < 0:
            raise RecordError(f"dst[{position}] ({node}): start_ts {start}s is negative")
        if end < start:
            raise RecordError(f"dst[{position}] ({node}): completed at {end}s, before it starts at {start}s")
        if end > duration_s + TIME_TOLERANCE_S:
            raise RecordError(f"dst[{position}] ({node}): end_ts {end}s is past the video's end ({duration_s:.2f}s)")
        if any(n.id == node for n in nodes):
            raise RecordError(f"dst[{position}]: duplicate node id {node!r}")
        nodes.append(DstNode(id=node, name=str(step.get("name", ""))))
        steps.append((node, start, end))
    return nodes, steps


def _dst_items(content: Any, where: str) -> list[dict[str, Any]]:
    # The content is a list in this format's examples, a JSON-encoded string in some releases.
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except json.JSONDecodeError as err:
            raise RecordError(f"{where}: content is a string but not JSON (column {err.colno}: {err.msg})") from err
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise RecordError(f"{where}: content must be a list of {{id, transition}}")
    return content


def _check_turns(record: dict[str, Any], node_ids: set[str], duration_s: float) -> list[tuple[float, str, str]]:
    """Validate the conversation; returns (time, role, text) of the user and assistant turns that have a time."""
    conversation = record.get("conversation")
    if not isinstance(conversation, list):
        raise RecordError("`conversation` is missing or not a list")
    started: dict[str, float] = {}
    completed: set[str] = set()
    said = []
    for position, turn in enumerate(conversation):
        where = f"conversation[{position}]"
        if not isinstance(turn, dict) or turn.get("role") not in ROLES:
            raise RecordError(f"{where}: role must be one of {', '.join(ROLES)}")
        role = turn["role"]
        if "time" not in turn or turn["time"] is None:
            if role == "system":
                continue
            raise RecordError(f"{where} ({role}): no `time`")
        time_s = _number(turn["time"], f"{where} ({role}) time")
        if time_s < 0 or time_s > duration_s + TIME_TOLERANCE_S:
            raise RecordError(f"{where} ({role}): time {time_s}s is outside the video (0..{duration_s:.2f}s)")
        if role == "DST_UPDATE":
            for item in _dst_items(turn.get("content"), where):
                node = item.get("id") if isinstance(item, dict) else None
                transition = item.get("transition") if isinstance(item, dict) else None
                if node not in node_ids:
                    raise RecordError(f"{where}: DST_UPDATE names unknown node {node!r} (nodes: {sorted(node_ids)})")
                if transition not in TRANSITIONS:
                    raise RecordError(f"{where}: transition {transition!r} of {node} is not start or complete")
                if transition == "start":
                    started[node] = time_s
                else:
                    if node not in started:
                        raise RecordError(f"{where}: {node} is completed at {time_s}s before it starts")
                    completed.add(node)
        elif role in ("user", "assistant"):
            text = turn.get("content")
            if not isinstance(text, str):
                raise RecordError(f"{where} ({role}): content must be text")
            if text.strip():
                said.append((time_s, role, " ".join(text.split())))
    return said


def convert(source: Source, data_root: Path, fps: float) -> StreamExample:
    """One video record -> a stream example; RecordError (or VideoReadError) says what is wrong."""
    record = source.record
    if not isinstance(record, dict):
        raise RecordError("a video record must be a JSON object")
    uid = record.get("video_uid")
    if not isinstance(uid, str) or not uid:
        raise RecordError("`video_uid` is missing")
    media = record.get("video") or f"{uid}.mp4"
    if not isinstance(media, str) or media.startswith("/") or ".." in media.split("/"):
        raise RecordError(f"video path {media!r} must be relative to the data root and stay inside it")
    info, frame_times = plan_frames(data_root / media, SamplingSpec(n_frames=None, target_fps=fps))
    duration_s = info.duration_s
    if "duration_s" in record:
        stated = _number(record["duration_s"], "duration_s")
        if abs(stated - duration_s) > max(TIME_TOLERANCE_S, 1.0 / info.fps):
            raise RecordError(f"duration_s says {stated}s but the video lasts {duration_s:.2f}s")
    nodes, steps = _steps(record, duration_s)
    said = _check_turns(record, {n.id for n in nodes}, duration_s)

    responses: dict[int, list[str]] = {}
    users: dict[int, list[str]] = {}
    for time_s, role, text in said:
        (responses if role == "assistant" else users).setdefault(frame_of(time_s, frame_times), []).append(text)
    frames = []
    previous = {node: "not_started" for node, _, _ in steps}
    for index, t in enumerate(frame_times):
        state = states_at(t, steps)
        delta = {node: s for node, s in state.items() if previous[node] != s}
        response = " ".join(responses.get(index, []))
        frames.append(StreamFrame(t_s=round(t, 6), dst_update=bool(delta), dst_delta=delta, dst=state,
                                  speak=bool(response), response=response, user=" ".join(users.get(index, []))))
        previous = state
    system = next((t.get("content", "") for t in record["conversation"]
                   if isinstance(t, dict) and t.get("role") == "system"), "")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    example_id = uid if "conversation_index" not in metadata else f"{uid}#{metadata['conversation_index']}"
    return StreamExample(
        id=example_id, video_id=uid, media=media, fps=fps, duration_s=duration_s,
        goal=str(record.get("inferred_goal", "")), knowledge=str(record.get("inferred_knowledge", "")),
        system=str(system), nodes=nodes, frames=frames,
        meta={"source": str(source.file), "index": source.index, "n_turns_said": len(said)},
    )


def convert_all(sources: list[Source], data_root: Path, fps: float) -> tuple[list[StreamExample], list[Reject]]:
    examples, rejects = [], []
    seen: set[str] = set()
    for source in sources:
        try:
            example = convert(source, data_root, fps)
        except (RecordError, VideoReadError, ValueError) as err:
            rejects.append(Reject(file=str(source.file), record=source.label, reason=str(err)))
            continue
        if example.id in seen:
            rejects.append(Reject(file=str(source.file), record=source.label, reason=f"duplicate id {example.id!r}"))
            continue
        seen.add(example.id)
        examples.append(example)
    return examples, rejects


def split_by_video(
    examples: list[StreamExample], ratios: tuple[float, float, float], seed: int
) -> dict[str, list[StreamExample]]:
    """train/val/test by video_id (no video in two splits); shares are of videos, rounded cumulatively."""
    videos = sorted({e.video_id for e in examples})
    order = [videos[i] for i in np.random.default_rng(seed).permutation(len(videos))]
    total = sum(ratios)
    bounds = np.round(np.cumsum(ratios) / total * len(order)).astype(int)
    assigned = {}
    for position, video in enumerate(order):
        assigned[video] = "train" if position < bounds[0] else "val" if position < bounds[1] else "test"
    splits: dict[str, list[StreamExample]] = {"train": [], "val": [], "test": []}
    for example in examples:
        name = assigned[example.video_id]
        splits[name].append(example.model_copy(update={"split": name}))
    return splits


def frame_stats(examples: list[StreamExample]) -> dict[str, float | int]:
    frames = [f for e in examples for f in e.frames]
    n = len(frames)
    return {
        "videos": len(examples),
        "frames": n,
        "speak_frames": sum(f.speak for f in frames),
        "dst_update_frames": sum(f.dst_update for f in frames),
        "speak_share": round(sum(f.speak for f in frames) / n, 4) if n else 0.0,
        "dst_update_share": round(sum(f.dst_update for f in frames) / n, 4) if n else 0.0,
    }


# --------------------------------------------------------------------------- commands (registered in cli.py)


class DstPrepConfig(CommandConfig):
    """Convert ProAssist-with-DST annotations into per-frame stream examples, split by video.

    Writes OUT/stream/{train,val,test}.jsonl (one video per line: DST nodes and per-frame targets),
    OUT/rejects.jsonl (refused videos and files, with the reason) and OUT/run.json.
    """

    annotations: list[Path] = Field(description="annotation JSON files or folders of them (a list of videos each)")
    out: Path = Field(description="output folder: stream/{train,val,test}.jsonl, rejects.jsonl, run.json")
    data_root: Path | None = Field(
        None, description="folder the videos' paths are relative to [default: the first annotation file's folder]")
    fps: float = Field(2.0, gt=0, description="frames sampled per second of video (decisions are made per frame)")
    ratios: list[float] = Field([0.7, 0.15, 0.15], description="train,val,test shares of videos")
    strict: bool = Field(False, description="exit 2 if any record is refused")
    seed: int = Field(0, description="seed of the video shuffle before the split")

    @model_validator(mode="after")
    def _three(self) -> DstPrepConfig:
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or not sum(self.ratios):
            raise ValueError("ratios takes three non-negative numbers: train,val,test")
        return self


def run_dst_prep(config: DstPrepConfig) -> dict[str, Any]:
    from videotune.core.io import InputError, write_jsonl
    from videotune.core.manifest import RunManifest

    manifest = RunManifest("prep", "dst", config.model_dump(mode="json"), config.out, seed=config.seed)
    first = config.annotations[0]
    data_root = config.data_root or (first if first.is_dir() else first.parent)
    sources, rejects = read_sources(config.annotations)
    examples, refused = convert_all(sources, data_root, config.fps)
    rejects += refused
    if rejects:
        write_jsonl(config.out / "rejects.jsonl", rejects)
    if config.strict and rejects:
        raise InputError(f"{len(rejects)} record(s) refused and --strict is set; first: "
                         f"{rejects[0].file} ({rejects[0].record}): {rejects[0].reason} (all in {config.out / 'rejects.jsonl'})")
    if not examples:
        reason = f"; first: {rejects[0].file} ({rejects[0].record}): {rejects[0].reason}" if rejects else ""
        raise InputError(f"{', '.join(map(str, config.annotations))}: no usable video records{reason}")
    splits = split_by_video(examples, tuple(config.ratios), config.seed)
    for name, items in splits.items():
        write_jsonl(config.out / "stream" / f"{name}.jsonl", items)
    for path in config.annotations:
        manifest.add_input(path)
    stats = {name: frame_stats(items) for name, items in splits.items()}
    manifest.write(outputs={name: f"stream/{name}.jsonl" for name in splits}, n_rejected=len(rejects), stats=stats)
    return {"stats": stats, "rejects": rejects}
