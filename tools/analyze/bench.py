"""Benchmark: every text metric of the feedback task on N synthetic prediction/reference pairs.

    python -m videotune.analyze.bench --pairs 10000 --target-s 120     (make bench-analyze)

The pairs imitate QVED's descriptive feedback labels ("step-ups - knees caving; keep knees
over toes"): references are drawn from exercise x fault x cue lists, predictions are the
reference with words dropped, replaced or the fault swapped, a few with another exercise and
about 2% empty, so that nearly every text is distinct (no help from de-duplication). The wall
time covers what `vt-analyze metrics --task feedback` does after reading its file: loading
the models once, every text metric, exercise accuracy, and 1000 bootstrap resamples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

EXERCISES = ("squats", "step-ups", "lunges", "push-ups", "deadlifts", "glute bridges", "side-lying leg raises",
             "bird-dogs", "sit-to-stand", "calf raises", "wall slides", "single-leg balance", "hip hinges",
             "mini-squats", "heel slides", "clamshells", "straight-leg raises", "shoulder presses", "rows", "planks")
FAULTS = ("knees caving", "knees drifting past toes", "heels lifting", "back rounding", "hips sagging",
          "trunk leaning forward", "shoulders shrugging", "elbows flaring", "pelvis tilting", "incomplete range of motion",
          "moving too fast", "holding breath", "weight shifted to one side", "neck craning", "feet too narrow",
          "arching the lower back", "locking the knees", "hips rising first", "losing balance", "good form throughout")
CUES = ("keep knees over toes", "sit the hips back first", "brace the core before each rep", "keep the chest proud",
        "drive through the heels", "slow the lowering phase", "keep the spine neutral", "squeeze the glutes at the top",
        "exhale on the effort", "keep shoulders down and back", "tuck the elbows slightly", "widen the stance",
        "keep the pelvis level", "look straight ahead", "control the range", "pause briefly at the bottom",
        "keep weight over mid-foot", "soften the knees", "keep the movement smooth", "no change needed")
FILLER = ("slightly", "a little", "more", "throughout the set", "on every rep", "especially at the end", "please")


def synthetic_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(predictions, references, labels) in the QVED label style; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    preds, refs, labels = [], [], []
    for _ in range(n):
        ex, fault, cue = (EXERCISES[rng.integers(len(EXERCISES))], FAULTS[rng.integers(len(FAULTS))],
                          CUES[rng.integers(len(CUES))])
        extra = f" {FILLER[rng.integers(len(FILLER))]}" if rng.random() < 0.5 else ""
        ref = f"{ex} - {fault}; {cue}{extra}"
        roll = rng.random()
        if roll < 0.02:
            pred = ""
        else:
            p_ex = EXERCISES[rng.integers(len(EXERCISES))] if roll < 0.15 else ex
            p_fault = FAULTS[rng.integers(len(FAULTS))] if rng.random() < 0.35 else fault
            p_cue = CUES[rng.integers(len(CUES))] if rng.random() < 0.35 else cue
            words = f"{p_fault}; {p_cue}".split()
            keep = [w for w in words if rng.random() > 0.12] or words[:1]
            if rng.random() < 0.3:
                keep.insert(int(rng.integers(len(keep) + 1)), FILLER[rng.integers(len(FILLER))])
            pred = f"{p_ex} - {' '.join(keep)}"
        preds.append(pred)
        refs.append(ref)
        labels.append(ref)
    return preds, refs, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--target-s", type=float, default=120.0)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=str, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    from videotune.core.schemas import Prediction

    preds, refs, labels = synthetic_pairs(args.pairs, args.seed)
    predictions = [Prediction(id=str(i), model="bench", prompt="", prediction=p, reference=r, status="ok",
                              meta={"label": lab, "task": "feedback"}) for i, (p, r, lab) in enumerate(zip(preds, refs, labels))]
    texts = sorted(set(preds) | set(refs))
    words = np.mean([len(t.split()) for t in preds + refs])

    start = time.perf_counter()
    import torch

    from videotune.analyze.feedback import feedback_scores
    from videotune.analyze.text import load_text_models

    models = load_text_models(device="cpu")
    loaded = time.perf_counter()
    scored = feedback_scores(predictions, models, n_bootstrap=args.n_bootstrap, seed=args.seed, batch_size=args.batch_size)
    wall = time.perf_counter() - start
    timing = scored.metrics.meta["text_metrics"]["timing_s"]
    result = {
        "pairs": args.pairs,
        "distinct_texts": len(texts),
        "mean_words_per_text": round(float(words), 1),
        "wall_s": round(wall, 1),
        "target_s": args.target_s,
        "ratio_to_target": round(wall / args.target_s, 2),
        "model_load_s": round(loaded - start, 1),
        "stages_s": timing,
        "bootstrap_and_rest_s": round(wall - (loaded - start) - sum(timing.values()), 1),
        "metrics": {k: round(v, 4) for k, v in scored.metrics.metrics.items() if v is not None},
        "absent": scored.metrics.meta.get("absent_metrics", {}),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    verdict = "within" if wall <= args.target_s else "OVER"
    print(f"vt-analyze text metrics: {args.pairs} pairs in {wall:.1f} s; target {args.target_s:.0f} s; "
          f"ratio {wall / args.target_s:.2f} ({verdict} target)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
