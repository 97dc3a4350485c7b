"""Examples -> LLaVA conversation JSON, for the LLaVA-Video / Mobile-VideoGPT / LLaVA codebases.

A record: `{"id", "video" | "image": <media path>, "conversations": [{"from": "human", "value":
"<video>\\n..."}, {"from": "gpt", "value": "..."}, ...], "split"?}`. The media token opens the
first human turn; a system message (LLaVA conversations have no such role) is put before the
first user text. Media paths stay relative to the data root (LLaVA codebases join them with
their `video_folder`/`image_folder`) unless a prefix is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from videotune.core.io import InputError
from videotune.core.schemas import Example
from videotune.prep.importers.llava import TIME_INSTRUCTION


@dataclass
class LlavaExportOptions:
    ids: Literal["example", "sample"] = "example"  # which id the record carries
    media_prefix: str = ""  # joined before each media path ("" keeps them relative)
    time_instruction: Literal["keep", "strip"] = "keep"  # strip: for codebases that add their own


def to_llava(example: Example, options: LlavaExportOptions) -> dict[str, Any]:
    """One LLaVA record; InputError when the turns do not alternate user/assistant."""
    kind = "image" if example.frames is None else "video"
    system = "\n".join(m.content for m in example.messages if m.role == "system")
    turns = [m for m in example.messages if m.role != "system"]
    conversations = []
    for k, message in enumerate(turns):
        expected = "user" if k % 2 == 0 else "assistant"
        if message.role != expected:
            raise InputError(f"example {example.id!r}: message {k} is from {message.role}, expected {expected} "
                             "(LLaVA conversations alternate human and gpt)")
        value = message.content
        if k == 0:
            if options.time_instruction == "strip":
                value = TIME_INSTRUCTION.sub("", value).lstrip()
            value = f"<{kind}>\n" + (f"{system}\n" if system else "") + value
        conversations.append({"from": "human" if expected == "user" else "gpt", "value": value})
    media = example.media
    if options.media_prefix:
        media = f"{options.media_prefix.rstrip('/')}/{media}"
    record: dict[str, Any] = {"id": example.id if options.ids == "example" else example.sample_id, kind: media,
                              "conversations": conversations}
    split = example.meta.get("split")
    if split:
        record["split"] = split
    return record


def export_llava(sources: Iterable[tuple[Path, list[Example]]], options: LlavaExportOptions) -> list[dict[str, Any]]:
    """Records of every example of every file, in order; a repeated id is refused (naming both files)."""
    records: list[dict[str, Any]] = []
    first_seen: dict[str, Path] = {}
    for path, examples in sources:
        for example in examples:
            record = to_llava(example, options)
            rid = record["id"]
            if rid in first_seen:
                raise InputError(f"{path}: id {rid!r} is also in {first_seen[rid]}: LLaVA ids must be unique"
                                 + (" (try --ids example)" if options.ids == "sample" else ""))
            first_seen[rid] = path
            records.append(record)
    return records
