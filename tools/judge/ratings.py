"""Expert ratings (ratings.jsonl): what `vt-judge review` writes and `vt-judge agreement` reads.

One row per prediction id: {id, rubric, rater, scores {dimension: 1..5}, comment, rated_at}.
A re-rating replaces the row; every save rewrites the file atomically, so the file on disk is
always a complete, valid set of ratings, whatever moment the page or the server is closed.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field

from videotune.core.io import read_jsonl, write_jsonl
from videotune.core.schemas import RubricScore, Strict


class ExpertRating(Strict):
    id: str = Field(min_length=1)
    rubric: str = ""
    rater: str = ""
    scores: dict[str, RubricScore]
    comment: str = ""
    rated_at: str = ""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RatingStore:
    """Ratings keyed by id, kept in the order of the items being rated, saved atomically on every change."""

    def __init__(self, path: str | Path, order: list[str]):
        self.path = Path(path)
        self.order = {rid: i for i, rid in enumerate(order)}
        self._lock = threading.Lock()
        self.ratings: dict[str, ExpertRating] = (
            {r.id: r for r in read_jsonl(self.path, ExpertRating)} if self.path.exists() else {}
        )

    def get(self, rid: str) -> ExpertRating | None:
        with self._lock:
            return self.ratings.get(rid)

    def put(self, rating: ExpertRating) -> None:
        with self._lock:
            self.ratings[rating.id] = rating
            rows = sorted(self.ratings.values(), key=lambda r: (self.order.get(r.id, len(self.order)), r.id))
            write_jsonl(self.path, rows)

    def first_unrated(self, ids: list[str]) -> int:
        with self._lock:
            return next((i for i, rid in enumerate(ids) if rid not in self.ratings), len(ids))
