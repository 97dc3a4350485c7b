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
        if media.startswith("/") or ".." in media.replace("\\", "/").split("/"):
            raise ValueError(f"media path {media!r} must be relative to the data root and stay inside it")
        return media

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
