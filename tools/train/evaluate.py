"""Greedy-generation accuracy of a trained model on question/answer examples (curriculum evaluation).

vt-train may not import vt-infer, so this is a small evaluator of its own: the model and the
batches come from core.models, the generation from transformers' `generate` (greedy). It scores
the way `vt-analyze metrics --task vqa` does, and writes predictions.jsonl in the artifact
format, so vt-analyze can score the same file again with confidence intervals:

- exact: the answer equals the reference after stripping surrounding whitespace;
- normalized: equal after `normalize_answer` (NFKC, case folding, punctuation removed except a
  "." between digits, number words zero..ten as digits, articles a/an/the dropped, whitespace
  collapsed: the VQA evaluation's normal form).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videotune.core import models
from videotune.core.answers import UNSTAGED, normalize_answer, stage_key
from videotune.core.progress import Progress
from videotune.core.schemas import Example, Prediction


def stage_of(example: Example) -> str:
    """The curriculum stage an example belongs to (meta.stage), one token; "unstaged" when none."""
    return stage_key(example.meta.get("stage") or "")


@dataclass
class Accuracy:
    n: int
    exact: float
    normalized: float

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "exact": round(self.exact, 6), "normalized": round(self.normalized, 6)}


def score(predictions: list[Prediction], stages: list[str]) -> dict[str, Any]:
    """Exact and normalized accuracy per stage (in `stages` order), pooled over all ("overall") and
    the unweighted mean of the stages ("macro"), and the accuracy of always giving a stage's most
    frequent reference ("baseline_majority"). Failed predictions count as wrong."""
    hits: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    references: dict[str, Counter[str]] = defaultdict(Counter)
    for p in predictions:
        references[str(p.meta.get("stage_key", UNSTAGED))][normalize_answer(p.reference)] += 1
        ok = p.status == "ok"
        exact = ok and p.prediction.strip() == p.reference.strip()
        normalized = ok and normalize_answer(p.prediction) == normalize_answer(p.reference)
        hits[str(p.meta.get("stage_key", UNSTAGED))].append((exact, normalized))

    def accuracy(rows: list[tuple[bool, bool]]) -> Accuracy:
        n = len(rows)
        return Accuracy(n, sum(e for e, _ in rows) / n if n else 0.0, sum(m for _, m in rows) / n if n else 0.0)

    per_stage = {stage: accuracy(hits.get(stage, [])) for stage in stages}
    pooled = accuracy([row for rows in hits.values() for row in rows])
    present = [a for a in per_stage.values() if a.n]
    macro = Accuracy(len(present), sum(a.exact for a in present) / len(present) if present else 0.0,
                     sum(a.normalized for a in present) / len(present) if present else 0.0)
    # the constant answer baseline: each stage's most frequent (normalized) reference, as vt-analyze defines it
    majority = {s: max(references[s].values()) / sum(references[s].values()) for s in stages if references.get(s)}
    majority_hits = sum(max(references[s].values()) for s in stages if references.get(s))
    majority["overall"] = majority_hits / pooled.n if pooled.n else 0.0
    return {"stages": {s: a.as_dict() for s, a in per_stage.items()}, "overall": pooled.as_dict(), "macro": macro.as_dict(),
            "baseline_majority": {k: round(v, 6) for k, v in majority.items()}}


def generate_answers(
    model_dir: str | Path,
    examples_path: Path,
    data_root: Path,
    *,
    batch_size: int = 16,
    max_new_tokens: int = 16,
    letterbox: int | None = None,
    frames: int | None = None,
    cache_dir: Path | None = None,
    dtype: str = "float32",
    device: str = "auto",
    description: str = "evaluate",
) -> list[Prediction]:
    """Greedy answers of the model in `model_dir` to every example of `examples_path`, as Prediction records.

    Image and video examples are batched apart (a model call takes one media kind); each
    prediction's meta carries the example's meta plus `stage_key` (see `stage_of`).
    """
    import torch

    from videotune.core.video import FrameCache, default_cache_dir
    from videotune.train.data import DecodedExample, load_decoded

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    ref = models.resolve(str(model_dir))
    model, processor = models.load(ref, dtype=dtype, device=device)
    model.eval()
    stop_ids = models.stop_token_ids(processor.tokenizer, ref.family)
    cache = FrameCache(cache_dir or default_cache_dir())
    items: list[DecodedExample] = load_decoded(examples_path, data_root, ref.family.frame_size(processor), cache, frames,
                                               letterbox=letterbox)
    kinds = ([i for i in items if i.image is None], [i for i in items if i.image is not None])
    batches = [kind[s : s + batch_size] for kind in kinds for s in range(0, len(kind), batch_size)]
    predictions: list[Prediction] = []
    with Progress(description, len(items)) as progress:
        for batch in batches:
            texts = [b.example.messages[-2].content for b in batch]
            started = time.perf_counter()
            if batch[0].image is not None:
                inputs = models.encode_batch(processor, ref.family, texts, [], [], [], padding_side="left",
                                             images=[b.image for b in batch])
            else:
                inputs = models.encode_batch(processor, ref.family, texts, [b.frames for b in batch],
                                             [b.timestamps_s for b in batch], [b.duration_s for b in batch],
                                             padding_side="left")
            answers = models.generate(model, processor.tokenizer, inputs, max_new_tokens=max_new_tokens, stop_ids=stop_ids)
            elapsed = time.perf_counter() - started
            for row, item in enumerate(batch):
                example = item.example
                predictions.append(Prediction(
                    id=example.id, model=str(model_dir), prompt=texts[row], prediction=answers.texts[row],
                    reference=example.target, total_s=round(elapsed, 6), new_tokens=answers.new_tokens[row], status="ok",
                    meta={**example.meta, "media": example.media, "stage_key": stage_of(example)},
                ))
            progress.advance(len(batch))
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return predictions
