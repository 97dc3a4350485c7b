import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videotune.core import models
from videotune.core import stream as fmt
from videotune.core.schemas import DstNode, StreamExample, StreamFrame
from videotune.infer.stream import Segment, Streamer, StreamState

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CORPUS = ['{"S1": "in_progress"}', '{"S1": "completed", "S2": "in_progress"}', "Now attach the red block.",
          "Well done.", "System: Goal: Assemble the cart. Steps: S1: Attach the red block. S2: Attach the wheel."] * 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random model with random heads saved beside it (as vt-train dst writes them)."""
    out = tmp_path_factory.mktemp("stream") / "model"
    models.build_tiny("smolvlm2", out, CORPUS, seed=0,
                      spec=models.TinySpec(frame_size=32, text_hidden=32, vision_hidden=32, vocab_size=400))
    torch.manual_seed(0)
    fmt.save_heads(out, fmt.make_heads(32), fmt.HeadsConfig(hidden_size=32))
    return out


def _example(n_frames: int, user: bool = True) -> StreamExample:
    state = {"S1": "not_started", "S2": "not_started"}
    frames = [StreamFrame(t_s=i / 2, dst_update=False, dst=state, speak=False, user="hello" if user and i == 1 else "")
              for i in range(n_frames)]
    return StreamExample(id="v", video_id="v", media="v.mp4", fps=2.0, duration_s=n_frames / 2, goal="Assemble the cart",
                         nodes=[DstNode(id="S1", name="Attach the red block."), DstNode(id="S2", name="Attach the wheel.")],
                         frames=frames)


def _run(tiny, cache, n_frames=6, user=True, **kwargs):
    model, processor = models.load(models.resolve(str(tiny)))
    heads, _ = fmt.load_heads(tiny)
    streamer = Streamer(model.eval(), processor, heads, cache=cache, **kwargs)
    frames = np.random.default_rng(0).integers(0, 255, size=(n_frames, 32, 32, 3), dtype=np.uint8)
    return streamer.run(_example(n_frames, user), frames)


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.speak == y.speak and x.dst_update == y.dst_update
        assert x.speak_prob == pytest.approx(y.speak_prob, abs=1e-4)
        assert x.dst_update_prob == pytest.approx(y.dst_update_prob, abs=1e-4)
        assert (x.response, x.dst_text, x.dst, x.cache_tokens, x.cache_rebuilt) == (
            y.response, y.dst_text, y.dst, y.cache_tokens, y.cache_rebuilt)


def test_cache_reuse_gives_the_no_cache_outputs(tiny):
    # thresholds 0: both heads fire at every frame, so generated turns enter the cache too
    kwargs = {"max_cache_tokens": 1024, "max_new_tokens": 4, "speak_threshold": 0.0, "dst_threshold": 0.0}
    static = _run(tiny, "static", **kwargs)
    assert all(e.speak and e.dst_update for e in static)
    assert sum(e.new_tokens for e in static) > 0
    _same(static, _run(tiny, "none", **kwargs))
    _same(static, _run(tiny, "dynamic", **kwargs))
    # the cache grows by a frame's tokens plus what was generated at it
    assert all(b.cache_tokens > a.cache_tokens for a, b in zip(static, static[1:]))


def test_cache_limit_drops_the_middle(tiny):
    model, processor = models.load(models.resolve(str(tiny)))
    lay = fmt.layout(processor)
    reserve = 2 * (len(lay.dst_prefix) + len(lay.response_prefix) + 4 + 2)
    system = len(fmt.encode(processor.tokenizer, fmt.system_text("", "Assemble the cart", [
        ("S1", "Attach the red block."), ("S2", "Attach the wheel.")], {"S1": "not_started", "S2": "not_started"})))
    frame = len(lay.frame)
    limit = system + reserve + 4 * frame + 1  # room for four frames, then the policy must act
    kwargs = {"max_cache_tokens": limit, "keep_recent_tokens": 2 * frame, "max_new_tokens": 4,
              "speak_threshold": 1.0, "dst_threshold": 1.0}
    static = _run(tiny, "static", n_frames=12, user=False, **kwargs)
    rebuilt = [e.frame for e in static if e.cache_rebuilt]
    assert rebuilt and all(e.cache_tokens <= limit for e in static)
    first = static[rebuilt[0]]
    # after the rebuild: the system prompt, the two most recent frames kept, and the new frame
    assert first.cache_tokens == system + 3 * frame
    assert rebuilt[0] == 4 and len(rebuilt) >= 2
    _same(static, _run(tiny, "none", n_frames=12, user=False, **kwargs))


def test_a_rebuild_opens_with_the_state_before_the_first_kept_frame():
    streamer = Streamer.__new__(Streamer)  # the `none` cache: _rebuild only lays out tokens, no model call
    streamer.kind, streamer.keep_recent_tokens = "none", 5
    streamer._new_cache = lambda: None
    states = [{"S1": "not_started"}, {"S1": "in_progress"}, {"S1": "in_progress"}, {"S1": "completed"}]
    s = StreamState(state={"S1": "completed"},
                    segments=[Segment(ids=[10 + k] * 2, pixels=torch.zeros(1, 3, 2, 2), state_before=state)
                              for k, state in enumerate(states)])
    seen = []
    streamer._rebuild(s, lambda state: seen.append(state) or [1, 2])
    # budget 5 tokens keeps the last two frames; the prompt carries the state before frame 2, not the current one
    assert seen == [{"S1": "in_progress"}]
    assert s.ids == [1, 2, 12, 12, 13, 13] and len(s.segments) == 2 and s.pos == 6


def test_cli_streams_and_resumes(tiny, tmp_path):
    root = tmp_path / "data"
    for cmd in (["vt-prep", "synth", "assembly", "--out", str(root / "raw"), "--n-videos", "3", "--seed", "4"],
                ["vt-prep", "dst", "--annotations", str(root / "raw" / "annotations.json"), "--out", str(root),
                 "--ratios", "1,1,1"]):
        subprocess.run([str(BIN / cmd[0]), *cmd[1:]], check=True, capture_output=True, env=ENV)
    out = tmp_path / "stream"
    args = [str(BIN / "vt-infer"), "stream", "--model", str(tiny), "--examples", str(root / "stream" / "test.jsonl"),
            "--data-root", str(root / "raw"), "--out", str(out), "--max-new-tokens", "3"]
    result = subprocess.run(args, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (root / "stream" / "test.jsonl").read_text().splitlines()]
    assert len(events) == sum(len(r["frames"]) for r in reference)
    assert [e["frame"] for e in events] == list(range(len(events)))
    per_video = list((out / "events").glob("*.jsonl"))
    assert len(per_video) == 1
    stamp = per_video[0].stat().st_mtime_ns
    again = subprocess.run(args, capture_output=True, text=True, env=ENV)
    assert again.returncode == 0 and per_video[0].stat().st_mtime_ns == stamp  # done videos are skipped
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["n_streamed_this_run"] == 0 and run["config"]["cache"] == "static"
    no_heads = subprocess.run([*args[:4], str(root / "raw"), *args[5:]], capture_output=True, text=True, env=ENV)
    assert no_heads.returncode == 2


def test_latency_benchmark_runs_at_a_small_size():
    from videotune.infer.bench_stream import markdown, run_bench

    result = run_bench(7, [2, 4], ["static", "none"], threads=1)
    assert set(result["caches"]) == {"static", "none"} and result["tokens_per_frame"] == 19
    for row in result["caches"].values():
        assert row["ratio"] > 0 and set(row["latency_ms"]) == {"2", "4"}
    assert "| static |" in markdown(result)
