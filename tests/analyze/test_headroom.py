"""vt-analyze headroom: metrics vs minimum (and maximum) thresholds, per metric per model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from videotune.analyze.headroom import headroom_of, load_thresholds, model_headroom, parse_sources
from videotune.core.io import InputError

BIN = Path(sys.executable).parent


def test_headroom_is_the_signed_distance_to_the_threshold():
    above = headroom_of(0.95, 0.90, "minimum")
    assert above.status == "ok" and above.headroom == pytest.approx(0.05) and above.relative_headroom == pytest.approx(0.05 / 0.9)
    below = headroom_of(0.62, 0.70, "minimum")
    assert below.status == "below" and below.headroom == pytest.approx(-0.08)
    exact = headroom_of(0.7, 0.7, "minimum")
    assert exact.status == "ok" and exact.headroom == 0
    latency = headroom_of(1.5, 2.0, "maximum")
    assert latency.status == "ok" and latency.headroom == pytest.approx(0.5)
    assert headroom_of(2.5, 2.0, "maximum").status == "above"
    missing = headroom_of(None, 0.9, "minimum")
    assert missing.status == "missing" and missing.headroom is None
    assert headroom_of(0.1, 0.0, "minimum").relative_headroom is None  # no scale to divide by


def test_model_headroom_covers_every_threshold(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("minimum:\n  exercise_accuracy: 0.90\n  similarity: 0.70\nmaximum:\n  latency_p95_s: 2.0\n")
    rows = model_headroom({"exercise_accuracy": 0.93, "latency_p95_s": 2.4, "other": 1.0}, load_thresholds(path))
    assert {k: r.status for k, r in rows.items()} == {"exercise_accuracy": "ok", "similarity": "missing", "latency_p95_s": "above"}


@pytest.mark.parametrize("text, problem", [
    ("minimum: [0.9]\n", "minimum"),
    ("maximum:\n  x: fast\n", "maximum.x"),
    ("{}\n", "no thresholds"),
    ("minimum:\n  a: 1\nmaximum:\n  a: 2\n", "both"),
    ("minimum: {a: 1\n", "not valid YAML"),
    ("minimun:\n  a: 1\n", "minimun"),
])
def test_bad_thresholds_are_named(tmp_path, text, problem):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        load_thresholds(path)


def test_sources_are_named_by_flag_or_folder(tmp_path):
    assert parse_sources(["int8=a/m.json", "runs/fp32/metrics.json"]) == {"int8": Path("a/m.json"), "fp32": Path("runs/fp32/metrics.json")}
    with pytest.raises(InputError, match="two sources"):
        parse_sources(["x/a/metrics.json", "y/a/metrics.json"])


def test_console_script(tmp_path):
    for name, accuracy in (("fp32", 0.94), ("int8", 0.88)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"n": 10, "metrics": {"exercise_accuracy": accuracy, "similarity": 0.75}}))
    (tmp_path / "t.yaml").write_text("minimum:\n  exercise_accuracy: 0.90\n  similarity: 0.70\n")
    args = [str(BIN / "vt-analyze"), "headroom", "--metrics", f"{tmp_path}/fp32/metrics.json,{tmp_path}/int8/metrics.json",
            "--thresholds", str(tmp_path / "t.yaml")]
    result = subprocess.run([*args, "--out", str(tmp_path / "h")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "h/headroom.json").read_text())
    assert report["models"]["fp32"]["exercise_accuracy"]["headroom"] == pytest.approx(0.04)
    assert report["models"]["int8"]["exercise_accuracy"]["status"] == "below"
    assert report["summary"]["int8"] == {"meets_all": False, "misses": ["exercise_accuracy"], "missing": [],
                                         "tightest": "exercise_accuracy"}
    assert report["summary"]["fp32"]["meets_all"] and (tmp_path / "h/run.json").is_file()

    strict = subprocess.run([*args, "--out", str(tmp_path / "s"), "--strict"], capture_output=True, text=True)
    assert strict.returncode == 1
    bad = subprocess.run([*args[:-1], str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr.replace("\n", "")


def test_help_has_an_example():
    result = subprocess.run([str(BIN / "vt-analyze"), "headroom", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "vt-analyze headroom --metrics" in result.stdout.replace("\n", " ")
