import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from videotune.core import models
from videotune.core import stream as fmt
from videotune.core.io import read_jsonl
from videotune.core.schemas import StreamExample
from videotune.train.dst import (
    IGNORE,
    StreamCollator,
    best_threshold,
    build_window,
    corpus_texts,
    focal_loss,
    load_videos,
    windows,
)

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def stream_data(tmp_path_factory):
    """Three synthetic assembly videos as stream examples, and a tiny model whose tokenizer knows their text."""
    root = tmp_path_factory.mktemp("dst")
    for cmd in (["vt-prep", "synth", "assembly", "--out", str(root / "raw"), "--n-videos", "3", "--seed", "2"],
                ["vt-prep", "dst", "--annotations", str(root / "raw" / "annotations.json"), "--out", str(root),
                 "--ratios", "1,1,1"]):
        subprocess.run([str(BIN / cmd[0]), *cmd[1:]], check=True, capture_output=True, env=ENV)
    texts = corpus_texts(root / "stream" / "train.jsonl")
    models.build_tiny("smolvlm2", root / "tiny", texts, seed=0,
                      spec=models.TinySpec(frame_size=32, text_hidden=32, vision_hidden=32, vocab_size=400))
    return root


def test_focal_loss_matches_a_hand_computation():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])  # the last frame was subsampled away
    alpha, gamma = 0.25, 2.0
    expected = 0.0
    for x, y in zip([2.0, -1.0, 0.5], [1, 0, 1]):
        p = 1 / (1 + math.exp(-x))
        p_t = p if y else 1 - p
        alpha_t = alpha if y else 1 - alpha
        expected += alpha_t * (1 - p_t) ** gamma * -math.log(p_t)
    expected /= 3
    assert focal_loss(logits, targets, mask, alpha, gamma).item() == pytest.approx(expected, rel=1e-6)
    # gamma 0 and no alpha: plain binary cross-entropy
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:3], targets[:3])
    assert focal_loss(logits, targets, mask, -1, 0.0).item() == pytest.approx(bce.item(), rel=1e-6)
    assert focal_loss(logits, targets, torch.zeros(4), alpha, gamma).item() == 0.0


def test_window_layout(stream_data):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(stream_data / "tiny")
    lay = fmt.layout(processor)
    example = read_jsonl(stream_data / "stream" / "train.jsonl", StreamExample)[0]
    update_at = next(i for i, f in enumerate(example.frames) if f.dst_update)
    start = update_at - 1
    item = build_window(example, start, len(example.frames), processor.tokenizer, lay)
    ids = item["input_ids"]
    # the system prompt carries the state at the window's start
    assert fmt.state_json(example.frames[start - 1].dst) in processor.tokenizer.decode(ids[:ids.index(lay.frame[0])])
    # each decision position is the last token before the frame's outputs: the frame's closing token, or the user turn's end
    for position, frame in zip(item["positions"], example.frames[start:]):
        assert ids[position] in (lay.frame[-1], lay.end)
        assert ids[position] != lay.end or frame.user
    assert len(item["positions"]) == len(example.frames) - start
    assert item["update"][1] and item["update"] == [f.dst_update for f in example.frames[start:]]
    # LM labels: exactly the update JSON and the responses (each with its end token), nothing else
    dst_tokens = [t for t in item["dst_labels"] if t != IGNORE]
    resp_tokens = [t for t in item["resp_labels"] if t != IGNORE]
    expected_dst = [t for f in example.frames[start:] if f.dst_update
                    for t in fmt.target_ids(processor.tokenizer, fmt.state_json(f.dst_delta), lay)]
    expected_resp = [t for f in example.frames[start:] if f.speak
                     for t in fmt.target_ids(processor.tokenizer, f.response, lay)]
    assert dst_tokens == expected_dst and resp_tokens == expected_resp
    assert not any(a != IGNORE and b != IGNORE for a, b in zip(item["dst_labels"], item["resp_labels"]))
    assert ids.count(lay.image_token) == processor.image_seq_len * (len(example.frames) - start)


def test_negative_subsampling_drops_only_negative_frames(stream_data):
    from transformers import AutoProcessor

    from videotune.core.video import FrameCache

    processor = AutoProcessor.from_pretrained(stream_data / "tiny")
    videos = load_videos(stream_data / "stream" / "train.jsonl", stream_data / "raw", 32,
                         FrameCache(stream_data / "cache"))
    spans = windows(videos, 1000)
    rows = [{"index": i} for i in range(len(spans))]
    full = StreamCollator(videos, spans, processor, negative_keep=1.0, seed=0)(rows)
    half = StreamCollator(videos, spans, processor, negative_keep=0.3, seed=0)(rows)
    frames = full["head_mask"].bool()  # every real frame (padding excluded)
    positive = (full["speak_targets"] + full["update_targets"]).bool() & frames
    negative = frames & ~positive
    kept = half["head_mask"].bool()
    assert torch.equal(kept & positive, positive)  # every positive frame stays
    assert not (kept & ~frames).any()  # padding never enters
    share = (kept & negative).sum().item() / negative.sum().item()
    assert 0.15 < share < 0.45  # about 30% of the negatives kept (drawn from the seed)
    again = StreamCollator(videos, spans, processor, negative_keep=0.3, seed=0)(rows)
    assert torch.equal(again["head_mask"], half["head_mask"])


def test_windows_and_thresholds():
    class V:
        def __init__(self, n):
            self.frames = [0] * n

    assert windows([V(5), V(2)], 2) == [(0, 0, 2), (0, 2, 4), (0, 4, 5), (1, 0, 2)]
    import numpy as np

    probs = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    targets = np.array([True, True, True, False, False])
    threshold, f1 = best_threshold(probs, targets)
    assert 0.2 <= threshold < 0.3 and f1 == 1.0


def test_heads_round_trip(tmp_path):
    heads = fmt.make_heads(8)
    fmt.save_heads(tmp_path, heads, fmt.HeadsConfig(hidden_size=8, speak_threshold=0.3))
    loaded, config = fmt.load_heads(tmp_path)
    x = torch.randn(3, 8)
    for a, b in zip(heads(x), loaded(x)):
        assert torch.equal(a, b) and a.shape == (3,)
    assert config.speak_threshold == 0.3


def test_cli_trains_heads_and_logs_four_losses(stream_data, tmp_path):
    out = tmp_path / "train"
    result = subprocess.run(
        [str(BIN / "vt-train"), "dst", "--model", str(stream_data / "tiny"), "--train-examples",
         str(stream_data / "stream" / "train.jsonl"), "--val-examples", str(stream_data / "stream" / "val.jsonl"),
         "--data-root", str(stream_data / "raw"), "--out", str(out), "--max-steps", "3", "--batch-size", "1",
         "--logging-steps", "1", "--max-frames", "24", "--negative-keep", "0.5"],
        capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    model_dir = out / "model"
    assert (model_dir / "heads.safetensors").is_file() and (model_dir / "config.json").is_file()
    heads_config = json.loads((model_dir / "dst_heads.json").read_text())
    assert heads_config["hidden_size"] == 32 and heads_config["max_frames"] == 24
    history = json.loads((out / "loss_history.json").read_text())
    first = history["train"][0]
    for key in ("loss_speak", "loss_dst_update", "loss_dst_text", "loss_response",
                "speak_positive_share", "dst_update_positive_share"):
        assert key in first
    assert 0 < first["speak_positive_share"] < 1
    # the four parts, weighted (1, 1, 0.5, 0.5 by default), add up to the total
    weighted = first["loss_speak"] + first["loss_dst_update"] + 0.5 * (first["loss_dst_text"] + first["loss_response"])
    assert weighted == pytest.approx(first["loss"], rel=1e-3)
    assert history["val"] and "loss_response" in history["val"][0]
    # the saved model loads without the heads in its weights
    model, _ = models.load(models.resolve(str(model_dir)))
    assert not any("dst_heads" in name for name, _ in model.named_parameters())
    run = json.loads((out / "run.json").read_text())
    assert set(run["summary"]["thresholds"]) == {"speak", "dst_update"}


def test_lora_mode_trains(stream_data, tmp_path):
    out = tmp_path / "lora"
    result = subprocess.run(
        [str(BIN / "vt-train"), "dst", "--model", str(stream_data / "tiny"), "--train-examples",
         str(stream_data / "stream" / "train.jsonl"), "--data-root", str(stream_data / "raw"), "--out", str(out),
         "--max-steps", "1", "--batch-size", "1", "--mode", "lora", "--max-frames", "16"],
        capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "model" / "heads.safetensors").is_file()
    assert not any(p.name.startswith("adapter") for p in (out / "model").iterdir())
