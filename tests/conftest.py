import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

# Tests never reach a model hub, and each uses its own frame cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _frame_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VT_CACHE_DIR", str(tmp_path_factory.mktemp("frame-cache")))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gym_raw(tmp_path_factory):
    """A handful of rendered gym clips with samples.parquet (shared by prep, train, infer and e2e tests)."""
    from videotune.core.io import write_samples
    from videotune.prep.synth_gym import GymSynthConfig, synth_gym

    out = tmp_path_factory.mktemp("gym_raw")
    samples = synth_gym(out, GymSynthConfig(n_clips=16, n_subjects=8, size_px=64, seed=3, workers=1))
    write_samples(out / "samples.parquet", samples)
    return out


# Shared by the infer and quantize tests: examples over the gym_raw clips and a tiny model.
@pytest.fixture(scope="session")
def gym_examples(gym_raw, tmp_path_factory):
    """examples/all.jsonl built from the gym_raw clips (4 frames each)."""
    out = tmp_path_factory.mktemp("gym_examples")
    subprocess.run([str(BIN / "vt-prep"), "build", "--samples", str(gym_raw / "samples.parquet"), "--out", str(out),
                    "--variant", "temporal", "--frames", "4"], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out / "examples" / "all.jsonl"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from videotune.core import models

    corpus = ["the knees move inward during the squat", "elbows flare in the overhead press", "no error"] * 20
    out = tmp_path_factory.mktemp("tiny_model") / "model"
    models.build_tiny("smolvlm2", out, corpus, seed=0,
                      spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400))
    return out
