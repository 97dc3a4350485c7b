"""On-disk cache of judge answers, so a rerun (or a resumed run) asks the judge nothing twice.

The key is the sha256 of the canonical JSON of (judge backend and model, rubric name and
version, the rendered messages, the sampling parameters). The messages include any re-ask
turns, so each attempt of a conversation is its own entry. One file per entry, written
atomically, so concurrent workers and a killed run never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from videotune.core.io import atomic_write_text


def default_cache_dir() -> Path:
    """$VT_CACHE_DIR/judge, else ~/.cache/videotune/judge."""
    configured = os.environ.get("VT_CACHE_DIR")
    return (Path(configured) if configured else Path.home() / ".cache" / "videotune") / "judge"


def cache_key(judge: str, rubric_id: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
    material = {"judge": judge, "rubric": rubric_id, "messages": messages, "sampling": sampling}
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    def __init__(self, root: str | Path | None):
        # root None: caching off (--no-answer-cache), every request goes to the judge.
        self.root = Path(root) if root is not None else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            # A damaged entry costs one request, not the run.
            return None
        text = entry.get("text")
        return text if isinstance(text, str) else None

    def put(self, key: str, text: str, meta: dict[str, Any]) -> None:
        if self.root is None:
            return
        atomic_write_text(self._path(key), json.dumps({"key": key, "text": text, **meta}, ensure_ascii=False))
