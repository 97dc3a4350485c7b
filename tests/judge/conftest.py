"""Fixtures of the judge tests (the fakes themselves are in judge_fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from judge_fakes import FakeChatServer, make_predictions

from videotune.core.io import write_jsonl


@pytest.fixture
def chat_server():
    server = FakeChatServer()
    yield server
    server.close()


@pytest.fixture
def predictions_file(tmp_path) -> Path:
    path = tmp_path / "predictions.jsonl"
    write_jsonl(path, make_predictions(6))
    return path
