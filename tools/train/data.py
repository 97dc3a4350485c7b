"""Training data: examples with their frames decoded once, and the video collator."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core import models
from videotune.core.image import is_image_path, load_image
from videotune.core.io import read_jsonl
from videotune.core.progress import Progress
from videotune.core.schemas import Example
from videotune.core.video import FrameCache, example_sampling, with_sampled_frames


@dataclass
class DecodedExample:
    example: Example
    frames: np.ndarray  # uint8 [N, H, W, 3]
    timestamps_s: list[float]
    duration_s: float
    image: np.ndarray | None = None  # uint8 [H, W, 3] for a still-image example (frames holds it as [1, H, W, 3])


def load_decoded(
    examples_path: Path, data_root: Path, frame_size: int, cache: FrameCache, n_frames: int | None = None,
    letterbox: int | None = None,
) -> list[DecodedExample]:
    """Read examples and decode each clip's frames once (through the on-disk cache).

    Frames are decoded straight to the model's input size, so epochs and sweeps reuse them
    and the processor never resizes full frames at every step. Where `n_frames` changes a clip's frame
    count, its prompt's time sentence is restated for the frames kept (InputError where it cannot be).
    """
    examples = read_jsonl(examples_path, Example)
    decoded = []
    with Progress(f"decode {examples_path.name}", len(examples)) as progress:
        for example in examples:
            if example.frames is None and is_image_path(example.media):
                # a still image: read as is (or letterboxed to a square), no frame sampling or cache
                image = load_image(data_root / example.media, letterbox_size=letterbox)
                decoded.append(DecodedExample(example, image[None], [], 0.0, image=image))
                progress.advance()
                continue
            sampled = cache.get_or_sample(data_root / example.media, example_sampling(example, frame_size, n_frames))
            # the prompt states the frames the model gets (`n_frames` may change their count)
            example = with_sampled_frames(example, sampled)
            decoded.append(DecodedExample(example, sampled.frames, sampled.timestamps_s, sampled.duration_s))
            progress.advance()
    return decoded


def index_dataset(indices: range):
    """A datasets.Dataset of indices into the collator's decoded list (TRL requires a Dataset).

    Frames never go through Arrow: the collator looks them up by index.
    """
    from datasets import Dataset

    return Dataset.from_dict({"index": list(indices)})


class VideoCollator:
    """Turns a list of indices into model inputs with prompt tokens masked out of the loss."""

    def __init__(self, items: list[DecodedExample], processor: Any, family: models.Family, with_targets: bool = True,
                 weights: list[float] | None = None, video_max_pixels: int | None = None):
        self.items = items
        self.processor = processor
        self.family = family
        self.with_targets = with_targets
        # per-item loss weights (class imbalance): the batch carries them as `sample_weight`
        self.weights = weights
        self.video_max_pixels = video_max_pixels  # per-clip pixel budget (models.encode_batch)
        self.seconds = 0.0  # time spent building batches (the data time of the run records)

    def __call__(self, rows: list[dict[str, int]]) -> dict[str, Any]:
        import torch

        started = time.monotonic()
        batch = [self.items[r["index"]] for r in rows]
        user_texts = [b.example.messages[-2].content for b in batch]
        encoded = models.encode_batch(
            self.processor,
            self.family,
            user_texts,
            [b.frames for b in batch if b.image is None],
            [b.timestamps_s for b in batch if b.image is None],
            [b.duration_s for b in batch if b.image is None],
            targets=[b.example.target for b in batch] if self.with_targets else None,
            # image examples go in as images; a batch mixing them with videos is refused there
            images=[b.image for b in batch if b.image is not None] or None,
            video_max_pixels=self.video_max_pixels,
        )
        if self.weights is not None:
            encoded["sample_weight"] = torch.tensor([self.weights[r["index"]] for r in rows], dtype=torch.float32)
        self.seconds += time.monotonic() - started
        return encoded
