"""How much a model's vision tokens know about form errors: linear probes, beside the keypoints' ceiling.

    python -m videotune.train.probe --model models/tiny-smolvlm2,results/demo/pretrain/model \
        --train-examples data/gym/split/examples/train.jsonl --test-examples data/gym/split/examples/test.jsonl \
        --data-root data/gym/raw --out results/bench/probe

For each model, the projector's tokens of every clip's frames (exactly those its prompt states, as training
decodes them) are flattened and standardised, and one logistic regression per label (each error of the
taxonomy present or not; the exercise) is fitted on the training clips and scored on the test clips. The
same probe on the clips' keypoint sidecars at the same frame times (2D and 3D joints) is the ceiling: what a
tower that located every joint exactly would give. Labels enter the probes only, never a model.

A fine-tune cannot detect what the tokens do not carry: when the tokens' probe is near chance, the language
model learns the answers' prior instead (it names an error on every clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from rich.console import Console

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import atomic_write_text, read_jsonl, write_json
from videotune.core.keypoints import keypoints_path, read_keypoints
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Example
from videotune.core.taxonomy import EXERCISES
from videotune.core.video import FrameCache, default_cache_dir, example_sampling

console = Console(stderr=True)
app = make_app("Linear probes of form errors on a model's vision tokens and on the keypoints.")

CEILING = "keypoints (ceiling)"


class ProbeConfig(CommandConfig):
    """Linear probes of each error and the exercise on vision tokens (per model) and on the keypoint sidecars."""

    model: list[str] = Field(description="model directories (or names) whose projector tokens are probed, comma-separated")
    train_examples: Path = Field(description="examples JSONL the probes are fitted on")
    test_examples: Path = Field(description="examples JSONL the probes are scored on")
    data_root: Path = Field(description="folder the examples' media (and their keypoint sidecars) are under")
    out: Path = Field(description="output folder: probe.json, probe.md, run.json")
    inverse_regularization: float = Field(0.05, gt=0, description="logistic regression's C (smaller: stronger L2)")
    frame_cache_dir: Path | None = Field(None, description="decoded-frame cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")


def labels(examples: list[Example]) -> dict[str, np.ndarray]:
    """{label name: 0/1 per example}: each taxonomy error of the examples' exercises, and `exercise` (index)."""
    exercises = sorted({e.meta["label"] for e in examples})
    errors = sorted({name for ex in exercises for name in EXERCISES[ex].errors})
    found = {name: np.array([any(s["name"] == name for s in e.meta.get("errors", [])) for e in examples], dtype=int)
             for name in errors}
    found["exercise"] = np.array([exercises.index(e.meta["label"]) for e in examples])
    return found


def token_features(model_name: str, examples: list[Example], data_root: Path, cache: FrameCache,
                   batch_size: int = 32) -> np.ndarray:
    """(examples, tokens x width): each clip's projector tokens, flattened."""
    import torch

    from videotune.train.pretrain import clip_features

    ref = models.resolve(model_name)
    model, processor = models.load(ref)
    size = ref.family.frame_size(processor)
    rows = []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            sampled = [cache.get_or_sample(data_root / e.media, example_sampling(e, size))
                       for e in examples[start:start + batch_size]]
            inputs = ref.family.video_inputs([s.frames for s in sampled], [s.timestamps_s for s in sampled],
                                             [s.duration_s for s in sampled])
            batch = dict(processor.video_processor(**inputs, return_tensors="pt"))
            rows += [f.flatten().numpy() for f in clip_features(model, batch)]
    return np.stack(rows)


def keypoint_features(examples: list[Example], data_root: Path) -> np.ndarray:
    """(examples, frames x joints x values): the sidecars' joints at each example's stated frame times."""
    rows = []
    for e in examples:
        kp = read_keypoints(data_root / keypoints_path(e.media))
        step = float(np.median(np.diff(kp.times_s))) if len(kp.times_s) > 1 else 1.0
        rows.append(kp.at(e.frames.timestamps_s, tolerance_s=step).flatten())
    return np.stack(rows)


def probe(train_x: np.ndarray, train_y: dict[str, np.ndarray], test_x: np.ndarray, test_y: dict[str, np.ndarray],
          c: float) -> dict[str, float]:
    """Per error F1 (and their mean), and exercise accuracy, of logistic regressions on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = {}
    for name in train_y:
        fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(train_x, train_y[name])
        predicted = fitted.predict(test_x)
        if name == "exercise":
            scores["exercise_accuracy"] = float(accuracy_score(test_y[name], predicted))
        else:
            scores[f"error_f1/{name}"] = float(f1_score(test_y[name], predicted, zero_division=0))
    errors = [v for k, v in scores.items() if k.startswith("error_f1/")]
    scores["error_macro_f1"] = float(np.mean(errors))
    return scores


def markdown(results: dict[str, dict[str, float]]) -> str:
    columns = list(next(iter(results.values())))
    lines = ["| features | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(f"{scores[c]:.3f}" for c in columns) + " |" for name, scores in results.items()]
    return "\n".join(lines) + "\n"


def probe_command(config: ProbeConfig) -> None:
    manifest = RunManifest("train", "probe", config.model_dump(mode="json"), config.out)
    train = read_jsonl(config.train_examples, Example)
    test = read_jsonl(config.test_examples, Example)
    train_y, test_y = labels(train), labels(test)
    cache = FrameCache(config.frame_cache_dir or default_cache_dir())
    results: dict[str, dict[str, Any]] = {}
    for name in config.model:
        results[name] = probe(token_features(name, train, config.data_root, cache), train_y,
                              token_features(name, test, config.data_root, cache), test_y, config.inverse_regularization)
    # the ceiling: exact joints, nothing to regularise away
    results[CEILING] = probe(keypoint_features(train, config.data_root), train_y,
                             keypoint_features(test, config.data_root), test_y, 1.0)
    write_json(config.out / "probe.json", results)
    table = markdown(results)
    atomic_write_text(config.out / "probe.md", table)
    manifest.write(outputs={"probe": "probe.json", "table": "probe.md"}, summary=results)
    console.print(table)


add_command(app, "probe", ProbeConfig, probe_command, example=(
    "python -m videotune.train.probe --model models/tiny-smolvlm2,results/demo/pretrain/model "
    "--train-examples data/gym/split/examples/train.jsonl --test-examples data/gym/split/examples/test.jsonl "
    "--data-root data/gym/raw --out results/bench/probe"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
