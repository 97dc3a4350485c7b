"""Headless Chromium for the tests of the pages served on loopback (vt-judge review, vt-prep annotate).

Debian's chromium (`tools/judge/install_chromium.sh`), driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and 4), so no driver binary and no
browser download are needed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe",
                 "--window-size=1280,1600", "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={profile}", "about:blank"]
        # The shell moves the pipe ends to fds 3 and 4, where Chromium expects them.
        script = f'exec {CHROMIUM} "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", script, "chromium", *flags], pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        box = self._replies.get(message["id"])
                    if box is not None:
                        box.put(message)

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False, timeout: float = 20) -> dict:
        with self._lock:
            self._next += 1
            mid = self._next
            box = self._replies[mid] = queue.Queue()
        message: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = box.get(timeout=timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                           session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("document.body && document.body.dataset.ready === '1'")

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre, as a user's would be."""
        # Aim only once the element is what sits under its own centre (nothing still moving or covering it).
        box = self.wait_for(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el.scrollIntoView({{block: 'center'}});"
            " const r = el.getBoundingClientRect(); const x = r.x + r.width / 2, y = r.y + r.height / 2;"
            " const hit = document.elementFromPoint(x, y);"
            " return hit && (hit === el || el.contains(hit)) ? {x, y} : null; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                                   "clickCount": 1}, session=True)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    # DevTools key descriptions: key, code, Windows virtual key code (what the page's keydown handler sees)
    KEYS = {"ArrowRight": ("ArrowRight", "ArrowRight", 39), "ArrowLeft": ("ArrowLeft", "ArrowLeft", 37),
            " ": (" ", "Space", 32), "[": ("[", "BracketLeft", 219), "]": ("]", "BracketRight", 221),
            "m": ("m", "KeyM", 77), "n": ("n", "KeyN", 78), "p": ("p", "KeyP", 80), "s": ("s", "KeyS", 83), "Enter": ("Enter", "Enter", 13)}
    MODIFIERS = {"alt": 1, "ctrl": 2, "meta": 4, "shift": 8}

    def press(self, key: str, *modifiers: str) -> None:
        """A key pressed and released as a keyboard would (keydown with its text, then keyup)."""
        name, code, vk = self.KEYS[key]
        mask = sum(self.MODIFIERS[m] for m in modifiers)
        down: dict[str, Any] = {"type": "keyDown", "key": name, "code": code, "windowsVirtualKeyCode": vk,
                                "modifiers": mask}
        if len(name) == 1 and not mask & (self.MODIFIERS["ctrl"] | self.MODIFIERS["meta"]):
            down["text"] = name
        self.send("Input.dispatchKeyEvent", down, session=True)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": name, "code": code, "windowsVirtualKeyCode": vk,
                                             "modifiers": mask}, session=True)
