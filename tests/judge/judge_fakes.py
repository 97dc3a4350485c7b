"""Test doubles for the judge tests: a real chat completions server on 127.0.0.1 that injects faults by a script."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from videotune.core.schemas import Prediction

FORM = re.compile(r'"([a-z_]+)": <integer')


def dims_of(body: dict[str, Any]) -> list[str]:
    """The dimensions the judge is asked for: from the json_schema response_format, else from the prompt's form line."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        props = fmt["json_schema"]["schema"]["properties"]
        return [k for k in props if k != "rationale"]
    for message in body["messages"]:
        found = FORM.findall(message["content"])
        if found:
            return found
    return []


def first_user(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def default_answer(body: dict[str, Any]) -> str:
    """A valid answer: scores derived from the prompt (deterministic), or a pairwise winner.

    Pairwise: the answer containing GOOD wins, wherever it is shown (a consistent judge).
    """
    prompt = first_user(body)
    if '"winner"' in prompt:
        one = prompt.split("1:\n", 1)[1].split("\n\n", 1)[0]
        two = prompt.split("2:\n", 1)[1].split("\n\n", 1)[0]
        winner = "1" if "GOOD" in one and "GOOD" not in two else "2" if "GOOD" in two and "GOOD" not in one else "tie"
        return json.dumps({"rationale": "compared", "winner": winner})
    digest = hashlib.sha256(prompt.encode()).digest()
    scores = {d: 1 + digest[i] % 5 for i, d in enumerate(dims_of(body))}
    return json.dumps({"rationale": "looks right", **scores})


def completion(content: str, model: str = "fake") -> bytes:
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()


class FakeChatServer:
    """POST /v1/chat/completions. Each request takes the next action of `script`, or answers validly.

    Actions: {"status": 500} / {"status": 429, "headers": {"Retry-After": "0.3"}} (an error reply),
    {"sleep": s} (answer validly after s seconds: a timeout for a client with a shorter one),
    {"content": text} (a 200 whose answer is text), {"body": bytes} (a 200 with a raw body).
    `reject_formats`: response_format types answered with 400, as servers without structured output do.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.script: deque[dict[str, Any]] = deque()
        self.reject_formats: set[str] = set()
        self.answer = default_answer
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                outer._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # A client that timed out has closed its socket; the late reply fails, harmlessly.
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self._lock:
            self.requests.append({"path": handler.path, "body": body, "headers": dict(handler.headers)})
            self.times.append(time.monotonic())
            action = self.script.popleft() if self.script else {}
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fmt = (body.get("response_format") or {}).get("type", "plain")
            if fmt in self.reject_formats:
                return self._reply(handler, 400, json.dumps({"error": {"message": f"response_format {fmt} unsupported"}}).encode())
            if handler.path != "/v1/chat/completions":
                return self._reply(handler, 404, b'{"error": "not found"}')
            if "status" in action:
                return self._reply(handler, action["status"], b'{"error": "injected"}', action.get("headers", {}))
            time.sleep(action.get("sleep", self.delay_s))
            if "body" in action:
                return self._reply(handler, 200, action["body"])
            content = action["content"] if "content" in action else self.answer(body)
            self._reply(handler, 200, completion(content, body.get("model", "")))
        finally:
            with self._lock:
                self.in_flight -= 1

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_predictions(n: int, model: str = "tiny", prefix: str = "clip") -> list[Prediction]:
    return [
        Prediction(
            id=f"{prefix}{i:03d}", model=model, prompt=f"What is wrong with the squat in clip {i}?",
            prediction=f"Knees cave inward in rep {i}; push them out over the toes. {{not a template}}",
            reference=f"Knees inward during the descent of rep {i}; cue: knees out.", status="ok",
            meta={"question": f"Describe the form errors in clip {i}."},
        )
        for i in range(n)
    ]
