"""LLaVA-style conversation JSON -> samples (seed 000's QVED training JSON, seed 002's Fitness-AQA JSON, ...).

A record: `{"id", "video" | "image", "conversations": [{"from": "human", "value": "<video>\\n..."},
{"from": "gpt", "value": "..."}, ...], "split"?, "group"?, "stage"?}`. The first human turn
(media token and any "The video lasts for ..." timing sentence removed: `vt-prep build` states
the timing of the frames it samples) is the question, the first answer the answer; longer
conversations are kept whole in meta.conversations.

Task: given, or inferred: an answer in seed 002's form ("The subject is performing a Squat. The
body part committing errors is the following: knees forward from frame time 0.72s to 2.19s.")
is `aqa`, with its exercise and errors parsed into label and spans; other video records are
`feedback`, image records `vqa`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from videotune.core import taxonomy
from videotune.core.io import InputError
from videotune.core.progress import track
from videotune.core.schemas import ErrorSpan, Sample
from videotune.prep.importers.common import (
    ImportResult,
    Refused,
    check_image,
    check_video,
    json_meta,
    load_records,
    make_spans,
    resolve_media,
)
from videotune.prep.split import SPLITS

TaskChoice = Literal["auto", "aqa", "feedback", "vqa"]

ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt"}
MEDIA_TOKEN = re.compile(r"<\s*(?:image|video)\s*/?\s*>[ \t]*\n?", re.IGNORECASE)
# Both spellings of the seed paper's timing sentence: "... sampled from it. These frames are located
# at 0.00s, ..., 3.07s." and "... uniformly sampled at 0.00s, 0.43s, ..., and 3.07s".
TIME_INSTRUCTION = re.compile(
    r"The video lasts for [\d.]+ seconds?, and \d+ frames? (?:are|is) uniformly sampled"
    r"(?: from it\.\s*(?:These frames are|This frame is) located at| at)"
    r"\s*(?:(?:and\s+)?\d+(?:\.\d+)?s(?:,\s*|\s+|(?=\.)))+\.?\s*",
    re.IGNORECASE,
)
EXERCISE_SENTENCE = re.compile(r"^\s*The subject is performing (?:a|an) (?P<name>[^.]+?)\s*\.", re.IGNORECASE)
NUMBER = r"(-?\d+(?:\.\d+)?)"  # a sign is read so that a negative time is refused, not dropped


@dataclass
class LlavaOptions:
    task: TaskChoice = "auto"
    dataset: str = ""  # default: the JSON file's stem


def _exercise_key(name: str) -> str | None:
    lowered = re.sub(r"\s+", " ", name.strip().lower())
    for key, exercise in taxonomy.EXERCISES.items():
        spellings = {exercise.display.lower(), key.replace("_", " "), *exercise.aliases}
        # "Overhead Press (OHP)" names it twice; either spelling counts
        if lowered in spellings or any(part.strip() in spellings for part in re.split(r"[()]", lowered) if part.strip()):
            return key
    return None


def parse_aqa_answer(answer: str) -> tuple[str, list[tuple[str, float | None, float | None]]] | None:
    """(exercise key, [(error, start_s, end_s)]) from a seed-002 answer; None when it is not one.

    Times are None for answers without spans. An answer that lists errors (after a colon) none of
    which belongs to the exercise is not a seed-002 answer we can read: None, not "no error".
    """
    head = EXERCISE_SENTENCE.match(answer)
    if head is None:
        return None
    key = _exercise_key(head.group("name"))
    if key is None:
        return None
    rest = answer[head.end():]
    names = sorted(taxonomy.EXERCISES[key].errors, key=lambda e: -len(taxonomy.ERROR_DISPLAY[e]))
    alternatives = "|".join(re.escape(taxonomy.ERROR_DISPLAY[e]) for e in names)
    mention = re.compile(
        rf"\b(?P<error>{alternatives})\b(?:,?\s+from\s+(?:frame\s+time\s+)?{NUMBER}\s*s?\s+to\s+{NUMBER}\s*s?)?",
        re.IGNORECASE,
    )
    by_display = {taxonomy.ERROR_DISPLAY[e]: e for e in names}
    found = []
    for match in mention.finditer(rest):
        error = by_display[match.group("error").lower()]
        start = float(match.group(2)) if match.group(2) is not None else None
        end = float(match.group(3)) if match.group(3) is not None else None
        found.append((error, start, end))
    if not found and ":" in rest:
        return None
    return key, found


def _conversation(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise Refused("malformed conversations: expected a list of at least two turns")
    turns = []
    for k, turn in enumerate(raw):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise Refused(f"malformed conversations: turn {k} has no text value")
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise Refused(f"malformed conversations: turn {k} is from {turn.get('from')!r}, not human or gpt")
        expected = "human" if k % 2 == 0 else "gpt"
        if role != expected:
            raise Refused(f"malformed conversations: turn {k} should be from {expected}")
        turns.append({"from": role, "value": turn["value"]})
    if turns[-1]["from"] != "gpt":
        raise Refused("malformed conversations: the last turn is not an answer")
    return turns


def _media(raw: dict[str, Any]) -> tuple[str, str]:
    video, image = raw.get("video"), raw.get("image")
    if video is not None and image is not None:
        raise Refused("both video and image are given")
    value, kind = (video, "video") if video is not None else (image, "image")
    if value is None:
        raise Refused("no video or image (text-only records are not imported)")
    if isinstance(value, list):
        if len(value) != 1:
            raise Refused(f"{len(value)} {kind}s in one record: one medium per sample is supported")
        value = value[0]
    if not isinstance(value, str):
        raise Refused(f"{kind} is {value!r}, not a path")
    return value, kind


def _aqa_fields(answer: str, duration_s: float) -> tuple[str, list[ErrorSpan], list[str]]:
    parsed = parse_aqa_answer(answer)
    if parsed is None:
        raise Refused(f"unknown label: the answer is not a seed-002 exercise/error sentence ({answer[:80]!r})")
    label, mentions = parsed
    spans, untimed = [], []
    for error, start, end in mentions:
        if start is None:
            # No time given: the span is the whole clip, and meta says so (build refuses temporal answers for it).
            untimed.append(error)
            spans.extend(make_spans(error, [(0.0, duration_s)], duration_s))
        else:
            spans.extend(make_spans(error, [(start, end)], duration_s))
    return label, spans, sorted(set(untimed))


def _record(root: Path, raw: Any, record_id: str, options: LlavaOptions, dataset: str) -> Sample:
    if not isinstance(raw, dict):
        raise Refused(f"a {type(raw).__name__}, not an object")
    given, kind = _media(raw)
    turns = _conversation(raw.get("conversations"))
    split = raw.get("split", "") or ""
    if split not in ("", *SPLITS):
        raise Refused(f"unknown split {split!r}")
    path, media = resolve_media(root, given)
    if kind == "video":
        info = check_video(path)
        duration_s, fps = info.duration_s, info.fps
        size = {"width_px": info.width, "height_px": info.height}
    else:
        width, height = check_image(path)
        duration_s, fps = 0.0, 0.0
        size = {"width_px": width, "height_px": height}
    first = turns[0]["value"]
    timing = TIME_INSTRUCTION.search(first)
    question = TIME_INSTRUCTION.sub("", MEDIA_TOKEN.sub("", first)).strip()
    turns[0] = {"from": "human", "value": question}
    answer = turns[1]["value"].strip()
    task = options.task
    if task == "auto":
        parsed = parse_aqa_answer(answer) if kind == "video" else None
        task = "aqa" if parsed is not None else ("vqa" if kind == "image" else "feedback")
    label, spans, untimed = "", [], []
    if task == "aqa":
        if kind != "video":
            raise Refused("an aqa sample needs a video")
        label, spans, untimed = _aqa_fields(answer, duration_s)
    stage = raw.get("stage", "")
    group = raw.get("group") or raw.get("subject") or media
    known = {"id", "video", "image", "conversations", "split", "group", "subject", "stage"}
    extra = {k: v for k, v in raw.items() if k not in known and isinstance(v, (str, int, float, bool))}
    try:
        return Sample(
            id=record_id, dataset=dataset, media=media, media_kind=kind, duration_s=duration_s, fps=fps,
            split=split, group=str(group), task=task, label=label, errors=spans, question=question, answer=answer,
            stage=str(stage), meta=json_meta(
                conversations=turns if len(turns) > 2 else None, untimed_errors=untimed,
                time_instruction=timing.group(0).strip() if timing else None, extra=extra, **size),
        )
    except ValidationError as err:
        raise Refused("; ".join(e["msg"] for e in err.errors())) from None


def import_llava(json_path: Path, root: Path, options: LlavaOptions) -> ImportResult:
    result = ImportResult()
    if not root.is_dir():
        raise InputError(f"{root}: data root not found")
    records = load_records(json_path)
    result.inputs.append(json_path)
    dataset = options.dataset or json_path.stem
    seen: dict[str, int] = {}
    for index, raw in track(list(enumerate(records)), "import llava", len(records)):
        given_id = raw.get("id") if isinstance(raw, dict) else None
        record_id = str(given_id) if given_id not in (None, "") else f"{json_path.stem}-{index}"
        try:
            if record_id in seen:
                raise Refused(f"duplicate id {record_id!r}: record {seen[record_id]} has it too")
            seen[record_id] = index
            result.samples.append(_record(root, raw, record_id, options, dataset))
        except Refused as why:
            result.refuse(json_path, f"{index}:{record_id}", str(why))
    return result
