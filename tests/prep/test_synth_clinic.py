"""vt-prep synth clinic: learnable findings, three stages, deterministic bytes, image-level VQA examples."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from videotune.core.image import load_image
from videotune.core.io import read_jsonl, read_samples, write_samples
from videotune.core.schemas import Example, Sample
from videotune.prep.build import BuildOptions, build_examples
from videotune.prep.split import split_examples
from videotune.prep.synth_clinic import QUESTIONS, STAGES, ClinicSynthConfig, plan_scans, render_scan, synth_clinic

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    out = tmp_path_factory.mktemp("clinic")
    samples = synth_clinic(out, ClinicSynthConfig(n_images=12, seed=5))
    write_samples(out / "samples.parquet", samples)
    return out, samples


def test_six_questions_per_image_two_per_stage(clinic):
    out, samples = clinic
    assert len(samples) == 12 * len(QUESTIONS)
    by_image = Counter(s.group for s in samples)
    assert set(by_image.values()) == {6}
    assert Counter(s.stage for s in samples) == {stage: 24 for stage in STAGES}
    for s in samples:
        assert s.media_kind == "image" and s.task == "vqa" and s.media == f"images/{s.group}.png"
        assert (out / s.media).is_file()
    assert load_image(out / samples[0].media).shape == (72, 96, 3)


def test_answers_follow_the_pixels():
    """The findings the answers state are where the pixels say they are."""
    config = ClinicSynthConfig(n_images=18, seed=1)
    for plan in plan_scans(config):
        pixels = render_scan(config, plan).astype(float)
        assert len(plan.lesions) == plan.n_lesions
        for lesion in plan.lesions:
            value = pixels[round(lesion.cy), round(lesion.cx)]
            # a lesion centre differs from the body around it: dark for a cyst, bright for a calcification
            if plan.kind == "calcification" and not plan.degraded:
                assert value > 150, (plan, lesion)
            if plan.kind == "cyst" and not plan.degraded:
                assert value < 80, (plan, lesion)
            upper, left = lesion.cy < pixels.shape[0] / 2, lesion.cx < pixels.shape[1] / 2
            assert ("upper" in lesion.quadrant) == upper and ("left" in lesion.quadrant) == left
        if plan.lesions:
            largest = [lesion for lesion in plan.lesions if lesion.largest]
            assert len(largest) == 1 and all(largest[0].radius > o.radius for o in plan.lesions if not o.largest)
        # degraded scans are noisier in the dark field
        noise = pixels[:4, :].std()
        assert (noise > 8) == plan.degraded, (plan.index, noise)


def test_same_seed_same_bytes(tmp_path):
    a = synth_clinic(tmp_path / "a", ClinicSynthConfig(n_images=4, seed=2))
    b = synth_clinic(tmp_path / "b", ClinicSynthConfig(n_images=4, seed=2))
    synth_clinic(tmp_path / "c", ClinicSynthConfig(n_images=4, seed=3))
    assert [s.model_dump() for s in a] == [s.model_dump() for s in b]
    for name in sorted(p.name for p in (tmp_path / "a" / "images").iterdir()):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()
    assert any((tmp_path / "a" / "images" / n).read_bytes() != (tmp_path / "c" / "images" / n).read_bytes()
               for n in os.listdir(tmp_path / "a" / "images"))


def test_build_vqa_examples_and_image_level_split(clinic):
    out, samples = clinic
    examples, rejects = build_examples(samples, out, BuildOptions("vqa", "plain", 8, 1, 0))
    assert not rejects and len(examples) == len(samples)
    first = examples[0]
    assert first.frames is None and first.messages[0].content == samples[0].question
    assert first.target == samples[0].answer and first.meta["stage"] == samples[0].stage
    assert first.meta["task"] == "vqa" and first.meta["group"] == samples[0].group
    splits = split_examples(examples, (0.5, 0.25, 0.25), seed=0)
    images = {name: {e.meta["group"] for e in items} for name, items in splits.items()}
    assert not (images["train"] & images["val"]) and not (images["train"] & images["test"])
    assert not (images["val"] & images["test"])
    # every image keeps all six of its questions in its split
    for items in splits.values():
        assert set(Counter(e.meta["group"] for e in items).values()) <= {6}


def test_build_rejects_unreadable_image(clinic, tmp_path):
    out, samples = clinic
    bad = samples[0].model_copy(update={"media": "images/missing.png"})
    examples, rejects = build_examples([bad, samples[1]], out, BuildOptions("vqa", "plain", 8, 1, 0))
    assert len(examples) == 1 and len(rejects) == 1
    assert rejects[0].record == bad.id and "not found" in rejects[0].reason
    empty = Sample(**{**samples[2].model_dump(), "answer": ""})
    _, rejects = build_examples([empty], out, BuildOptions("vqa", "plain", 8, 1, 0))
    assert "question and an answer" in rejects[0].reason


def test_cli_synth_build_split(tmp_path):
    raw, built, split = tmp_path / "raw", tmp_path / "built", tmp_path / "split"
    run = lambda *args: subprocess.run([str(BIN / "vt-prep"), *args], check=True, capture_output=True, env=ENV)  # noqa: E731
    run("synth", "clinic", "--out", str(raw), "--n-images", "8", "--seed", "0")
    assert len(read_samples(raw / "samples.parquet")) == 48
    assert json.loads((raw / "run.json").read_text())["command"] == "synth clinic"
    run("build", "--samples", str(raw / "samples.parquet"), "--out", str(built), "--task", "vqa", "--strict")
    run("split", "--examples", str(built / "examples" / "all.jsonl"), "--out", str(split), "--ratios", "0.5,0.25,0.25")
    train = read_jsonl(split / "examples" / "train.jsonl", Example)
    assert train and all(e.frames is None and e.meta["split"] == "train" for e in train)
