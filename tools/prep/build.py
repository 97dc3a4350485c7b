"""Conversation examples from samples: seed-002 answer templates, the time instruction in the prompt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from videotune.core import taxonomy
from videotune.core.io import InputError
from videotune.core.schemas import Example, FrameSpec, Message, Reject, Sample
from videotune.core.video import SamplingSpec, plan_frames, time_instruction

Variant = Literal["plain", "temporal", "boolean"]


@lru_cache(maxsize=4)
def load_templates(path: str | None = None) -> dict[str, Any]:
    """The answer templates: the shipped aqa.yaml, or a user's file of the same shape."""
    text = Path(path).read_text() if path else resources.files("videotune.prep").joinpath("templates/aqa.yaml").read_text()
    templates = yaml.safe_load(text)
    for key in ("question", "no_error", "one_error", "two_errors", "temporal_error", "boolean_yes", "boolean_no"):
        if key not in templates:
            raise InputError(f"{path or 'aqa.yaml'}: template key {key!r} is missing")
    return templates


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.2f}"


def aqa_answer(sample: Sample, variant: Variant, templates: dict[str, Any], rng: random.Random, paraphrases: int) -> str:
    """The target sentence for one clip; the paraphrase is drawn from the first `paraphrases` of each list."""
    exercise = taxonomy.EXERCISES.get(sample.label)
    if exercise is None:
        raise InputError(f"sample {sample.id!r}: unknown exercise label {sample.label!r}; known: {list(taxonomy.EXERCISES)}")
    for span in sample.errors:
        if span.name not in exercise.errors:
            raise InputError(f"sample {sample.id!r}: error {span.name!r} does not belong to {sample.label!r}")

    def pick(options: list[str]) -> str:
        return rng.choice(options[: max(1, paraphrases)])

    # Errors in taxonomy order, so the same clip always lists them the same way.
    names = [e for e in exercise.errors if any(s.name == e for s in sample.errors)]
    if variant == "boolean":
        return pick(templates["boolean_yes" if names else "boolean_no"]).format(exercise=exercise.display)
    if not names:
        return pick(templates["no_error"]).format(exercise=exercise.display)
    mentions = []
    for name in names:
        display = taxonomy.ERROR_DISPLAY[name]
        if variant == "temporal":
            spans = sorted((s for s in sample.errors if s.name == name), key=lambda s: s.start_s)
            mentions.extend(
                templates["temporal_error"].format(error=display, start=_fmt_time(s.start_s), end=_fmt_time(s.end_s))
                for s in spans
            )
        else:
            mentions.append(display)
    key = "one_error" if len(names) == 1 else "two_errors"
    return pick(templates[key]).format(exercise=exercise.display, errors=" and ".join(mentions))


def vqa_example(sample: Sample, data_root: Path, spec: SamplingSpec) -> Example:
    """A VQA example: the sample's question as the user turn, its answer as the target.

    Images carry no frames (`frames` None; the media enters the prompt as one image); a video
    sample's frames are planned with `spec` and its timing stated as for the other tasks. InputError when
    the media cannot be read or the question or answer is empty.
    """
    media_path = data_root / sample.media
    if not sample.question.strip() or not sample.answer.strip():
        raise InputError(f"sample {sample.id!r}: a VQA sample needs a question and an answer")
    frames = None
    user = sample.question
    if sample.media_kind == "image":
        from videotune.core.image import load_image

        height, width = load_image(media_path).shape[:2]  # refuses a missing or unreadable image
        extra: dict[str, Any] = {"width_px": width, "height_px": height}
    else:
        info, timestamps = plan_frames(media_path, spec)
        frames = FrameSpec(n=len(timestamps), timestamps_s=timestamps)
        user = f"{time_instruction(info.duration_s, timestamps)}\n{sample.question}"
        extra = {"duration_s": info.duration_s, "fps": info.fps, **sampling_meta(spec)}
    meta = {"dataset": sample.dataset, "group": sample.group, "split": sample.split, "task": "vqa",
            "stage": sample.stage, "label": sample.label, "media_kind": sample.media_kind, **extra}
    return Example(
        id=f"{sample.id}:vqa", sample_id=sample.id, media=sample.media, frames=frames,
        messages=[Message(role="user", content=user), Message(role="assistant", content=sample.answer)],
        target=sample.answer, meta=meta,
    )


def passthrough_example(sample: Sample, data_root: Path, spec: SamplingSpec, templates: dict[str, Any]) -> Example:
    """An imported sample's own conversation (vt-prep import llava/vqa/qved): its question and answer,
    or every turn of meta.conversations, with the media and timing handled as for `vqa_example`.

    meta.task stays the sample's task (aqa/feedback/vqa) so that vt-analyze scores it as such; a
    feedback sample without a question gets the shipped feedback question.
    """
    question = sample.question
    if not question.strip() and sample.task == "feedback":
        question = templates["feedback_question"]
    if not question.strip() or not sample.answer.strip():
        raise InputError(f"sample {sample.id!r}: no question and answer of its own to pass through "
                         f"(a {sample.task} sample without them is built with --task {sample.task})")
    base = vqa_example(sample.model_copy(update={"question": question}), data_root, spec)
    messages = list(base.messages)
    turns = sample.meta_dict().get("conversations")
    if turns:
        # The first human turn is rebuilt (timing of the frames sampled now + question); the rest verbatim.
        roles = {"human": "user", "gpt": "assistant"}
        messages = [messages[0], *(Message(role=roles[t["from"]], content=t["value"]) for t in turns[1:])]
    meta = {**base.meta, "task": sample.task, "question": question, "errors": [e.model_dump() for e in sample.errors]}
    if sample.task == "aqa":
        timed = bool(sample.errors) and not sample.meta_dict().get("untimed_errors")
        meta["variant"] = "temporal" if timed else "plain"
    return Example(
        id=f"{sample.id}:passthrough", sample_id=sample.id, media=sample.media, frames=base.frames,
        messages=messages, target=messages[-1].content, meta=meta,
    )


def sampling_meta(spec: SamplingSpec) -> dict[str, Any]:
    """`meta.sampling` for a rate-based spec ({target_fps, max_frames}): core.video.example_sampling
    reads it back, so training and inference take exactly the frames the prompt states. Uniform
    sampling needs no record (the example's frame count is the rule)."""
    if spec.target_fps is None:
        return {}
    return {"sampling": {"target_fps": spec.target_fps, "max_frames": spec.max_frames}}


@dataclass
class BuildOptions:
    task: Literal["aqa", "feedback", "vqa", "passthrough"]
    variant: Variant
    n_frames: int  # frames spread uniformly over each clip, unless target_fps is set
    paraphrases: int
    seed: int
    templates_path: str | None = None
    target_fps: float | None = None  # sample at this rate instead ...
    max_frames: int | None = None  # ... and spread this many uniformly where the rate would give more

    def spec(self) -> SamplingSpec:
        if self.target_fps is not None:
            return SamplingSpec(n_frames=None, target_fps=self.target_fps, max_frames=self.max_frames)
        return SamplingSpec(n_frames=self.n_frames)


def build_examples(
    samples: list[Sample], data_root: Path, options: BuildOptions
) -> tuple[list[Example], list[Reject]]:
    """One example per usable sample; samples whose media cannot be read are rejected with the reason."""
    templates = load_templates(options.templates_path)
    spec = options.spec()
    examples: list[Example] = []
    rejects: list[Reject] = []
    for sample in samples:
        # One generator per sample: the paraphrase of a clip does not depend on which others are present.
        rng = random.Random(f"{options.seed}:{sample.id}")
        media_path = data_root / sample.media
        if options.task in ("vqa", "passthrough"):
            try:
                if options.task == "vqa":
                    examples.append(vqa_example(sample, data_root, spec))
                else:
                    examples.append(passthrough_example(sample, data_root, spec, templates))
            except InputError as err:
                rejects.append(Reject(file=str(media_path), record=sample.id, reason=str(err)))
            continue
        try:
            info, timestamps = plan_frames(media_path, spec)
        except InputError as err:  # unreadable, truncated, or no frame in the window
            rejects.append(Reject(file=str(media_path), record=sample.id, reason=str(err)))
            continue
        intro = time_instruction(info.duration_s, timestamps)
        if options.task == "feedback":
            if not sample.answer:
                rejects.append(Reject(file=str(media_path), record=sample.id, reason="no feedback text (answer is empty)"))
                continue
            question, target = templates["feedback_question"], sample.answer
        else:
            untimed = sample.meta_dict().get("untimed_errors")
            if options.variant == "temporal" and untimed:
                # An imported answer named these errors without times: a temporal answer would invent them.
                rejects.append(Reject(file=str(media_path), record=sample.id,
                                      reason=f"errors {untimed} have no time spans: cannot build a temporal answer"))
                continue
            question = templates["boolean_question" if options.variant == "boolean" else "question"]
            target = aqa_answer(sample, options.variant, templates, rng, options.paraphrases)
        user = f"{intro}\nPlease answer the following questions related to this video.\n{question}"
        meta = {
            "dataset": sample.dataset,
            "group": sample.group,
            "split": sample.split,
            "task": options.task,
            "variant": options.variant,
            "label": sample.label,
            "errors": [e.model_dump() for e in sample.errors],
            "duration_s": info.duration_s,
            "fps": info.fps,
            **sampling_meta(spec),
        }
        examples.append(
            Example(
                id=f"{sample.id}:{options.task}:{options.variant}",
                sample_id=sample.id,
                media=sample.media,
                frames=FrameSpec(n=len(timestamps), timestamps_s=timestamps),
                messages=[Message(role="user", content=user), Message(role="assistant", content=target)],
                target=target,
                meta=meta,
            )
        )
    return examples, rejects
