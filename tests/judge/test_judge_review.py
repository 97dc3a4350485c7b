"""The expert review page: HTTP behaviour, and a rating clicked through in headless Chromium.

Chromium is Debian's (`tools/judge/install_chromium.sh`), driven over the DevTools protocol
on a pipe (tests/chromium_driver.py), so no driver binary and no browser download are needed.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium_driver import CHROMIUM, Chromium
from judge_fakes import make_predictions

from videotune.core.io import read_jsonl, write_jsonl
from videotune.core.schemas import Example, FrameSpec, Message
from videotune.judge.ratings import ExpertRating, RatingStore
from videotune.judge.review import ReviewApp, build_items, make_server
from videotune.judge.rubric import load_rubric


@pytest.fixture
def review(tmp_path):
    """A review server on a free loopback port over 3 predictions with a real H.264 clip each."""
    from videotune.core.video import encode_video

    media = tmp_path / "data"
    (media / "clips").mkdir(parents=True)
    frames = [np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(6)]
    predictions = make_predictions(3)
    examples = []
    for p in predictions:
        encode_video(media / "clips" / f"{p.id}.mp4", frames, fps=6)
        examples.append(Example(
            id=p.id, sample_id=p.id, media=f"clips/{p.id}.mp4", frames=FrameSpec(n=1, timestamps_s=[0.0]),
            messages=[Message(role="user", content="q"), Message(role="assistant", content=p.reference)],
            target=p.reference,
        ))
    (tmp_path / "secret.txt").write_text("outside the media root")
    (media / "escape.mp4").symlink_to(tmp_path / "secret.txt")
    out = tmp_path / "review"
    rubric = load_rubric("holistic")
    items = build_items(predictions, examples)
    store = RatingStore(out / "ratings.jsonl", [i.id for i in items])
    server = make_server(ReviewApp(items, rubric, store, media, rater="dr-test"), port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield {"port": server.server_address[1], "out": out, "media": media, "items": items}
    server.shutdown()
    server.server_close()


def request(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # s; a rating is fsynced before the reply
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def test_binds_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        make_server(None, port=0, host="0.0.0.0")  # type: ignore[arg-type]


def test_media_is_served_with_ranges(review):
    status, headers, data = request(review["port"], "GET", "/media/clips/clip000.mp4")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert data == (review["media"] / "clips" / "clip000.mp4").read_bytes()
    status, headers, part = request(review["port"], "GET", "/media/clips/clip000.mp4", headers={"Range": "bytes=4-11"})
    assert status == 206 and part == data[4:12] and headers["Content-Range"] == f"bytes 4-11/{len(data)}"
    status, _, _ = request(review["port"], "GET", "/media/clips/clip000.mp4", headers={"Range": f"bytes={len(data)}-"})
    assert status == 416


@pytest.mark.parametrize(
    "path",
    ["/media/../secret.txt", "/media/%2e%2e/secret.txt", "/media/clips/../../secret.txt", "/media//etc/passwd",
     "/media/%2fetc%2fpasswd", "/media/escape.mp4", "/media/clips/nothing.mp4"],
)
def test_path_traversal_is_refused(review, path):
    status, _, data = request(review["port"], "GET", path)
    assert status in (403, 404)
    assert b"outside the media root" not in data and b"root:" not in data


def test_foreign_host_and_non_json_posts_are_refused(review):
    status, _, _ = request(review["port"], "GET", "/api/state", headers={"Host": "evil.example:80"})
    assert status == 403
    conn = http.client.HTTPConnection("127.0.0.1", review["port"], timeout=60)
    conn.request("POST", "/api/rate", body=b"id=clip000", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 415
    conn.close()


def test_ratings_are_validated_and_replaced_atomically(review):
    port, path = review["port"], review["out"] / "ratings.jsonl"
    for bad in ({"id": "nope", "scores": {"accuracy": 3, "usefulness": 3}},
                {"id": "clip000", "scores": {"accuracy": 3}},
                {"id": "clip000", "scores": {"accuracy": 7, "usefulness": 3}},
                {"id": "clip000", "scores": {"accuracy": 3.5, "usefulness": 3}}):
        status, _, _ = request(port, "POST", "/api/rate", bad)
        assert status == 400, bad
    assert not path.exists()
    status, _, data = request(port, "POST", "/api/rate", {"id": "clip001", "scores": {"accuracy": 2, "usefulness": 3}})
    assert status == 200 and json.loads(data) == {"saved": "clip001", "next": 0}
    request(port, "POST", "/api/rate", {"id": "clip000", "scores": {"accuracy": 5, "usefulness": 5}, "comment": "c"})
    request(port, "POST", "/api/rate", {"id": "clip001", "scores": {"accuracy": 4, "usefulness": 4}})
    rows = read_jsonl(path, ExpertRating)
    assert [(r.id, r.scores["accuracy"]) for r in rows] == [("clip000", 5), ("clip001", 4)]
    assert rows[0].rater == "dr-test" and rows[0].rubric == "holistic@1.0" and rows[0].comment == "c"
    assert not list(path.parent.glob(".*.tmp"))  # no temp file left behind
    state = json.loads(request(port, "GET", "/api/state")[2])
    assert state["start"] == 2 and set(state["ratings"]) == {"clip000", "clip001"}


def test_store_resumes_from_the_file(tmp_path):
    path = tmp_path / "ratings.jsonl"
    write_jsonl(path, [ExpertRating(id="b", scores={"d": 2})])
    assert RatingStore(path, ["a", "b", "c"]).first_unrated(["a", "b", "c"]) == 0
    write_jsonl(path, [ExpertRating(id="a", scores={"d": 2}), ExpertRating(id="b", scores={"d": 2})])
    assert RatingStore(path, ["a", "b", "c"]).first_unrated(["a", "b", "c"]) == 2


# --------------------------------------------------------------------------- Chromium


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); run tools/judge/install_chromium.sh")
    chromium = Chromium(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


def wait_for_file_row(path: Path, rid: str, timeout: float = 30) -> ExpertRating:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            rows = {r.id: r for r in read_jsonl(path, ExpertRating)}
            if rid in rows:
                return rows[rid]
        time.sleep(0.05)
    raise AssertionError(f"{rid} never reached {path}")


def test_rate_in_chromium(review, browser):
    url = f"http://127.0.0.1:{review['port']}/"
    path = review["out"] / "ratings.jsonl"
    browser.open(url)
    assert browser.js("document.getElementById('item-id').textContent") == "clip000"
    assert browser.js("document.getElementById('reference').textContent") == review["items"][0].reference
    assert browser.js("document.getElementById('prediction').textContent") == review["items"][0].prediction
    # The clip plays beside the texts: the browser fetched it from the media root and read its header.
    assert browser.js("document.getElementById('media-element').src").endswith("/media/clips/clip000.mp4")
    assert browser.wait_for("document.getElementById('media-element').readyState >= 1")
    assert browser.js("document.getElementById('media-element').duration") == pytest.approx(1.0, abs=0.2)
    # The clip's box is as tall before its metadata arrives as after: nothing below it moves under the pointer.
    empty_height = browser.js(
        "(() => { const v = document.createElement('video'); document.getElementById('media').append(v);"
        " const h = v.getBoundingClientRect().height; v.remove(); return h; })()"
    )
    assert browser.js("document.getElementById('media-element').getBoundingClientRect().height") == empty_height

    # Saving with a dimension unrated is refused on the page, and nothing is written.
    browser.click("label[for=score-accuracy-4]")
    browser.click("#save")
    assert "usefulness" in browser.wait_for("document.getElementById('message').textContent")
    assert not path.exists()

    browser.click("label[for=score-usefulness-2]")
    browser.js("document.getElementById('comment').value = 'knees fine'")
    browser.click("#save")
    row = wait_for_file_row(path, "clip000")
    assert row.scores == {"accuracy": 4, "usefulness": 2} and row.comment == "knees fine" and row.rater == "dr-test"
    assert browser.wait_for("document.getElementById('item-id').textContent === 'clip001'")  # moved on

    # Reopening the page resumes at the first unrated item.
    browser.open(url)
    assert browser.js("document.getElementById('item-id').textContent") == "clip001"
    assert "1 rated" in browser.js("document.getElementById('progress').textContent")

    # Going back shows the saved rating; a re-rating replaces it, it does not add a row.
    browser.click("#prev")
    assert browser.wait_for("document.getElementById('item-id').textContent === 'clip000'")
    assert browser.js("document.getElementById('score-accuracy-4').checked") is True
    browser.click("label[for=score-accuracy-1]")
    # the click landed (on a loaded machine the page may still be settling): then save
    assert browser.wait_for("document.getElementById('score-accuracy-1').checked")
    browser.click("#save")
    deadline = time.monotonic() + 30  # s; generous for a machine under load
    while wait_for_file_row(path, "clip000").scores["accuracy"] != 1:
        message = browser.js("document.getElementById('message').textContent")
        assert time.monotonic() < deadline, f"the re-rating never reached the file (page says {message!r})"
        time.sleep(0.05)
    rows = read_jsonl(path, ExpertRating)
    assert [r.id for r in rows] == ["clip000"] and rows[0].scores == {"accuracy": 1, "usefulness": 2}


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_review_command_serves_saves_and_stops_cleanly(tmp_path, stop):
    """`vt-judge review` in its own process: serves on a free port, saves a rating, exits 0 on Ctrl-C or SIGTERM."""
    import shutil
    import signal
    import sys

    write_jsonl(tmp_path / "p.jsonl", make_predictions(2))
    (tmp_path / "media").mkdir()
    out = tmp_path / "review"
    exe = shutil.which("vt-judge", path=str(Path(sys.executable).parent))
    # Ctrl-C as a terminal delivers it: a test run started in the background (as CI's may be) passes
    # SIGINT on ignored, and Python then never raises KeyboardInterrupt. A default disposition survives
    # exec, so a small launcher restores it and execs vt-judge (no preexec_fn: the test process has threads).
    launcher = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.argv[1], sys.argv[1:])"]
    proc = subprocess.Popen(
        [*launcher, exe, "review", "--predictions", str(tmp_path / "p.jsonl"), "--rubric", "clinical", "--data-root",
         str(tmp_path / "media"), "--out", str(out), "--port", "0", "--rater", "pt-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"},
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        state = json.loads(request(port, "GET", "/api/state")[2])
        assert [d["name"] for d in state["rubric"]["dimensions"]] == [
            "clinical_accuracy", "actionability", "root_cause", "completeness", "overall"]
        assert state["items"][0]["media"] == ""  # no media recorded: the page says so
        scores = {d["name"]: 3 for d in state["rubric"]["dimensions"]}
        assert request(port, "POST", "/api/rate", {"id": "clip001", "scores": scores})[0] == 200
    finally:
        proc.send_signal(getattr(signal, stop))
        try:
            proc.wait(timeout=60)  # s; it stops ~0.4 s after the signal
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            _, err = proc.communicate(timeout=20)
            pytest.fail(f"vt-judge review did not stop within 60 s of {stop}; its threads:\n{err[-6000:]}")
    assert proc.returncode == 0, proc.stderr.read()
    (row,) = read_jsonl(out / "ratings.jsonl", ExpertRating)
    assert row.id == "clip001" and row.rater == "pt-1" and row.rubric == "clinical@1.0"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["command"] == "review" and manifest["rated"] == 1
