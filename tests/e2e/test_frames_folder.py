"""A clip given as a folder of frames (PNG with timestamps.txt) builds, trains and infers exactly as the
lossless video it was extracted from: the same prompts, the same loss curve, the same weights, the same answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from videotune.core.io import read_jsonl, write_samples
from videotune.core.schemas import ErrorSpan, Example, Sample
from videotune.core.video import SamplingSpec, frame_times, sample_frames

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FPS = 6  # frames per second of the test clips


def lossless_clip(path: Path, seed: int, n_frames: int = 18) -> Path:
    """A moving square over noise, stored exactly (PNG frames in QuickTime)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for k in range(n_frames):
            frame = background.copy()
            frame[10:30, 3 * k : 3 * k + 20] = (250, 40 * seed % 256, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def extract(clip: Path, folder: Path) -> Path:
    """Every decoded frame as PNG, with the clip's exact frame times."""
    info, times = frame_times(clip)
    every = sample_frames(clip, SamplingSpec(n_frames=info.n_frames))
    folder.mkdir(parents=True)
    for k, frame in enumerate(every.frames):
        Image.fromarray(frame).save(folder / f"{k}.png")
    (folder / "timestamps.txt").write_text("\n".join(repr(t) for t in times) + "\n")
    return folder


def run(*args: object) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same 8 samples twice: media as lossless videos, and as their frames folders; built, split alike."""
    root = tmp_path_factory.mktemp("frames-folder")
    video_samples, folder_samples = [], []
    for k in range(8):
        clip = lossless_clip(root / "videos" / f"c{k}.mov", seed=k)
        extract(clip, root / "frames" / f"c{k}")
        errors = [ErrorSpan(name="knees_inward", start_s=0.5, end_s=2.0)] if k % 2 else []
        sample = Sample(id=f"c{k}", dataset="pair", media=f"videos/c{k}.mov", media_kind="video", duration_s=3.0, fps=FPS,
                        split="train" if k < 6 else "test", group=f"c{k}", task="aqa", label="squat", errors=errors)
        video_samples.append(sample)
        folder_samples.append(sample.model_copy(update={"media": f"frames/c{k}"}))
    for name, samples in (("video", video_samples), ("folder", folder_samples)):
        write_samples(root / name / "samples.parquet", samples)
        run(BIN / "vt-prep", "build", "--samples", root / name / "samples.parquet", "--data-root", root, "--out",
            root / name / "built", "--variant", "temporal", "--frames", "4", "--strict")
        run(BIN / "vt-prep", "split", "--examples", root / name / "built" / "examples" / "all.jsonl", "--out", root / name)
    run(BIN / "vt-train", "tiny-model", "--corpus", root / "video" / "examples" / "train.jsonl", "--out", root / "tiny",
        "--vocab-size", "300", "--text-hidden", "32", "--text-layers", "1", "--vision-hidden", "32", "--vision-layers", "1",
        "--frame-size", "32", "--seed", "0")
    return root


def test_the_examples_are_the_same_but_for_the_media(pair):
    for split in ("train", "test"):
        videos = read_jsonl(pair / "video" / "examples" / f"{split}.jsonl", Example)
        folders = read_jsonl(pair / "folder" / "examples" / f"{split}.jsonl", Example)
        assert [e.model_dump(exclude={"media"}) for e in videos] == [e.model_dump(exclude={"media"}) for e in folders]
        assert all(e.media.startswith("frames/") for e in folders)


def test_training_and_inference_match_the_video(pair):
    for name in ("video", "folder"):
        run(BIN / "vt-train", "sft", "--model", pair / "tiny", "--train-examples", pair / name / "examples" / "train.jsonl",
            "--data-root", pair, "--out", pair / f"train-{name}", "--max-steps", "4", "--batch-size", "3", "--lr", "0.01",
            "--logging-steps", "1", "--seed", "0", "--frame-cache-dir", pair / f"cache-{name}")
        run(BIN / "vt-infer", "generate", "--model", pair / "train-video" / "model", "--examples",
            pair / name / "examples" / "test.jsonl", "--data-root", pair, "--out", pair / f"infer-{name}",
            "--max-new-tokens", "12", "--frame-cache-dir", pair / f"cache-{name}")
    curves = [json.loads((pair / f"train-{name}" / "loss_history.json").read_text())["train"] for name in ("video", "folder")]
    assert len(curves[0]) == 4 and curves[0] == curves[1]  # the same frames in every batch: the same losses
    weights = [load_file(next((pair / f"train-{name}" / "model").glob("*.safetensors"))) for name in ("video", "folder")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    answers = [[(p["id"], p["prediction"], p["status"]) for p in map(json.loads, (pair / f"infer-{name}" / "predictions.jsonl")
                                                                    .read_text().splitlines())] for name in ("video", "folder")]
    assert len(answers[0]) == 2 and answers[0] == answers[1] and all(status == "ok" for *_, status in answers[0])
