"""A tiny model and conversation examples over the gym_raw clips, shared by the infer tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def gym_examples(gym_raw, tmp_path_factory):
    """examples/all.jsonl built from the gym_raw clips (4 frames each)."""
    out = tmp_path_factory.mktemp("infer_examples")
    subprocess.run([str(BIN / "vt-prep"), "build", "--samples", str(gym_raw / "samples.parquet"), "--out", str(out),
                    "--variant", "temporal", "--frames", "4"], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out / "examples" / "all.jsonl"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from videotune.core import models

    corpus = ["the knees move inward during the squat", "elbows flare in the overhead press", "no error"] * 20
    out = tmp_path_factory.mktemp("infer_tiny") / "model"
    models.build_tiny("smolvlm2", out, corpus, seed=0,
                      spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400))
    return out
