"""Per-frame latency of `vt-infer stream` late in a stream against early: static vs dynamic KV cache vs re-encoding.

A random-weight tiny SmolVLM2 (64 px frames, 16 image tokens + 3 wrapper tokens per frame) with
random decision heads streams one synthetic video of `--n-frames` frames three times: with a
pre-allocated StaticCache, with a growing DynamicCache, and with no cache (the whole history
re-encoded, vision tower included, at every frame). The heads' thresholds are 1, so nothing is
generated and every frame costs the same work apart from the history it attends to. The
latency at frame k is the median of `frame_s` (append the frame, run the heads) over frames
k-5..k+5 (without a cache: the median of 3 re-encodings of frames 0..k); the table gives it
at each `--frames-at` and the ratio of the last to the first,
which the issue asks to keep <= 1.5 with the cache.

    python -m videotune.infer.bench_stream --frames-at 20,200 --out results/bench/stream

Run it on an idle machine: other processes' load shows up as latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from videotune.core import models
from videotune.core import stream as fmt
from videotune.core.io import atomic_write_text, write_json
from videotune.core.manifest import host_info
from videotune.core.schemas import DstNode, StreamExample, StreamFrame

CORPUS = ['{"S1": "in_progress"}', '{"S1": "completed", "S2": "in_progress"}', "Now attach the red block.",
          "System: Goal: Assemble the cart. Steps: S1: Attach the red block. S2: Attach the wheel."] * 20


def synthetic_stream(n_frames: int, fps: float = 2.0) -> StreamExample:
    state = {"S1": "not_started", "S2": "not_started"}
    frames = [StreamFrame(t_s=i / fps, dst_update=False, dst=state, speak=False) for i in range(n_frames)]
    return StreamExample(id="bench", video_id="bench", media="bench.mp4", fps=fps, duration_s=n_frames / fps,
                         goal="Assemble the cart", frames=frames,
                         nodes=[DstNode(id="S1", name="Attach the red block."), DstNode(id="S2", name="Attach the wheel.")])


def latency_at(frame_s: list[float], k: int, half_window: int = 5) -> float:
    window = frame_s[max(0, k - half_window): k + half_window + 1]
    return statistics.median(window)


def reprefill_latency(streamer, example: StreamExample, frames: np.ndarray, k: int, repeats: int = 3) -> float:
    """Seconds to append frame k when the k frames before it are re-encoded with it (median of repeats)."""
    import time

    import torch

    from videotune.infer.stream import StreamState

    pixels = fmt.pixel_values(streamer.processor, frames[: k + 1])
    system = fmt.encode(streamer.tokenizer, fmt.system_text(
        example.system, example.goal, [(n.id, n.name) for n in example.nodes], example.frames[0].dst))
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            state = StreamState(state=dict(example.frames[0].dst), ids=system + list(streamer.lay.frame) * k,
                                pixels=[pixels[i:i + 1] for i in range(k)])
            state.pos = len(state.ids)
            started = time.perf_counter()
            hidden = streamer._forward(state, list(streamer.lay.frame), pixels[k:k + 1])
            streamer.heads(hidden[None])
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_bench(n_frames: int, frames_at: list[int], caches: list[str], threads: int, seed: int = 0) -> dict:
    import torch

    from videotune.infer.stream import Streamer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        models.build_tiny("smolvlm2", model_dir, CORPUS, seed=seed)
        model, processor = models.load(models.resolve(str(model_dir)))
    model.eval()
    heads = fmt.make_heads(int(model.config.text_config.hidden_size)).eval()
    lay = fmt.layout(processor)
    example = synthetic_stream(n_frames)
    frames = np.random.default_rng(seed).integers(0, 256, size=(n_frames, 64, 64, 3), dtype=np.uint8)
    system = len(fmt.encode(processor.tokenizer, fmt.system_text("", example.goal, [(n.id, n.name) for n in example.nodes],
                                                                 example.frames[0].dst)))
    # room for every frame: the cache limit never triggers, so only the history length varies
    max_cache = system + n_frames * len(lay.frame) + 256
    rows = {}
    for kind in caches:
        streamer = Streamer(model, processor, heads, cache=kind, max_cache_tokens=max_cache, max_new_tokens=8,
                            speak_threshold=1.0, dst_threshold=1.0)
        warm = min(8, n_frames)
        streamer.run(synthetic_stream(warm), frames[:warm])  # warm-up: allocator, kernels
        if kind == "none":
            # Streaming every frame without a cache costs the sum of all re-encodings (minutes at
            # frame 200); the cost at frame k is that of one re-encoding of k frames, timed directly.
            at = {k: reprefill_latency(streamer, example, frames, k) for k in frames_at}
            end_tokens = None
        else:
            events = streamer.run(example, frames)
            frame_s = [e.frame_s for e in events]
            at = {k: latency_at(frame_s, k) for k in frames_at}
            end_tokens = events[-1].cache_tokens
        rows[kind] = {"latency_ms": {str(k): round(v * 1000, 3) for k, v in at.items()},
                      "ratio": round(at[frames_at[-1]] / at[frames_at[0]], 3), "cache_tokens_at_end": end_tokens}
    return {
        "tokens_per_frame": len(lay.frame), "image_tokens_per_frame": int(processor.image_seq_len),
        "system_tokens": system, "n_frames": n_frames, "frames_at": frames_at, "max_cache_tokens": max_cache,
        "threads": threads, "model": "tiny-smolvlm2 (random weights, 64 px frames)", "caches": rows,
        "host": host_info(),
    }


def markdown(result: dict) -> str:
    first, last = result["frames_at"][0], result["frames_at"][-1]
    lines = [
        "Per-frame latency of `vt-infer stream` (append one frame, run the heads; median of 11 frames, "
        f"or of 3 re-encodings without a cache) on "
        f"{result['model']}, {result['tokens_per_frame']} tokens per frame, {result['threads']} threads.",
        "",
        "| cache | " + " | ".join(f"frame {k} (ms)" for k in result["frames_at"]) + f" | frame {last} / frame {first} |",
        "|---|" + "---|" * (len(result["frames_at"]) + 1),
    ]
    for kind, row in result["caches"].items():
        lines.append(f"| {kind} | " + " | ".join(f"{row['latency_ms'][str(k)]:.1f}" for k in result["frames_at"])
                     + f" | {row['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames-at", default="20,200", help="frame indices to compare (first, ..., last)")
    parser.add_argument("--caches", default="static,dynamic,none", help="which caches to run")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=Path("results/bench/stream"))
    args = parser.parse_args(argv)
    frames_at = [int(k) for k in args.frames_at.split(",")]
    if len(frames_at) < 2 or frames_at != sorted(frames_at) or frames_at[0] < 2:
        parser.error("--frames-at: at least two increasing frame indices, the first >= 2")
    result = run_bench(frames_at[-1] + 3, frames_at, args.caches.split(","), args.threads)
    write_json(args.out / "bench.json", result)
    atomic_write_text(args.out / "bench.md", markdown(result))
    print(markdown(result))
    print(json.dumps({k: v["ratio"] for k, v in result["caches"].items()}))


if __name__ == "__main__":
    main()
