"""Typed records of every artifact the tools exchange (see DESIGN.md, "Artifacts").

Each record is a pydantic model; `core.io` validates every row on read and on write, so a
malformed file is refused with the file, the record and the field named.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A rubric score: an integer on the 1..5 scale (judges and expert raters alike).
RubricScore = Annotated[int, Field(strict=True, ge=1, le=5)]


def relative_media(media: str) -> str:
    """`media` when it is a path relative to the data root that stays inside it (no `..`, not absolute).

    A symlink that leads out of the root can only be seen on disk: `core.checks.media_path` refuses it.
    """
    parts = media.replace("\\", "/").split("/")
    if media.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"media path {media!r} must be relative to the data root and stay inside it")
    return media


class Strict(BaseModel):
    # Unknown keys are refused: a typo in a hand-written file should not pass silently.
    model_config = ConfigDict(extra="forbid")


class ErrorSpan(Strict):
    name: str
    start_s: float = Field(ge=0.0)
    end_s: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> ErrorSpan:
        if self.end_s < self.start_s:
            raise ValueError(f"error span {self.name!r} ends ({self.end_s}) before it starts ({self.start_s})")
        return self


class Sample(Strict):
    """One row of samples.parquet: a clip or an image with its labels."""

    id: str = Field(min_length=1)
    dataset: str
    media: str  # relative to the data root
    media_kind: Literal["video", "image"]
    duration_s: float = Field(ge=0.0)
    fps: float = Field(ge=0.0)
    split: Literal["", "train", "val", "test"] = ""
    group: str  # leakage unit: subject / source video / source image
    task: Literal["aqa", "feedback", "vqa", "stream"]
    label: str = ""
    errors: list[ErrorSpan] = []
    question: str = ""
    answer: str = ""
    stage: str = ""
    meta: str = "{}"  # JSON object, stored as text so parquet keeps one schema

    @field_validator("media")
    @classmethod
    def _relative(cls, media: str) -> str:
        return relative_media(media)

    @field_validator("meta")
    @classmethod
    def _json_object(cls, meta: str) -> str:
        if not isinstance(json.loads(meta), dict):
            raise ValueError("meta must be a JSON object")
        return meta

    @model_validator(mode="after")
    def _spans_inside_clip(self) -> Sample:
        # A small tolerance (10 ms) absorbs rounding of annotation tools.
        for span in self.errors:
            if self.duration_s and span.end_s > self.duration_s + 0.01:
                raise ValueError(
                    f"error span {span.name!r} ends at {span.end_s}s, past the clip's end ({self.duration_s}s)"
                )
        return self

    def meta_dict(self) -> dict[str, Any]:
        return json.loads(self.meta)


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class FrameSpec(Strict):
    n: int = Field(ge=1)
    timestamps_s: list[float]

    @model_validator(mode="after")
    def _count(self) -> FrameSpec:
        if len(self.timestamps_s) != self.n:
            raise ValueError(f"frames.n is {self.n} but {len(self.timestamps_s)} timestamps are given")
        return self


class Example(Strict):
    """One conversation record of examples/{split}.jsonl."""

    id: str = Field(min_length=1)
    sample_id: str
    media: str
    frames: FrameSpec | None = None  # None for images
    messages: list[Message] = Field(min_length=2)
    target: str
    meta: dict[str, Any] = {}

    @field_validator("media")
    @classmethod
    def _relative(cls, media: str) -> str:
        return relative_media(media)

    @model_validator(mode="after")
    def _ends_with_target(self) -> Example:
        if self.messages[-1].role != "assistant" or self.messages[-1].content != self.target:
            raise ValueError("the last message must be the assistant's and equal the target")
        return self


class Prediction(Strict):
    """One row of predictions.jsonl."""

    id: str = Field(min_length=1)
    model: str
    prompt: str
    prediction: str
    reference: str
    preprocess_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    new_tokens: int = 0
    status: Literal["ok", "error"]
    error: str = ""
    meta: dict[str, Any] = {}


class Verdict(Strict):
    """One row of verdicts.jsonl. An unparseable answer keeps its raw text and no score."""

    id: str
    judge: str
    rubric: str
    scores: dict[str, RubricScore] = {}
    overall: float | None = None
    rationale: str = ""
    status: Literal["ok", "unparseable", "error"]
    raw: str = ""


class Metrics(Strict):
    """metrics.json."""

    n: int = Field(ge=0)
    metrics: dict[str, float | None]
    ci95: dict[str, tuple[float, float]] = {}
    per_class: dict[str, Any] = {}
    meta: dict[str, Any] = {}


class Reject(BaseModel):
    """One row of rejects.jsonl: a refused record and why."""

    file: str
    record: str
    reason: str


# --------------------------------------------------------------------------- streaming DST (issue 8)

# The three node states of a dialogue-state-tracking (DST) graph, in the order a step goes through them.
NodeState = Literal["not_started", "in_progress", "completed"]


class DstNode(Strict):
    id: str = Field(min_length=1)
    name: str


class StreamFrame(Strict):
    """The targets at one sampled frame of a stream example (vt-prep dst -> vt-train dst, vt-analyze)."""

    t_s: float = Field(ge=0.0)  # presentation time of the frame, seconds from the stream start
    dst_update: bool  # the state changed since the previous frame
    dst_delta: dict[str, NodeState] = {}  # the nodes whose state changed, with their new state
    dst: dict[str, NodeState]  # every node's state at this frame (after the update)
    speak: bool
    response: str = ""  # what the assistant says at this frame (when speak)
    user: str = ""  # what the user said since the previous frame (model input, never a target)

    @model_validator(mode="after")
    def _consistent(self) -> StreamFrame:
        if self.dst_update != bool(self.dst_delta):
            raise ValueError("dst_update must be true exactly when dst_delta names a changed node")
        if self.speak != bool(self.response.strip()):
            raise ValueError("speak must be true exactly when a response is given")
        for node, state in self.dst_delta.items():
            if self.dst.get(node) != state:
                raise ValueError(f"dst_delta sets {node!r} to {state!r} but dst has {self.dst.get(node)!r}")
        return self


class StreamExample(Strict):
    """One video of stream/{train,val,test}.jsonl: the task's DST nodes and per-frame targets."""

    id: str = Field(min_length=1)
    video_id: str  # the leakage unit of the split
    media: str  # video path relative to the data root
    fps: float = Field(gt=0.0)  # frames sampled per second of video
    duration_s: float = Field(gt=0.0)
    goal: str = ""
    knowledge: str = ""
    system: str = ""  # the dataset's system prompt, if any
    nodes: list[DstNode] = Field(min_length=1)
    frames: list[StreamFrame] = Field(min_length=1)
    split: Literal["", "train", "val", "test"] = ""
    meta: dict[str, Any] = {}

    @field_validator("media")
    @classmethod
    def _relative(cls, media: str) -> str:
        return relative_media(media)

    @model_validator(mode="after")
    def _frames(self) -> StreamExample:
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate node ids in {ids}")
        for index, frame in enumerate(self.frames):
            if set(frame.dst) != set(ids):
                raise ValueError(f"frame {index}: dst covers {sorted(frame.dst)}, the nodes are {ids}")
            if index and frame.t_s <= self.frames[index - 1].t_s:
                raise ValueError(f"frame {index}: time {frame.t_s}s does not follow {self.frames[index - 1].t_s}s")
        return self


class StreamEvent(Strict):
    """One frame of a vt-infer stream run (events.jsonl): the decisions, what was generated, timing."""

    id: str = Field(min_length=1)  # "<video_id>@<frame index>"
    video_id: str
    frame: int = Field(ge=0)
    t_s: float = Field(ge=0.0)
    speak_prob: float = Field(ge=0.0, le=1.0)
    speak: bool
    response: str = ""
    dst_update_prob: float = Field(ge=0.0, le=1.0)
    dst_update: bool
    dst_text: str = ""  # the generated update as text, kept verbatim even when it does not parse
    dst_valid: bool = True  # the generated update parsed into known nodes and states
    dst: dict[str, NodeState]  # the tracked state after this frame
    user: str = ""
    frame_s: float = Field(0.0, ge=0.0)  # appending the frame and deciding (no generation)
    total_s: float = Field(0.0, ge=0.0)  # the whole frame, generation included
    new_tokens: int = Field(0, ge=0)
    cache_tokens: int = Field(0, ge=0)  # tokens in the KV cache after this frame
    cache_rebuilt: bool = False  # the cache limit was reached and the cache rebuilt at this frame
