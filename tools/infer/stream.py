"""Streaming inference of the DST assistant: one frame at a time through a KV cache.

At each frame its tokens (and the user's words, if the user spoke) are appended to the cache;
the speak and DST-update heads read the hidden state of the last appended token; when the
DST-update head fires the update is generated (greedy, until the end-of-turn token) and
appended, then, when the speak head fires, the response. The next frame sees both in the cache.
The token layout is core.stream's, exactly as vt-train dst trained it.

KV caches (`--kv-cache`):
- `static` (default): transformers' StaticCache, pre-allocated to `--max-kv-cache-tokens`. Every
  step attends over the whole pre-allocated length (masked), so the per-frame cost stays flat
  as the stream grows.
- `dynamic`: transformers' DynamicCache, which grows by concatenation (the cost grows with it).
- `none`: no cache: the whole history (every frame through the vision tower again) is
  re-encoded at every step. Same outputs, for checking and for the benchmark's comparison.

Cache limit policy: before a frame is appended, room is checked for the frame, the user's
words and two generations of `--max-new-tokens`. When there is none, the cache is rebuilt:
the system prompt, re-rendered with the DST state before the first frame kept, followed by the
most recent whole frames (each with what was said and updated at it) that fit in
`--keep-recent-tokens`; the middle is dropped. The rebuild re-encodes those tokens once (that frame is slower, and its
event says `cache_rebuilt`); the positions restart, so the model sees what it saw in training,
where a window starting mid-video opens with the state at its start.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from videotune.core import models
from videotune.core import stream as fmt
from videotune.core.checks import check_media_paths
from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, read_jsonl, write_jsonl
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import StreamEvent, StreamExample
from videotune.core.video import FrameCache, SamplingSpec, default_cache_dir

log = logging.getLogger("videotune.infer")
CacheKind = Literal["static", "dynamic", "none"]


class StreamConfig(CommandConfig):
    """Stream every video of a stream examples file through a model trained by `vt-train dst`, frame by frame.

    Writes OUT/events/<video_id>.jsonl (one event per frame: decisions with their probabilities, the generated
    DST update and response, the tracked state, timing), OUT/events.jsonl (all videos) and OUT/run.json.
    A rerun skips the videos whose event file exists.
    """

    model: str = Field(description="model directory written by vt-train dst (with heads.safetensors, dst_heads.json)")
    examples: Path = Field(description="stream examples JSONL (vt-prep dst's stream/test.jsonl)")
    data_root: Path = Field(description="folder the examples' video paths are relative to")
    out: Path = Field(description="output folder: events/, events.jsonl, run.json")
    kv_cache: CacheKind = Field("static", description="static: pre-allocated KV cache; dynamic: growing; none: re-encode all")
    max_kv_cache_tokens: int | None = Field(
        None, ge=64, description="KV cache size in tokens [default: the model's max positions, at most 4096]")
    keep_recent_tokens: int | None = Field(
        None, ge=0, description="recent context kept when the cache is full [default: half the cache]")
    max_new_tokens: int = Field(48, ge=1, description="cap of a generated DST update or response (tokens)")
    speak_threshold: float | None = Field(None, ge=0, le=1, description="speak when p > this [default: tuned, dst_heads.json]")
    dst_threshold: float | None = Field(None, ge=0, le=1, description="update the DST when p > this [default: tuned]")
    limit: int | None = Field(None, ge=1, description="stream only the first N videos")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    device: str = Field("auto", description="cpu, cuda, cuda:1 ... or auto")
    frame_cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    seed: int = Field(0, description="seed (greedy decoding is deterministic; kept for the manifest)")


@dataclass
class Segment:
    """One frame's share of the history: its tokens (frame, user, generated turns) and its pixels."""

    ids: list[int]
    pixels: Any  # [1, 3, S, S]
    state_before: dict[str, str]  # the tracked state before this frame's update: a rebuild opens with it


@dataclass
class StreamState:
    state: dict[str, str]
    segments: list[Segment] = field(default_factory=list)
    pos: int = 0  # tokens in the cache
    cache: Any = None
    # the `none` cache: every token and frame since the last (re)build, re-encoded at each step
    ids: list[int] = field(default_factory=list)
    pixels: list[Any] = field(default_factory=list)


class Streamer:
    """Runs one video at a time; `run(example, frames)` returns its events."""

    def __init__(self, model: Any, processor: Any, heads: Any, cache: CacheKind = "static", max_cache_tokens: int = 2048,
                 keep_recent_tokens: int | None = None, max_new_tokens: int = 48,
                 speak_threshold: float = 0.5, dst_threshold: float = 0.5):
        self.model = model
        self.base = fmt.base_model(model)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.heads = heads
        self.kind = cache
        self.max_cache_tokens = max_cache_tokens
        self.keep_recent_tokens = max_cache_tokens // 2 if keep_recent_tokens is None else keep_recent_tokens
        self.max_new_tokens = max_new_tokens
        self.speak_threshold = speak_threshold
        self.dst_threshold = dst_threshold
        self.lay = fmt.layout(processor)
        self.device = next(model.parameters()).device

    # ---- the cache

    def _new_cache(self):
        from transformers import DynamicCache, StaticCache

        text_config = self.base.config.text_config
        if self.kind == "static":
            return StaticCache(config=text_config, max_cache_len=self.max_cache_tokens)
        if self.kind == "dynamic":
            return DynamicCache(config=text_config)
        return None

    def _forward(self, s: StreamState, ids: list[int], pixels: Any = None):
        """Append tokens (with their frames' pixels) and return the hidden state of the last one."""
        import torch

        if s.pos + len(ids) > self.max_cache_tokens:
            raise RuntimeError(f"cache overflow: {s.pos} + {len(ids)} tokens > {self.max_cache_tokens}")
        if self.kind == "none":
            s.ids.extend(ids)
            if pixels is not None:
                s.pixels.append(pixels)
            input_ids = torch.tensor([s.ids], device=self.device)
            pixel_values = torch.cat(s.pixels)[None].to(self.device) if s.pixels else None
            out = self.base.model(input_ids=input_ids, pixel_values=pixel_values, use_cache=False)
        else:
            input_ids = torch.tensor([ids], device=self.device)
            pixel_values = pixels[None].to(self.device) if pixels is not None else None
            position = torch.arange(s.pos, s.pos + len(ids), device=self.device)
            out = self.base.model(input_ids=input_ids, pixel_values=pixel_values, past_key_values=s.cache,
                                  cache_position=position, use_cache=True)
        s.pos += len(ids)
        return out.last_hidden_state[0, -1]

    def _rebuild(self, s: StreamState, system_ids: Callable[[dict[str, str]], list[int]]) -> None:
        """Drop the middle: the system prompt and the most recent whole frames that fit.

        The system prompt carries the state before the first kept frame, as a training window that
        starts mid-video does; the kept frames' own updates follow in their segments."""
        import torch

        kept: list[Segment] = []
        budget = self.keep_recent_tokens
        for segment in reversed(s.segments):
            if len(segment.ids) > budget:
                break
            kept.insert(0, segment)
            budget -= len(segment.ids)
        s.segments = kept
        s.cache = self._new_cache()
        s.pos = 0
        s.ids, s.pixels = [], []
        system = system_ids(kept[0].state_before if kept else s.state)
        ids = system + [t for seg in kept for t in seg.ids]
        pixels = torch.cat([seg.pixels for seg in kept]) if kept else None
        if self.kind == "none":
            s.ids, s.pixels = list(system), []
            for seg in kept:
                s.ids.extend(seg.ids)
                s.pixels.append(seg.pixels)
            s.pos = len(s.ids)
            return
        self._forward(s, ids, pixels)

    # ---- generation

    def _greedy(self, s: StreamState, prefix: list[int]) -> tuple[str, list[int]]:
        """Append `prefix`, then generate until end-of-turn (appended too; forced at the cap)."""
        hidden = self._forward(s, prefix)
        generated: list[int] = []
        while True:
            token = int(self.base.lm_head(hidden).argmax())
            if token == self.lay.end or len(generated) == self.max_new_tokens:
                self._forward(s, [self.lay.end])
                break
            generated.append(token)
            hidden = self._forward(s, [token])
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        return text.strip(), prefix + generated + [self.lay.end]

    # ---- one video

    def run(self, example: StreamExample, frames: np.ndarray) -> list[StreamEvent]:
        import torch

        nodes = [(n.id, n.name) for n in example.nodes]
        node_ids = [n.id for n in example.nodes]
        pixels = fmt.pixel_values(self.processor, frames)
        s = StreamState(state={n: "not_started" for n in node_ids})
        reserve = 2 * (len(self.lay.dst_prefix) + len(self.lay.response_prefix) + self.max_new_tokens + 2)

        def system_ids(state: dict[str, str]) -> list[int]:
            return fmt.encode(self.tokenizer, fmt.system_text(example.system, example.goal, nodes, state))

        events = []
        with torch.no_grad():
            for index, frame in enumerate(example.frames):
                started = time.perf_counter()
                chunk = list(self.lay.frame)
                if frame.user:
                    chunk += fmt.user_ids(self.tokenizer, frame.user, self.lay)
                rebuilt = False
                if index == 0:
                    self._rebuild(s, system_ids)
                elif s.pos + len(chunk) + reserve > self.max_cache_tokens:
                    self._rebuild(s, system_ids)
                    rebuilt = True
                if s.pos + len(chunk) + reserve > self.max_cache_tokens:
                    raise InputError(f"--max-kv-cache-tokens {self.max_cache_tokens} cannot hold the system prompt, one "
                                     f"frame and two generations ({s.pos + len(chunk) + reserve} tokens)")
                hidden = self._forward(s, chunk, pixels[index:index + 1])
                speak_logit, update_logit = self.heads(hidden[None].float())
                p_speak, p_update = float(torch.sigmoid(speak_logit)), float(torch.sigmoid(update_logit))
                frame_s = time.perf_counter() - started
                segment = Segment(ids=chunk, pixels=pixels[index:index + 1], state_before=dict(s.state))
                dst_text, response, valid, new_tokens = "", "", True, 0
                if p_update > self.dst_threshold:
                    dst_text, appended = self._greedy(s, list(self.lay.dst_prefix))
                    segment.ids = segment.ids + appended
                    new_tokens += len(appended) - len(self.lay.dst_prefix)
                    delta = fmt.parse_update(dst_text, node_ids)
                    valid = delta is not None
                    if delta:
                        s.state = {**s.state, **delta}
                if p_speak > self.speak_threshold:
                    response, appended = self._greedy(s, list(self.lay.response_prefix))
                    segment.ids = segment.ids + appended
                    new_tokens += len(appended) - len(self.lay.response_prefix)
                s.segments.append(segment)
                events.append(StreamEvent(
                    id=f"{example.id}@{index}", video_id=example.id, frame=index, t_s=frame.t_s,
                    speak_prob=p_speak, speak=p_speak > self.speak_threshold, response=response,
                    dst_update_prob=p_update, dst_update=p_update > self.dst_threshold, dst_text=dst_text,
                    dst_valid=valid, dst=dict(s.state), user=frame.user, frame_s=frame_s,
                    total_s=time.perf_counter() - started, new_tokens=new_tokens, cache_tokens=s.pos,
                    cache_rebuilt=rebuilt,
                ))
        return events


def _file_name(video_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", video_id) + ".jsonl"


def run_stream(config: StreamConfig) -> dict[str, Any]:
    import torch

    from videotune.core.io import iter_jsonl

    check_media_paths(config.examples, config.data_root, StreamExample)
    seed_everything(config.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    manifest = RunManifest("infer", "stream", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.examples)
    ref = models.resolve(config.model)
    if not ref.is_local:
        raise InputError(f"--model {config.model}: give the model directory written by vt-train dst")
    manifest.add_input(ref.source, name="model")
    heads, heads_config = fmt.load_heads(Path(ref.source))
    model, processor = models.load(ref, dtype=config.dtype, device=device)
    model.eval()
    heads = heads.to(device)
    max_positions = int(model.config.text_config.max_position_embeddings)
    max_cache = config.max_kv_cache_tokens or min(max_positions, 4096)
    streamer = Streamer(
        model, processor, heads, cache=config.kv_cache, max_cache_tokens=max_cache,
        keep_recent_tokens=config.keep_recent_tokens, max_new_tokens=config.max_new_tokens,
        speak_threshold=heads_config.speak_threshold if config.speak_threshold is None else config.speak_threshold,
        dst_threshold=heads_config.dst_threshold if config.dst_threshold is None else config.dst_threshold,
    )
    examples = read_jsonl(config.examples, StreamExample)[: config.limit]
    other_rate = next((e for e in examples if abs(e.fps - heads_config.fps) > 1e-9), None)
    if other_rate is not None:
        raise InputError(f"{config.examples}: example {other_rate.id!r} is sampled at {other_rate.fps} fps, the model "
                         f"was trained at {heads_config.fps} fps (vt-prep dst --fps)")
    cache = FrameCache(config.frame_cache_dir or default_cache_dir())
    size = ref.family.frame_size(processor)
    events_dir = config.out / "events"
    done = 0
    with Progress("stream videos", len(examples)) as progress:
        for example in examples:
            target = events_dir / _file_name(example.id)
            if not target.is_file():
                sampled = cache.get_or_sample(config.data_root / example.media,
                                              SamplingSpec(n_frames=None, target_fps=example.fps, size=size))
                if len(sampled.frames) != len(example.frames):
                    raise InputError(f"{config.examples}: example {example.id!r}: the video gives {len(sampled.frames)} "
                                     f"frames at {example.fps} fps, the example has {len(example.frames)}")
                write_jsonl(target, streamer.run(example, sampled.frames))
                done += 1
            progress.advance()
    # events.jsonl: every video's stream, in the examples' order (rewritten whole, atomically)
    all_events = [e for example in examples for e in iter_jsonl(events_dir / _file_name(example.id), StreamEvent)]
    write_jsonl(config.out / "events.jsonl", all_events)
    frame_s = np.array([e.frame_s for e in all_events])
    summary = {
        "n_videos": len(examples), "n_streamed_this_run": done, "n_frames": len(all_events),
        "cache": config.kv_cache, "max_cache_tokens": max_cache, "keep_recent_tokens": streamer.keep_recent_tokens,
        "thresholds": {"speak": streamer.speak_threshold, "dst_update": streamer.dst_threshold},
        "frame_s_p50": float(np.median(frame_s)) if len(frame_s) else None,
        "n_speak": sum(e.speak for e in all_events), "n_dst_update": sum(e.dst_update for e in all_events),
        "n_invalid_dst": sum(not e.dst_valid for e in all_events),
        "n_cache_rebuilds": sum(e.cache_rebuilt for e in all_events),
    }
    manifest.write(outputs={"events": "events.jsonl", "per_video": "events/"}, summary=summary)
    return summary
