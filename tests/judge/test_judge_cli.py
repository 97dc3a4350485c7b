"""End to end: the vt-judge console script against the fake chat completions server."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videotune.core.io import read_jsonl
from videotune.core.schemas import Verdict

SECRET = "sk-test-DO-NOT-LEAK-0123456789"
VT_JUDGE = shutil.which("vt-judge", path=str(Path(sys.executable).parent)) or "vt-judge"


def run(args, env_extra=None, timeout=60):
    """The console script in its own process: what a user runs, with its real stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("VT_JUDGE_API_KEY", "OPENAI_API_KEY")}
    env.update(env_extra or {})
    return subprocess.run([VT_JUDGE, *args], capture_output=True, text=True, env=env, timeout=timeout)


def invoke(args, monkeypatch, env_extra=None):
    """The same command in this process (a second faster than a subprocess); result.exit_code, .stdout, .stderr."""
    from typer.testing import CliRunner

    from videotune.judge.cli import app

    for name in ("VT_JUDGE_API_KEY", "OPENAI_API_KEY", "VT_JUDGE_BASE_URL", "VT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env_extra or {}).items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(app, args)


def test_score_end_to_end_keeps_the_key_secret(chat_server, predictions_file, tmp_path):
    out, cache = tmp_path / "judge", tmp_path / "cache"
    chat_server.script.extend([{"status": 500}, {"content": "no json here"}])  # a retry and a re-ask
    env = {"VT_JUDGE_API_KEY": SECRET, "VT_JUDGE_BASE_URL": chat_server.url, "VT_JUDGE_MODEL": "mixtral-judge"}
    args = ["score", "--predictions", str(predictions_file), "--rubric", "clinical", "--backend", "openai",
            "--out", str(out), "--answer-cache-dir", str(cache), "--backoff-s", "0.001", "--concurrency", "2"]
    result = run(args, env)
    assert result.returncode == 0, result.stderr

    verdicts = read_jsonl(out / "verdicts.jsonl", Verdict)
    assert [v.id for v in verdicts] == [f"clip{i:03d}" for i in range(6)]
    assert all(v.status == "ok" and v.judge == "openai:mixtral-judge" and v.rubric == "clinical@1.0" for v in verdicts)
    assert all(set(v.scores) == {"clinical_accuracy", "actionability", "root_cause", "completeness", "overall"}
               for v in verdicts)
    assert all(v.overall == v.scores["overall"] for v in verdicts)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6 and summary["parse_failure_rate"] == 0.0 and summary["error_rate"] == 0.0
    assert set(summary["mean"]) == set(verdicts[0].scores)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["base_url"] == chat_server.url and manifest["config"]["model"] == "mixtral-judge"
    assert manifest["this_run"]["requests"] == 8 and manifest["inputs"]["rubric"]["sha256"]

    # The key was used...
    assert all(r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in chat_server.requests)
    # ...and is nowhere in what the run wrote or printed.
    for path in [*out.rglob("*"), *cache.rglob("*")]:
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in result.stdout + result.stderr

    # A rerun into a fresh folder costs nothing: every answer comes from the cache.
    before = len(chat_server.requests)
    again = run([*args[:-8], "--out", str(tmp_path / "again"), *args[-6:]], env)
    assert again.returncode == 0, again.stderr
    assert len(chat_server.requests) == before
    assert (tmp_path / "again" / "verdicts.jsonl").read_text() == (out / "verdicts.jsonl").read_text()
    assert json.loads((tmp_path / "again" / "run.json").read_text())["this_run"]["cache_hits"] == 7


def test_unparseable_and_error_end_to_end(chat_server, predictions_file, tmp_path, monkeypatch):
    out = tmp_path / "judge"
    chat_server.script.extend([{"content": '{"rationale": "x", "accuracy": 9, "usefulness": 1}'}] * 4)
    result = invoke(["score", "--predictions", str(predictions_file), "--base-url", chat_server.url, "--model", "m",
                  "--out", str(out), "--no-answer-cache", "--concurrency", "1"], monkeypatch)
    assert result.exit_code == 0, result.stderr
    verdicts = read_jsonl(out / "verdicts.jsonl", Verdict)
    assert verdicts[0].status == "unparseable" and verdicts[0].scores == {} and verdicts[0].overall is None
    assert '"accuracy": 9' in verdicts[0].raw
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"ok": 5, "unparseable": 1, "error": 0}
    assert summary["parse_failure_rate"] == round(1 / 6, 4)


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--base-url", "http://127.0.0.1:9/v1"], {}, "VT_JUDGE_MODEL"),
        (["--model", "m"], {}, "VT_JUDGE_BASE_URL"),
        (["--model", "m", "--base-url", "ftp://x"], {}, "http://"),
        (["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--rubric", "nope"], {}, "shipped rubrics"),
        (["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--max-reasks", "4"], {}, "max-reasks"),
    ],
)
def test_bad_usage_exits_2(predictions_file, tmp_path, args, env, message, monkeypatch):
    result = invoke(["score", "--predictions", str(predictions_file), "--out", str(tmp_path / "o"), *args], monkeypatch, env)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr


def test_unauthorized_is_bad_input(chat_server, predictions_file, tmp_path, monkeypatch):
    """A 401 names a wrong key, URL or model: exit 2 in one line, no traceback."""
    chat_server.script.append({"status": 401})
    result = invoke(["score", "--predictions", str(predictions_file), "--base-url", chat_server.url, "--model", "m",
                     "--out", str(tmp_path / "o"), "--no-answer-cache", "--concurrency", "1"], monkeypatch,
                    {"OPENAI_API_KEY": SECRET})
    assert result.exit_code == 2
    assert "401" in result.stderr and SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_pairwise_end_to_end(chat_server, tmp_path, monkeypatch):
    from judge_fakes import make_predictions

    from videotune.core.io import write_jsonl

    a = make_predictions(3, model="a")
    a[0] = a[0].model_copy(update={"prediction": "GOOD answer"})
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", make_predictions(3, model="b"))
    out = tmp_path / "pw"
    result = invoke(["pairwise", "--predictions-a", str(tmp_path / "a.jsonl"), "--predictions-b", str(tmp_path / "b.jsonl"),
                     "--base-url", chat_server.url, "--model", "m", "--out", str(out), "--no-answer-cache"], monkeypatch)
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preferences"] == {"a": 1, "b": 0, "tie": 2, "inconsistent": 0}
    assert len((out / "pairwise.jsonl").read_text().splitlines()) == 3


def test_help_has_an_example(monkeypatch):
    result = invoke(["score", "--help"], monkeypatch)
    assert result.exit_code == 0 and "vt-judge score --predictions" in result.stdout


def test_every_request_failing_exits_1_with_the_counts(predictions_file, tmp_path):
    """A closed port: every verdict is an error, and the run says so instead of exiting 0."""
    result = run(["score", "--predictions", str(predictions_file), "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                  "--out", str(tmp_path / "o"), "--no-answer-cache", "--max-retries", "0"])
    assert result.returncode == 1, result.stderr
    assert "6 of 6 verdicts ended in error (0 ok, 0 unparseable)" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(read_jsonl(tmp_path / "o" / "verdicts.jsonl", Verdict)) == 6  # the errors are recorded


def test_one_error_among_answers_exits_1(chat_server, predictions_file, tmp_path, monkeypatch):
    from judge_fakes import make_predictions

    from videotune.core.io import write_jsonl

    predictions = make_predictions(3)
    predictions[1] = predictions[1].model_copy(update={"status": "error", "error": "decode failed", "prediction": ""})
    write_jsonl(tmp_path / "p.jsonl", predictions)
    result = invoke(["score", "--predictions", str(tmp_path / "p.jsonl"), "--base-url", chat_server.url, "--model", "m",
                     "--out", str(tmp_path / "o"), "--no-answer-cache"], monkeypatch)
    assert result.exit_code == 1
    assert "1 of 3 verdicts ended in error (2 ok, 0 unparseable)" in result.stderr


def test_empty_predictions_exit_2(chat_server, tmp_path, monkeypatch):
    (tmp_path / "p.jsonl").write_text("")
    result = invoke(["score", "--predictions", str(tmp_path / "p.jsonl"), "--base-url", chat_server.url, "--model", "m",
                     "--out", str(tmp_path / "o")], monkeypatch)
    assert result.exit_code == 2
    assert "no predictions" in result.stderr and not chat_server.requests
