import os

import pytest

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
