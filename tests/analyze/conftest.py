import pytest


@pytest.fixture(scope="session")
def text_models():
    """The embedding model, WordNet and Java lookup, loaded once for every text-metric test."""
    from videotune.analyze.text import load_text_models

    return load_text_models(device="cpu")


@pytest.fixture(scope="session")
def text_models_no_java(text_models):
    """The same models without Java: CIDEr is skipped, sparing a JVM start in tests about other metrics."""
    import dataclasses

    return dataclasses.replace(text_models, java=None)
