"""Synthetic procedural assembly videos for the streaming DST assistant, with exact ground truth.

A workbench seen from above: a parts tray along the bottom edge and one slot per part on the
bench. Each video is a task of 3-5 steps ("Attach the red block."): at a step's start the part
appears in the tray under a green ring, a hand carries it to its slot while the step is in
progress, and at the step's end it snaps into place under a white ring. Between steps the
bench is idle for a while (or the next step starts at once). Sometimes the part slips back to
the tray mid-step (red ring) and the assistant warns the user.

The assistant speaks at each step's start (the instruction), at a slip, and once the last step
is done. Every event lies on the 0.5 s grid, so at 2 fps it falls exactly on a sampled frame;
the cues last 0.5 s (a ring round the part and a border round the frame), so the frame that
carries a decision shows why. Small frames (64 px) and
short videos (about 20-45 s) keep a tiny model's training to CPU minutes.

Output: the ProAssist-with-DST JSON format (`annotations.json`, the shape of
shared/formats/proassist_dst_example.json, plus each video's relative path and duration),
`videos/<video_uid>.mp4`, and samples.parquet (task "stream", one row per video).
Units: times in seconds, sizes in pixels, colours 8-bit RGB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, model_validator

from videotune.core.cli import CommandConfig
from videotune.core.schemas import Sample
from videotune.core.video import encode_video

DATASET = "synth-assembly"
GRID_S = 0.5  # every event time is a multiple of this: one frame period at 2 fps
CUE_S = 0.5  # how long the start, completion and slip cues stay visible

# name, colour, slot centre as a share of the frame side (x, y); the tray is the bottom strip.
PARTS: tuple[tuple[str, tuple[int, int, int], tuple[float, float]], ...] = (
    ("base plate", (70, 90, 200), (0.20, 0.18)),
    ("red block", (215, 40, 40), (0.50, 0.18)),
    ("green wheel", (40, 185, 60), (0.80, 0.18)),
    ("yellow panel", (230, 210, 40), (0.20, 0.45)),
    ("purple roof", (150, 60, 190), (0.50, 0.45)),
    ("orange bolt", (245, 140, 30), (0.80, 0.45)),
)
OBJECTS = ("toy cart", "bird house", "small shelf", "robot kit")
TRAY_Y = 0.84  # tray row centre, share of the frame side
RENDER_FPS = 4.0


@dataclass
class AssemblySynthConfig:
    n_videos: int = 60
    seed: int = 0
    size_px: int = 64
    fps: float = RENDER_FPS
    min_steps: int = 3
    max_steps: int = 5
    slip_probability: float = 0.3  # per step


@dataclass
class Step:
    id: str
    part: int  # index into PARTS
    start_s: float
    end_s: float
    slip_s: float | None  # when the part slips back to the tray, if it does


def _grid(value: float) -> float:
    return round(value / GRID_S) * GRID_S


def plan_video(rng: np.random.Generator, config: AssemblySynthConfig) -> tuple[list[Step], float, str]:
    """Steps with start/end/slip times (on the 0.5 s grid), the video duration and the object name."""
    n_steps = int(rng.integers(config.min_steps, config.max_steps + 1))
    parts = rng.permutation(len(PARTS))[:n_steps]
    t = _grid(rng.uniform(1.0, 2.0))
    steps = []
    for index, part in enumerate(parts):
        duration = _grid(rng.uniform(3.0, 6.0))
        slip = None
        if rng.random() < config.slip_probability:
            # strictly inside the step, away from both cues
            slip = t + _grid(rng.uniform(1.0, duration - 1.0))
        steps.append(Step(id=f"S{index + 1}", part=int(part), start_s=t, end_s=t + duration, slip_s=slip))
        # the next step starts at once (a shared boundary frame) or after an idle gap
        t = t + duration + (0.0 if rng.random() < 0.3 else _grid(rng.uniform(1.0, 2.5)))
    end_idle = _grid(rng.uniform(1.5, 2.5))
    duration_s = steps[-1].end_s + end_idle
    obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
    return steps, duration_s, obj


def _box(cx: float, cy: float, size: int, half: float) -> tuple[float, float, float, float]:
    return (cx * size - half, cy * size - half, cx * size + half, cy * size + half)


def render_frame(
    t: float, steps: list[Step], size: int, bench: tuple[int, int, int], noise: np.ndarray
) -> np.ndarray:
    """The bench at time t: placed parts, the part in hand, and the 0.5 s cues."""
    image = Image.new("RGB", (size, size), bench)
    draw = ImageDraw.Draw(image)
    half = size * 0.09  # half a part's side, px
    tray_top = (TRAY_Y - 0.1) * size
    draw.rectangle((0, tray_top, size, size), fill=tuple(max(0, c - 45) for c in bench))
    for step in steps:
        name, colour, (sx, sy) = PARTS[step.part]
        slot = _box(sx, sy, size, half)
        # an empty slot is a faint outline, so that where a part goes is always visible
        draw.rectangle(slot, outline=tuple(max(0, c - 30) for c in bench))
        if t >= step.end_s:
            draw.rectangle(slot, fill=colour)
            if t < step.end_s + CUE_S:
                draw.rectangle(_box(sx, sy, size, half + 3), outline=(255, 255, 255), width=2)
        elif t >= step.start_s:
            progress = (t - step.start_s) / (step.end_s - step.start_s)
            slipped = step.slip_s is not None and step.slip_s <= t < step.slip_s + CUE_S
            if slipped:
                cx, cy = sx, TRAY_Y
            else:
                if step.slip_s is not None and t >= step.slip_s + CUE_S:
                    # picked up again: the carry restarts from the tray
                    progress = (t - step.slip_s) / (step.end_s - step.slip_s)
                cx = sx
                cy = TRAY_Y + (sy - TRAY_Y) * min(1.0, progress)
            box = _box(cx, cy, size, half)
            draw.rectangle(box, fill=colour)
            if slipped:
                draw.rectangle(_box(cx, cy, size, half + 3), outline=(255, 0, 0), width=2)
            elif t < step.start_s + CUE_S:
                draw.rectangle(_box(cx, cy, size, half + 3), outline=(0, 255, 0), width=2)
            else:
                hand = (cx * size + half * 0.6, cy * size + half * 0.6)
                draw.ellipse((hand[0] - 4, hand[1] - 4, hand[0] + 4, hand[1] + 4), fill=(235, 190, 160))
    # The same cues as a border round the whole frame, so that a decision frame stands out even
    # at the 32 px a tiny model reads: white outermost (a step completed), then green (a step
    # started), then red (a part slipped), each `border` px wide.
    border = max(2, size // 16)
    inset = 0
    for colour, active in (((255, 255, 255), any(s.end_s <= t < s.end_s + CUE_S for s in steps)),
                           ((0, 255, 0), any(s.start_s <= t < s.start_s + CUE_S for s in steps)),
                           ((255, 0, 0), any(s.slip_s is not None and s.slip_s <= t < s.slip_s + CUE_S for s in steps))):
        if active:
            draw.rectangle((inset, inset, size - 1 - inset, size - 1 - inset), outline=colour, width=border)
            inset += border
    pixels = np.asarray(image, dtype=np.int16) + noise
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _utterances(steps: list[Step], obj: str, rng: np.random.Generator) -> list[tuple[float, str]]:
    said = []
    for index, step in enumerate(steps):
        part = PARTS[step.part][0]
        if index == 0:
            text = f"Let's assemble the {obj}. First, attach the {part}."
        else:
            text = ["Now attach the {p}.", "Next, attach the {p}.", "Good. Now attach the {p}."][
                int(rng.integers(3))].format(p=part)
        said.append((step.start_s, text))
        if step.slip_s is not None:
            said.append((step.slip_s, f"Careful, the {part} slipped. Pick it up again."))
    said.append((steps[-1].end_s, f"Well done, the {obj} is assembled."))
    return sorted(said, key=lambda x: x[0])


def annotation(uid: str, steps: list[Step], duration_s: float, obj: str, rng: np.random.Generator) -> dict[str, Any]:
    """One video in the ProAssist-with-DST format (DST_UPDATE turns before dialogue at equal times)."""
    names = {s.id: f"Attach the {PARTS[s.part][0]}." for s in steps}
    turns: list[tuple[float, int, dict[str, Any]]] = []
    for step in steps:
        turns.append((step.start_s, 0, {"role": "DST_UPDATE", "time": step.start_s,
                                        "content": [{"id": step.id, "transition": "start"}]}))
        turns.append((step.end_s, 0, {"role": "DST_UPDATE", "time": step.end_s,
                                      "content": [{"id": step.id, "transition": "complete"}]}))
    for time_s, text in _utterances(steps, obj, rng):
        turns.append((time_s, 1, {"role": "assistant", "content": text, "time": time_s}))
    # completions before starts at a shared time, as the reference data orders them
    turns.sort(key=lambda x: (x[0], x[1], x[2].get("content", [{}])[0].get("transition", "") == "start"
                              if x[2]["role"] == "DST_UPDATE" else 0))
    conversation = [
        {"role": "system", "content": "You are a proactive assistant who guides the user through an assembly task."},
        {"role": "user", "content": f"Can you guide me through the {obj}?", "time": 0.0},
    ] + [t[2] for t in turns]
    knowledge = "Goal\n" + "\n".join(f"{i + 1}. {names[s.id]}" for i, s in enumerate(steps))
    return {
        "video_uid": uid,
        "video": f"videos/{uid}.mp4",
        "duration_s": duration_s,
        "inferred_goal": f"Assemble the {obj}",
        "inferred_knowledge": knowledge,
        "conversation": conversation,
        "dst": [{"type": "step", "id": s.id, "start_ts": s.start_s, "end_ts": s.end_s, "name": names[s.id]}
                for s in steps],
        "metadata": {"dataset": DATASET},
    }


def _frames(n_frames: int, steps: list[Step], size: int, fps: float, bench: tuple[int, int, int],
            noise_rng: np.random.Generator):
    for j in range(n_frames):
        # mild sensor noise (sigma 3 grey levels), so no two frames are byte-identical
        noise = noise_rng.normal(0.0, 3.0, size=(size, size, 3)).astype(np.int16)
        yield render_frame(j / fps, steps, size, bench, noise)


def synth_assembly(
    out_dir: str | Path, config: AssemblySynthConfig, progress: Callable[[int, int], None] | None = None
) -> tuple[list[dict[str, Any]], list[Sample]]:
    """Render every video and return (annotations, samples); the caller writes the JSON and parquet."""
    out_dir = Path(out_dir)
    if config.size_px % 2:
        raise ValueError("size_px must be even (H.264 with 4:2:0 chroma)")
    annotations, samples = [], []
    for index in range(config.n_videos):
        rng = np.random.default_rng([config.seed, index])
        steps, duration_s, obj = plan_video(rng, config)
        uid = f"assembly_{index:04d}"
        bench = tuple(int(c) for c in (150, 115, 75) + rng.integers(-15, 16, size=3))
        n_frames = round(duration_s * config.fps)
        noise_rng = np.random.default_rng([config.seed, index, 1])
        encode_video(out_dir / "videos" / f"{uid}.mp4",
                     _frames(n_frames, steps, config.size_px, config.fps, bench, noise_rng),
                     config.fps, keyframe_interval_s=2.0, crf=18)
        record = annotation(uid, steps, duration_s, obj, rng)
        annotations.append(record)
        samples.append(Sample(
            id=uid, dataset=DATASET, media=record["video"], media_kind="video", duration_s=duration_s,
            fps=config.fps, group=uid, task="stream", label=record["inferred_goal"],
            meta=json.dumps({"n_steps": len(steps), "object": obj}),
        ))
        if progress:
            progress(index + 1, config.n_videos)
    return annotations, samples


# --------------------------------------------------------------------------- command (registered in cli.py)


class SynthAssemblyCommand(CommandConfig):
    """Render synthetic assembly videos with DST steps and an assistant dialogue (ProAssist-with-DST format).

    Writes OUT/videos/*.mp4, OUT/annotations.json (input of `vt-prep dst`), OUT/samples.parquet, OUT/run.json.
    """

    out: Path = Field(description="output folder: videos/, annotations.json, samples.parquet")
    n_videos: int = Field(60, ge=3, description="number of videos (each one task of 3-5 steps, about 20-45 s)")
    size_px: int = Field(64, ge=32, description="frame side in pixels (even)")
    fps: float = Field(RENDER_FPS, gt=0, description="frames per second of the rendered videos")
    slip_probability: float = Field(0.3, ge=0, le=1, description="chance per step that the part slips mid-step")
    seed: int = Field(0, description="random seed: the same seed renders the same videos")

    @model_validator(mode="after")
    def _even(self) -> SynthAssemblyCommand:
        if self.size_px % 2:
            raise ValueError("size_px must be even (H.264 with 4:2:0 chroma)")
        return self


def run_synth_assembly(config: SynthAssemblyCommand) -> dict[str, Any]:
    from videotune.core.io import write_json, write_samples
    from videotune.core.manifest import RunManifest, seed_everything
    from videotune.core.progress import Progress

    seed_everything(config.seed)
    manifest = RunManifest("prep", "synth assembly", config.model_dump(mode="json"), config.out, seed=config.seed)
    synth = AssemblySynthConfig(n_videos=config.n_videos, seed=config.seed, size_px=config.size_px, fps=config.fps,
                                slip_probability=config.slip_probability)
    with Progress("render assembly videos", config.n_videos) as progress:
        annotations, samples = synth_assembly(config.out, synth, progress=lambda done, total: progress.advance())
    write_json(config.out / "annotations.json", annotations)
    write_samples(config.out / "samples.parquet", samples)
    total_s = sum(a["duration_s"] for a in annotations)
    manifest.write(outputs={"annotations": "annotations.json", "samples": "samples.parquet", "videos": "videos/"},
                   n_videos=len(annotations), total_duration_s=total_s)
    return {"n_videos": len(annotations), "total_duration_s": total_s}
