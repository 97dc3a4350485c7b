"""A page served on loopback for a person at this machine (vt-judge's review page, vt-prep's
annotation page): stdlib http.server, bound to 127.0.0.1 only, JSON in and out.

What both need and both get the same way: requests whose Host is not a loopback name are refused
(DNS rebinding), a POST must be application/json (a cross-site form cannot send it without a CORS
preflight, which is never granted) and small, nothing is cached by the browser, and the server
stops cleanly on Ctrl-C or SIGTERM. Each page's own routes live in its tool.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("videotune")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 1 << 20  # bytes; a page's POST is a few hundred bytes: refuse anything absurd


class LoopbackHandler(BaseHTTPRequestHandler):
    """Request handler base: Host check, JSON replies and JSON bodies. Subclasses add do_GET/do_POST."""

    server_version = "videotune"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug(f"{self.server_version}: " + format, *args)

    def _host_ok(self) -> bool:
        # A page on another site could reach 127.0.0.1 through a DNS name it controls (DNS
        # rebinding); such requests carry that name as Host, and are refused.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost", "[::1]")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser stopped waiting (a preloaded frame it no longer needs): normal

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _read_json(self) -> tuple[bool, Any]:
        """(True, the parsed body), or (False, None) after replying with the error."""
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send application/json"})
            return False, None
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "bad body length"})
            return False, None
        try:
            return True, json.loads(self.rfile.read(length))
        except json.JSONDecodeError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
            return False, None

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})


def loopback_server(handler: type[LoopbackHandler], port: int, host: str = "127.0.0.1", what: str = "the page") -> ThreadingHTTPServer:
    """A threading server for `handler`, not yet serving (call serve). Loopback only: what a person
    enters on these pages is not for the network."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"{what} binds to loopback only, not {host!r}")
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C or SIGTERM; every save is already on disk, so stopping loses nothing.

    SIGTERM is what `kill`, SLURM and process managers send, and the only stop signal a server
    started in the background gets: shells start background jobs with SIGINT ignored.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _stop) if in_main_thread else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:  # None also where the handler before was not set from Python
            signal.signal(signal.SIGTERM, previous)
        server.server_close()
