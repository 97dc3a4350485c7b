"""vt-prep annotate: the error-annotation page (HTTP behaviour, and an annotation keyed in through headless
Chromium), its file in seed 000's format, and inter-annotator agreement."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium_driver import CHROMIUM, Chromium
from import_helpers import write_json
from PIL import Image

from videotune.core.io import InputError
from videotune.core.video import encode_video
from videotune.prep.annotate import AnnotateApp, AnnotationStore, agreement, load_clips, load_taxonomy, make_server
from videotune.prep.importers.annotated import AnnotatedOptions, import_annotated

FPS = 12  # frames per second of the test clips


def grey_clip(path: Path, n_frames: int) -> Path:
    """Frame k is flat grey 8 * k: a frame shown on the page says which it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(path, (np.full((48, 64, 3), 8 * k, np.uint8) for k in range(n_frames)), FPS)
    return path


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "data"
    grey_clip(root / "squat/a.mp4", 24)
    grey_clip(root / "squat/b.mp4", 24)
    grey_clip(root / "lunges/c.mp4", 12)
    grey_clip(tmp_path / "outside.mp4", 12)
    write_json(root / "list.json", [
        {"video": "squat/a.mp4", "exercise": "squat", "ground_truth": "Knees track the toes."},
        {"video_path": "squat/b.mp4", "labels_descriptive": "squat - knees cave in; push them out"},
        {"video": "lunges/c.mp4"},
        {"video": "../outside.mp4", "exercise": "squat"},
        {"video": "squat/missing.mp4", "exercise": "squat"},
    ])
    return root


@pytest.fixture
def page(root):
    """The page's server on a free port over the three listed clips, clip b already annotated."""
    out = root / "annotated_errors.json"
    write_json(out, [{"video": "squat/b.mp4", "exercise": "squat", "errors": [], "error_frames": [],
                      "ground_truth": "fine", "annotator": "pt-1"}])
    clips, refused = load_clips(root, root / "list.json")
    app = AnnotateApp(clips, AnnotationStore(out, "pt-1"), load_taxonomy(None), frame_size=None, refused=refused)
    server = make_server(app, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield {"port": server.server_address[1], "out": out, "root": root, "app": app}
    server.shutdown()
    server.server_close()


def request(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # s; a save is written before the reply
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def test_clip_list_refuses_escaping_and_missing_clips(root):
    clips, refused = load_clips(root, root / "list.json")
    assert [(c.video, c.exercise) for c in clips] == [("squat/a.mp4", "squat"), ("squat/b.mp4", "squat"),
                                                      ("lunges/c.mp4", "lunges")]  # b: QVED's "<exercise> - ..."
    assert clips[1].ground_truth == "squat - knees cave in; push them out"
    assert [r.record for r in refused] == ["3:../outside.mp4", "4:squat/missing.mp4"]
    assert "escapes the data root" in refused[0].reason and "file not found" in refused[1].reason
    from videotune.core.io import write_samples
    from videotune.core.schemas import Sample

    write_samples(root / "samples.parquet", [
        Sample(id="a", dataset="d", media="squat/a.mp4", media_kind="video", duration_s=2.0, fps=FPS, group="a",
               task="feedback", label="squats", answer="Knees out.", meta='{"exercise": "Squats"}'),
        Sample(id="i", dataset="d", media="img.png", media_kind="image", duration_s=0.0, fps=0.0, group="i", task="vqa")])
    (clip,), _ = load_clips(root, root / "samples.parquet")  # images are not clips
    assert (clip.video, clip.exercise, clip.ground_truth) == ("squat/a.mp4", "Squats", "Knees out.")
    scanned, _ = load_clips(root, None)  # no list: every clip under the root, the exercise from its folder
    assert [(c.video, c.exercise) for c in scanned] == [("lunges/c.mp4", "lunges"), ("squat/a.mp4", "squat"),
                                                        ("squat/b.mp4", "squat")]


def test_state_frames_and_resume(page):
    port = page["port"]
    state = json.loads(request(port, "GET", "/api/state")[1])
    assert state["start"] == 0 and state["annotator"] == "pt-1" and list(state["annotations"]) == ["squat/b.mp4"]
    assert state["offered"]["squat"] == ["knees_inward", "knees_forward"]
    assert len(state["refused"]) == 2
    info = json.loads(request(port, "GET", "/api/clip/0")[1])
    assert info["n_frames"] == 24 and info["fps"] == FPS and info["times_s"][5] == pytest.approx(5 / FPS)
    for k in (0, 7, 23, 9):  # chunked decoding and the cache give frame k, whichever is asked first
        status, jpeg = request(port, "GET", f"/frame/0/{k}.jpg")
        assert status == 200 and abs(np.asarray(Image.open(io.BytesIO(jpeg))).mean() - 8 * k) < 3
    for bad in ("/frame/0/24.jpg", "/frame/3/0.jpg", "/frame/0/-1.jpg", "/frame/0/1.png", "/api/clip/9", "/frame/../x"):
        assert request(port, "GET", bad)[0] == 404, bad
    assert request(port, "GET", "/api/state", headers={"Host": "evil.example"})[0] == 403


def test_saves_are_validated_and_written_in_the_seed_format(page):
    port, out = page["port"], page["out"]
    before = out.read_bytes()
    for bad in ({"clip": 7}, {"clip": 0, "errors": "x"}, {"clip": 0, "errors": ["a"], "spans": [{"start": 3, "end": 24}]},
                {"clip": 0, "errors": [], "spans": [{"start": 1, "end": 2}]},
                {"clip": 0, "errors": ["a"], "spans": [{"start": 1, "end": 2, "error": "b"}]},
                {"clip": 0, "errors": ["a"], "spans": [{"start": 2.5, "end": 3}]}):
        assert request(port, "POST", "/api/save", bad)[0] == 400, bad
    assert out.read_bytes() == before
    body = {"clip": 0, "errors": ["knees_inward", "Forward lean"], "ground_truth": " Push the knees out. ",
            "spans": [{"start": 2, "end": 4, "error": "knees_inward"}, {"start": 10, "end": 10, "error": ""}]}
    status, reply = request(port, "POST", "/api/save", body)
    assert status == 200 and json.loads(reply) == {"saved": "squat/a.mp4", "next": 2}
    records = json.loads(out.read_text())
    assert [r["video"] for r in records] == ["squat/b.mp4", "squat/a.mp4"]
    saved = records[1]
    assert {k: saved[k] for k in ("video", "exercise", "errors", "error_frames", "ground_truth")} == {
        "video": "squat/a.mp4", "exercise": "squat", "errors": ["knees_inward", "forward_lean"],
        "error_frames": [2, 3, 4, 10], "ground_truth": "Push the knees out."}
    assert saved["error_spans"] == {"knees_inward": [[2, 4], [10, 10]], "forward_lean": [[10, 10]]}
    assert saved["annotator"] == "pt-1"
    assert not list(out.parent.glob(".*.tmp"))
    # what the page writes, the importer reads: each error with its own spans, in seconds
    samples = {s.id: s for s in import_annotated(page["root"], AnnotatedOptions()).samples}
    spans = sorted((e.name, round(e.start_s * FPS), round(e.end_s * FPS)) for e in samples["squat/a"].errors)
    assert spans == [("forward_lean", 10, 10), ("knees_inward", 2, 4), ("knees_inward", 10, 10)]


def test_another_annotators_file_is_refused(page):
    with pytest.raises(InputError, match="annotated by 'pt-1', not 'pt-2'.*annotated_errors.pt-2.json"):
        AnnotationStore(page["out"], "pt-2")


# --------------------------------------------------------------------------- Chromium


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); run tools/judge/install_chromium.sh")
    chromium = Chromium(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


def shown_frame(browser: Chromium) -> int:
    return int(browser.js("document.getElementById('frame').dataset.frame"))


def test_annotate_in_chromium(page, browser):
    url = f"http://127.0.0.1:{page['port']}/"
    browser.open(url)
    assert browser.js("document.getElementById('clip-id').textContent") == "squat/a.mp4"
    assert browser.wait_for("document.getElementById('frame').complete && document.getElementById('frame').naturalWidth > 0")
    # keyboard stepping: the frame shown is the clip's own frame
    for _ in range(2):
        browser.press("ArrowRight")
    assert browser.wait_for("document.getElementById('frame').dataset.frame === '2'")
    browser.press("[")
    for _ in range(3):
        browser.press("ArrowRight")
    browser.press("]")  # a span, frames 2-5
    browser.press("ArrowRight", "shift")
    assert browser.wait_for("document.getElementById('frame').dataset.frame === '15'")
    assert "15 / 23" in browser.js("document.getElementById('frame-label').textContent")
    browser.press("m")  # frame 15 alone
    browser.press("ArrowLeft")
    assert shown_frame(browser) == 14
    assert browser.js("document.querySelectorAll('#spans li').length") == 2
    assert browser.js("document.querySelectorAll('#timeline .span').length") == 2
    # pick an error of the exercise's taxonomy, type a new one, write the feedback
    browser.click("label[for=error-knees_inward]")
    browser.js("document.getElementById('new-error').value = 'Forward lean'")
    browser.click("#add-error")
    assert browser.wait_for("document.getElementById('error-forward_lean').checked")
    for row, error in ((0, "knees_inward"), (1, "forward_lean")):  # which error each span shows
        browser.js(f"(() => {{ const s = document.querySelectorAll('#spans select')[{row}]; s.value = '{error}';"
                   " s.dispatchEvent(new Event('change')); })()")
    browser.js("document.getElementById('ground-truth').value = 'Keep the knees over the toes.'")
    browser.press("Enter", "ctrl")  # save and next
    assert browser.wait_for("document.getElementById('clip-id').textContent === 'lunges/c.mp4'")  # b was done before
    record = next(r for r in json.loads(page["out"].read_text()) if r["video"] == "squat/a.mp4")
    assert record["errors"] == ["knees_inward", "forward_lean"] and record["error_frames"] == [2, 3, 4, 5, 15]
    assert record["error_spans"] == {"knees_inward": [[2, 5]], "forward_lean": [[15, 15]]}
    assert record["ground_truth"] == "Keep the knees over the toes." and record["annotator"] == "pt-1"

    # reloading resumes at the first clip without an annotation; going back shows the saved one
    browser.open(url)
    assert browser.js("document.getElementById('clip-id').textContent") == "lunges/c.mp4"
    assert "2 annotated" in browser.js("document.getElementById('progress').textContent")
    browser.press("p")
    browser.press("p")
    assert browser.wait_for("document.getElementById('clip-id').textContent === 'squat/a.mp4'")
    assert browser.wait_for("document.querySelectorAll('#spans li').length === 2")
    assert browser.js("document.getElementById('error-knees_inward').checked") is True
    assert browser.js("document.getElementById('ground-truth').value") == "Keep the knees over the toes."
    # keys typed into the feedback are text, not commands
    browser.js("document.getElementById('ground-truth').focus()")
    browser.press("n")
    assert browser.js("document.getElementById('clip-id').textContent") == "squat/a.mp4"


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_annotate_command_serves_saves_and_stops_cleanly(root, tmp_path, stop):
    import shutil
    import signal

    exe = shutil.which("vt-prep", path=str(Path(sys.executable).parent))
    # Ctrl-C as a terminal delivers it, even where the test runs in the background (SIGINT ignored then)
    launcher = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.argv[1], sys.argv[1:])"]
    out = tmp_path / "ann" / "annotated_errors.pt-2.json"
    proc = subprocess.Popen([*launcher, exe, "annotate", "--data-root", str(root), "--out", str(out), "--port", "0",
                             "--annotator", "pt-2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        state = json.loads(request(port, "GET", "/api/state")[1])
        assert [c["video"] for c in state["clips"]] == ["lunges/c.mp4", "squat/a.mp4", "squat/b.mp4"]
        assert request(port, "POST", "/api/save", {"clip": 1, "errors": [], "ground_truth": "ok"})[0] == 200
    finally:
        proc.send_signal(getattr(signal, stop))
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    assert [r["video"] for r in json.loads(out.read_text())] == ["squat/a.mp4"]
    manifest = json.loads((out.parent / "annotated_errors.pt-2.run.json").read_text())
    assert manifest["outputs"]["annotated"] == 1


# --------------------------------------------------------------------------- agreement


def test_agreement_kappa_per_error_and_span_iou(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    def record(video, errors, frames, spans=None):
        r = {"video": video, "exercise": "squat", "errors": errors, "error_frames": frames, "ground_truth": ""}
        return r | ({"error_spans": spans} if spans is not None else {})

    a = [record("1.mp4", ["valgus"], [1, 2, 3, 4], {"valgus": [[1, 4]]}), record("2.mp4", ["valgus", "lean"], [5, 6]),
         record("3.mp4", [], []), record("4.mp4", ["lean"], [0, 1]), record("only_a.mp4", ["valgus"], [1])]
    b = [record("1.mp4", ["valgus"], [3, 4, 5, 6], {"valgus": [[3, 6]]}), record("2.mp4", ["valgus"], [5, 6]),
         record("3.mp4", ["lean"], [2]), record("4.mp4", ["lean"], [0, 1])]
    for name, records in (("pt-1", a), ("pt-2", b)):
        write_json(tmp_path / f"{name}.json", [r | {"annotator": name} for r in records])
    result = agreement([tmp_path / "pt-1.json", tmp_path / "pt-2.json"])
    assert result["annotators"] == ["pt-1", "pt-2"]
    pair = result["pairs"]["pt-1 vs pt-2"]
    assert pair["n_clips"] == 4  # only the clips both annotated
    assert pair["kappa"]["valgus"] == pytest.approx(1.0)
    assert pair["kappa"]["lean"] == pytest.approx(cohen_kappa_score([0, 1, 0, 1], [0, 0, 1, 1]))
    assert result["kappa"] == pair["kappa"]  # one pair: Light's kappa is that pair's
    # marked frames per clip: 1: {1..4} vs {3..6} -> 2/6; 2: equal -> 1; 3: {} vs {2} -> 0; 4: equal -> 1
    assert result["span_iou"] == pytest.approx((2 / 6 + 1 + 0 + 1) / 4)
    assert result["span_iou_per_error"] == {"valgus": pytest.approx(2 / 6)}  # where both say which spans show it
    same = agreement([tmp_path / "pt-1.json", tmp_path / "pt-1.json"])
    assert same["pairs"]["pt-1 vs pt-1 (pt-1.json)"]["kappa"]["valgus"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="at least two"):
        agreement([tmp_path / "pt-1.json"])


def test_agreement_command_writes_its_table(tmp_path):
    from import_helpers import run_prep

    records = [{"video": f"{k}.mp4", "exercise": "squat", "errors": ["valgus"] if k % 2 else [], "error_frames": []}
               for k in range(4)]
    write_json(tmp_path / "a.json", records)
    write_json(tmp_path / "b.json", records)
    result = run_prep("agreement", "--annotations", f"{tmp_path / 'a.json'},{tmp_path / 'b.json'}", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "agreement.json").read_text())["kappa"] == {"valgus": 1.0}
    assert "| valgus | 1.000 |" in (tmp_path / "out" / "agreement.md").read_text()
    assert (tmp_path / "out" / "run.json").is_file()


def test_offered_errors(tmp_path, page):
    state = json.loads(request(page["port"], "GET", "/api/state")[1])
    assert state["offered"]["lunges"] == ["knee_valgus", "forward_lean", "incomplete_range_of_motion", "poor_alignment"]
    (tmp_path / "tax.yaml").write_text("lunges: [Short stride, knee valgus]\n'*': [other]\n")
    offered = load_taxonomy(tmp_path / "tax.yaml")
    assert offered["lunges"] == ["short_stride", "knee_valgus"] and offered["*"] == ["other"]
    assert offered["squat"] == ["knees_inward", "knees_forward"]
    (tmp_path / "bad.json").write_text('{"lunges": "x"}')
    with pytest.raises(InputError, match="exercise: \\[error names\\]"):
        load_taxonomy(tmp_path / "bad.json")


def test_a_frames_folder_is_one_clip_and_its_frames_are_shown(tmp_path):
    folder = tmp_path / "squat" / "extracted"
    folder.mkdir(parents=True)
    for k in range(5):
        Image.fromarray(np.full((24, 32, 3), 40 * k, np.uint8)).save(folder / f"f{k}.png")
    (folder / "timestamps.txt").write_text("0\n0.1\n0.3\n0.35\n0.5\n")
    clips, _ = load_clips(tmp_path, None)
    assert [(c.video, c.exercise) for c in clips] == [("squat/extracted", "squat")]
    app = AnnotateApp(clips, AnnotationStore(tmp_path / "a.json", "x"), load_taxonomy(None), frame_size=None)
    status, info = app.clip_info(0)
    assert status == 200 and info["times_s"] == [0.0, 0.1, 0.3, 0.35, 0.5]
    assert np.asarray(Image.open(io.BytesIO(app.frame_jpeg(0, 3)))).mean() == pytest.approx(120, abs=2)
