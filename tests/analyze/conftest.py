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


@pytest.fixture(scope="session")
def nltk_word_tokenize(tmp_path_factory):
    """NLTK's own `word_tokenize`, made runnable offline: the packaged Punkt English model written as
    nltk_data's tokenizers/punkt_tab/english by NLTK's save_punkt_params, on nltk.data.path for the session."""
    import nltk
    from nltk.tokenize.punkt import save_punkt_params

    from videotune.analyze.text import _punkt_english

    root = tmp_path_factory.mktemp("nltk_data")
    nltk.data.path.insert(0, str(root))
    (root / "tokenizers" / "punkt_tab").mkdir(parents=True)
    save_punkt_params(_punkt_english()._params, str(root / "tokenizers" / "punkt_tab" / "english"))
    yield nltk.word_tokenize
    nltk.data.path.remove(str(root))
