"""vt-judge score killed with SIGKILL mid-run keeps every answered verdict; the rerun asks only for the rest."""

import os
import signal
import subprocess
import time

from judge_fakes import make_predictions
from test_judge_cli import VT_JUDGE, run

from videotune.core.io import read_jsonl, write_jsonl
from videotune.core.schemas import Verdict


def _complete_lines(path):
    if not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().splitlines(keepends=True) if line.endswith(b"\n"))


def test_kill_9_keeps_the_answered_verdicts_and_the_rerun_asks_only_for_the_rest(chat_server, tmp_path):
    n = 40
    predictions = tmp_path / "predictions.jsonl"
    write_jsonl(predictions, make_predictions(n))
    out = tmp_path / "judge"
    verdicts = out / "verdicts.jsonl"
    chat_server.delay_s = 0.2  # two in flight: about 4 s for all forty, time enough to kill it halfway
    args = ["score", "--predictions", str(predictions), "--base-url", chat_server.url, "--model", "m",
            "--out", str(out), "--no-answer-cache", "--concurrency", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("VT_JUDGE_API_KEY", "OPENAI_API_KEY")}
    process = subprocess.Popen([VT_JUDGE, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(chat_server.requests) < 22:  # twenty answered at least: two requests are in flight at a time
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the judge was not asked"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    assert _complete_lines(verdicts) >= 15  # the answered ones (less any a reply was still in transit for)
    kept = read_jsonl(verdicts, Verdict)  # every complete line is a valid verdict
    assert len(kept) < n
    assert all(v.status == "ok" for v in kept)
    asked_before = len(chat_server.requests)

    chat_server.delay_s = 0.0
    result = run(args)
    assert result.returncode == 0, result.stderr
    assert len(chat_server.requests) - asked_before == n - len(kept)  # only the ones not on disk
    final = read_jsonl(verdicts, Verdict)
    assert [v.id for v in final] == [p.id for p in make_predictions(n)]  # each once, in input order
    kept_by_id = {v.id: v for v in kept}
    assert all(v == kept_by_id[v.id] for v in final if v.id in kept_by_id)
