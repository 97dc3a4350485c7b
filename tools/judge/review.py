"""`vt-judge review`: a local web page where an expert rates predictions on a rubric's dimensions.

A dependency-free server (stdlib http.server), bound to 127.0.0.1 only. It serves one page
(review.html beside this file), the items and the rubric as JSON, the media files under
--data-root (HTML5 <video>/<img>, with byte ranges so the video can seek; anything that
resolves outside the media root is refused), and takes ratings by POST into a RatingStore
(ratings.jsonl, rewritten atomically on every save). The page opens at the first unrated item.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ValidationError

from videotune.core.localweb import LoopbackHandler, loopback_server, serve
from videotune.core.schemas import Example, Prediction
from videotune.judge.ratings import ExpertRating, RatingStore, now_iso
from videotune.judge.rubric import Rubric, question_of

PAGE = Path(__file__).resolve().parent / "review.html"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
__all__ = ["ReviewApp", "build_items", "make_server", "safe_media_path", "serve"]


class ReviewItem(BaseModel):
    id: str
    model: str
    question: str
    reference: str
    prediction: str
    media: str = ""  # relative to the media root; "" when the pipeline did not record it
    media_kind: str = ""  # video | image | ""


def build_items(predictions: Sequence[Prediction], examples: Sequence[Example] = ()) -> list[ReviewItem]:
    """Items to rate: predictions that have text. Media from meta['media'], else from the example of the same id."""
    media_by_id = {e.id: e.media for e in examples}
    items = []
    for p in predictions:
        if p.status != "ok":
            continue  # inference failed: there is nothing for the expert to rate
        media = p.meta.get("media") if isinstance(p.meta.get("media"), str) else media_by_id.get(p.id, "")
        kind = "" if not media else ("image" if Path(media).suffix.lower() in IMAGE_SUFFIXES else "video")
        items.append(ReviewItem(id=p.id, model=p.model, question=question_of(p), reference=p.reference,
                                prediction=p.prediction, media=media or "", media_kind=kind))
    return items


def safe_media_path(media_root: Path, relative: str) -> Path | None:
    """The file `relative` names under `media_root`, or None when it would leave the root (.., absolute, symlink out)."""
    if not relative or "\x00" in relative:
        return None
    root = media_root.resolve()
    candidate = (root / relative.lstrip("/")).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


class ReviewApp:
    """What the handler serves: the items, the rubric, the ratings store and the media root."""

    def __init__(self, items: list[ReviewItem], rubric: Rubric, store: RatingStore, media_root: Path, rater: str):
        self.items = items
        self.ids = [i.id for i in items]
        self.rubric = rubric
        self.store = store
        self.media_root = media_root
        self.rater = rater

    def state(self) -> dict[str, Any]:
        return {
            "rubric": {
                "id": self.rubric.id, "name": self.rubric.name, "description": self.rubric.description,
                "dimensions": [d.model_dump() for d in self.rubric.dimensions],
                "scale": self.rubric.scale.model_dump(),
            },
            "rater": self.rater,
            "items": [i.model_dump() for i in self.items],
            "ratings": {rid: r.model_dump() for rid in self.ids if (r := self.store.get(rid)) is not None},
            "start": self.store.first_unrated(self.ids),
        }

    def rate(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and save one rating; (HTTP status, JSON reply)."""
        if not isinstance(body, dict) or body.get("id") not in self.ids:
            return HTTPStatus.BAD_REQUEST, {"error": "unknown item id"}
        scores = body.get("scores")
        dims = self.rubric.dimension_names
        if not isinstance(scores, dict) or sorted(scores) != sorted(dims):
            return HTTPStatus.BAD_REQUEST, {"error": f"rate every dimension: {dims}"}
        if any(type(v) is not int for v in scores.values()):
            return HTTPStatus.BAD_REQUEST, {"error": "scores must be integers"}
        try:
            rating = ExpertRating(id=body["id"], rubric=self.rubric.id, rater=self.rater, scores=scores,
                                  comment=str(body.get("comment", ""))[:5000], rated_at=now_iso())
        except ValidationError as err:
            return HTTPStatus.BAD_REQUEST, {"error": "; ".join(e["msg"] for e in err.errors())}
        self.store.put(rating)
        return HTTPStatus.OK, {"saved": rating.id, "next": self.store.first_unrated(self.ids)}


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(LoopbackHandler):
    app: ReviewApp  # set on the subclass made by make_server
    server_version = "vt-judge-review"

    def do_GET(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._json(HTTPStatus.FORBIDDEN, {"error": "bad Host header"})
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        if path == "/api/state":
            return self._json(HTTPStatus.OK, self.app.state())
        if path.startswith("/media/"):
            return self._media(unquote(path[len("/media/"):]))
        self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._json(HTTPStatus.FORBIDDEN, {"error": "bad Host header"})
        if urlsplit(self.path).path != "/api/rate":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        ok, body = self._read_json()
        if not ok:
            return None
        status, reply = self.app.rate(body)
        self._json(status, reply)

    def _media(self, relative: str) -> None:
        target = safe_media_path(self.app.media_root, relative)
        if target is None:
            return self._json(HTTPStatus.FORBIDDEN if ".." in relative or relative.startswith("/") else HTTPStatus.NOT_FOUND,
                              {"error": "no such media under the media root"})
        size = target.stat().st_size
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        start, end, status = 0, size - 1, HTTPStatus.OK
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                return self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", "text/plain",
                                  {"Content-Range": f"bytes */{size}"})
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # a suffix range: the last N bytes
                start = max(size - int(match.group(2)), 0)
            if start > end or start >= size:
                return self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", "text/plain",
                                  {"Content-Range": f"bytes */{size}"})
            status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(target, "rb") as fh:
            fh.seek(start)
            try:
                _copy(fh, self.wfile, length)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser stops reading a video it has buffered enough of: normal


def _copy(src: Any, dst: Any, length: int, chunk: int = 1 << 16) -> None:
    while length > 0:
        block = src.read(min(chunk, length))
        if not block:
            break
        dst.write(block)
        length -= len(block)


def make_server(app: ReviewApp, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The review server, not yet serving (call serve). Loopback only: ratings are not for the network."""
    return loopback_server(type("ReviewHandler", (_Handler,), {"app": app}), port, host, what="the review page")

