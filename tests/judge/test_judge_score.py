"""Scoring against the fault-injecting chat completions server: retries, statuses, cache, resume."""

import json
import time

import pytest
from judge_fakes import make_predictions

from videotune.core.io import read_jsonl, write_jsonl
from videotune.core.schemas import Prediction, Verdict
from videotune.judge.backends import FatalBackendError, OpenAIBackend, parse_retry_after
from videotune.judge.cache import AnswerCache
from videotune.judge.judge import Judge, score_one, score_predictions, summarize
from videotune.judge.rubric import load_rubric

VALID = json.dumps({"rationale": "fine", "accuracy": 4, "usefulness": 3})


def make_judge(server, tmp_path, cache=False, rubric="holistic", **kw):
    options = dict(timeout_s=2.0, max_retries=3, backoff_s=0.001, max_backoff_s=0.01, concurrency=4)
    options.update(kw)
    backend = OpenAIBackend(server.url, "judge-model", **options)
    return Judge(backend, load_rubric(rubric), AnswerCache(tmp_path / "cache" if cache else None))


def one(server, tmp_path, **kw):
    judge = make_judge(server, tmp_path, **kw)
    verdict = score_one(judge, make_predictions(1)[0])
    judge.backend.close()
    return verdict, judge


def test_request_shape(chat_server, tmp_path):
    verdict, judge = one(chat_server, tmp_path, seed=7)
    assert verdict.status == "ok" and set(verdict.scores) == {"accuracy", "usefulness"}
    assert verdict.overall == sum(verdict.scores.values()) / 2
    assert verdict.judge == "openai:judge-model" and verdict.rubric == "holistic@1.0"
    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["model"] == "judge-model" and body["temperature"] == 0 and body["seed"] == 7
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == load_rubric("holistic").output_schema
    assert "authorization" not in {k.lower() for k in request["headers"]}  # no key in the env: none sent


def test_500_is_retried(chat_server, tmp_path):
    chat_server.script.extend([{"status": 500}, {"status": 502}, {"content": VALID}])
    verdict, judge = one(chat_server, tmp_path)
    assert verdict.status == "ok" and verdict.scores == {"accuracy": 4, "usefulness": 3}
    assert len(chat_server.requests) == 3 and judge.backend.counter.get("retries") == 2


def test_429_honours_retry_after(chat_server, tmp_path):
    chat_server.script.extend([{"status": 429, "headers": {"Retry-After": "0.4"}}, {"content": VALID}])
    verdict, _ = one(chat_server, tmp_path, backoff_s=0.001)
    assert verdict.status == "ok"
    waited = chat_server.times[1] - chat_server.times[0]
    assert waited >= 0.4, f"retried after {waited:.3f} s, before the server's Retry-After"


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 5) == 5.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    assert parse_retry_after("999999") == 600.0


def test_timeout_is_retried(chat_server, tmp_path):
    chat_server.script.extend([{"sleep": 1.0}, {"content": VALID}])
    start = time.monotonic()
    verdict, judge = one(chat_server, tmp_path, timeout_s=0.2)
    assert verdict.status == "ok" and len(chat_server.requests) == 2
    assert time.monotonic() - start < 1.0  # the client gave up on the slow reply, it did not wait for it


def test_connection_refused_ends_in_error(tmp_path):
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m", max_retries=2, backoff_s=0.001, max_backoff_s=0.001, timeout_s=0.5)
    judge = Judge(backend, load_rubric("holistic"), AnswerCache(None))
    verdict = score_one(judge, make_predictions(1)[0])
    assert verdict.status == "error" and verdict.scores == {} and verdict.overall is None
    assert "3 attempts" in verdict.rationale and backend.counter.get("requests") == 3


def test_retries_exhausted_is_error_never_a_score(chat_server, tmp_path):
    chat_server.script.extend([{"status": 503}] * 4)
    verdict, judge = one(chat_server, tmp_path, max_retries=3)
    assert verdict.status == "error" and verdict.scores == {} and verdict.overall is None
    assert "HTTP 503" in verdict.rationale and len(chat_server.requests) == 4


def test_truncated_json_reasked_three_times_then_unparseable(chat_server, tmp_path):
    truncated = '{"rationale": "fine", "accuracy": 4, "usef'
    chat_server.script.extend([{"content": truncated}] * 4)
    verdict, judge = one(chat_server, tmp_path)
    assert verdict.status == "unparseable"
    assert verdict.scores == {} and verdict.overall is None  # never a default score
    assert verdict.raw == truncated
    assert len(chat_server.requests) == 4  # the question and 3 re-asks, no more
    last = chat_server.requests[-1]["body"]["messages"]
    # Each re-ask shows the judge its invalid answer and what is wrong with it.
    assert [m["role"] for m in last[-2:]] == ["assistant", "user"] and last[-2]["content"] == truncated
    assert "could not be used" in last[-1]["content"]


def test_schema_invalid_answers_are_reasked(chat_server, tmp_path):
    chat_server.script.extend([
        {"content": json.dumps({"rationale": "x", "accuracy": 7, "usefulness": 3})},
        {"content": json.dumps({"rationale": "x", "accuracy": 4})},
        {"content": VALID},
    ])
    verdict, judge = one(chat_server, tmp_path)
    assert verdict.status == "ok" and verdict.scores == {"accuracy": 4, "usefulness": 3}
    assert len(chat_server.requests) == 3
    problems = [r["body"]["messages"][-1]["content"] for r in chat_server.requests[1:]]
    assert "7 is greater than the maximum of 5" in problems[0]
    assert "'usefulness' is a required property" in problems[1]


def test_200_with_broken_body_is_retried(chat_server, tmp_path):
    chat_server.script.extend([{"body": b'{"choices": [{"mess'}, {"content": VALID}])
    verdict, _ = one(chat_server, tmp_path)
    assert verdict.status == "ok" and len(chat_server.requests) == 2


def test_400_on_json_schema_falls_back_and_remembers(chat_server, tmp_path):
    chat_server.reject_formats = {"json_schema"}
    judge = make_judge(chat_server, tmp_path)
    verdicts = [score_one(judge, p) for p in make_predictions(3)]
    assert all(v.status == "ok" for v in verdicts)
    formats = [(r["body"].get("response_format") or {}).get("type", "plain") for r in chat_server.requests]
    # One 400, then json_object for this and every later request.
    assert formats == ["json_schema", "json_object", "json_object", "json_object"]
    assert judge.backend.response_format == "json_object"


def test_400_on_every_structured_format_falls_back_to_plain(chat_server, tmp_path):
    chat_server.reject_formats = {"json_schema", "json_object"}
    verdict, judge = one(chat_server, tmp_path)
    assert verdict.status == "ok" and judge.backend.response_format == "plain"
    assert "response_format" not in chat_server.requests[-1]["body"]


def test_400_even_without_response_format_is_error(chat_server, tmp_path):
    chat_server.reject_formats = {"json_schema", "json_object", "plain"}
    verdict, _ = one(chat_server, tmp_path)
    assert verdict.status == "error" and "400" in verdict.rationale and verdict.scores == {}


def test_401_stops_the_run(chat_server, tmp_path):
    chat_server.script.append({"status": 401})
    judge = make_judge(chat_server, tmp_path)
    with pytest.raises(FatalBackendError, match="401"):
        score_one(judge, make_predictions(1)[0])


def test_failed_prediction_is_not_sent_to_the_judge(chat_server, tmp_path):
    judge = make_judge(chat_server, tmp_path)
    failed = Prediction(id="x", model="m", prompt="p", prediction="", reference="r", status="error", error="bad video")
    verdict = score_one(judge, failed)
    assert verdict.status == "error" and "bad video" in verdict.rationale and chat_server.requests == []


def test_cache_second_run_makes_no_request(chat_server, tmp_path):
    predictions = make_predictions(5)
    chat_server.script.append({"content": "not json"})  # an unparseable first answer is cached too
    first = score_predictions(predictions, make_judge(chat_server, tmp_path, cache=True), tmp_path / "a" / "v.jsonl", 2)
    asked = len(chat_server.requests)
    assert asked == 6
    judge = make_judge(chat_server, tmp_path, cache=True)
    second = score_predictions(predictions, judge, tmp_path / "b" / "v.jsonl", 2)
    assert len(chat_server.requests) == asked, "a rerun must cost nothing"
    assert judge.backend.counter.get("cache_hits") == 6
    assert [v.model_dump() for v in first] == [v.model_dump() for v in second]


def test_cache_key_changes_with_the_model_and_the_sampling(chat_server, tmp_path):
    p = make_predictions(1)
    score_predictions(p, make_judge(chat_server, tmp_path, cache=True), tmp_path / "a" / "v.jsonl", 1)
    score_predictions(p, make_judge(chat_server, tmp_path, cache=True, seed=1), tmp_path / "b" / "v.jsonl", 1)
    assert len(chat_server.requests) == 2


def test_resume_after_interruption_every_id_once(chat_server, tmp_path):
    predictions = make_predictions(8)
    out = tmp_path / "verdicts.jsonl"
    # The 4th request is refused with 401: the run stops with 3 verdicts written.
    chat_server.script.extend([{}, {}, {}, {"status": 401}])
    with pytest.raises(FatalBackendError):
        score_predictions(predictions, make_judge(chat_server, tmp_path), out, 1)
    written = read_jsonl(out, Verdict)
    assert len(written) == 3
    # A kill mid-write leaves half a line: it is dropped on resume, and that id asked again.
    with open(out, "a") as fh:
        fh.write('{"id": "clip003", "judge": "openai:judge-mo')
    before = len(chat_server.requests)
    verdicts = score_predictions(predictions, make_judge(chat_server, tmp_path), out, 3)
    assert len(chat_server.requests) - before == 5  # only the ids not done
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [p.id for p in predictions]  # each id exactly once, in input order
    assert [v.id for v in verdicts] == [p.id for p in predictions]


def test_rerun_asks_again_only_for_errors(chat_server, tmp_path):
    predictions = make_predictions(4)
    out = tmp_path / "verdicts.jsonl"
    chat_server.script.extend([{}, {"status": 503}, {"status": 503}, {}, {}])
    first = score_predictions(predictions, make_judge(chat_server, tmp_path, max_retries=1), out, 1)
    assert [v.status for v in first] == ["ok", "error", "ok", "ok"]
    before = len(chat_server.requests)
    second = score_predictions(predictions, make_judge(chat_server, tmp_path), out, 1)
    assert len(chat_server.requests) - before == 1
    assert [v.status for v in second] == ["ok"] * 4
    assert [v.scores for i, v in enumerate(second) if i != 1] == [v.scores for i, v in enumerate(first) if i != 1]


def test_output_of_another_judge_is_refused(chat_server, tmp_path):
    from videotune.core.io import InputError

    out = tmp_path / "verdicts.jsonl"
    write_jsonl(out, [Verdict(id="clip000", judge="openai:other", rubric="holistic@1.0", status="ok",
                              scores={"accuracy": 1, "usefulness": 1}, overall=1.0)])
    with pytest.raises(InputError, match="another --out"):
        score_predictions(make_predictions(2), make_judge(chat_server, tmp_path), out, 1)


def test_concurrency_limit(chat_server, tmp_path):
    chat_server.delay_s = 0.15
    start = time.monotonic()
    verdicts = score_predictions(make_predictions(8), make_judge(chat_server, tmp_path), tmp_path / "v.jsonl", 4)
    elapsed = time.monotonic() - start
    assert all(v.status == "ok" for v in verdicts)
    assert 1 < chat_server.max_in_flight <= 4
    assert elapsed < 8 * 0.15  # in parallel, not one after the other


def test_summary_rates_and_means():
    rubric = load_rubric("holistic")
    base = dict(judge="j", rubric="holistic@1.0")
    verdicts = [
        Verdict(id="a", status="ok", scores={"accuracy": 4, "usefulness": 2}, overall=3.0, **base),
        Verdict(id="b", status="ok", scores={"accuracy": 2, "usefulness": 2}, overall=2.0, **base),
        Verdict(id="c", status="unparseable", raw="??", **base),
        Verdict(id="d", status="error", **base),
    ]
    summary = summarize(verdicts, rubric)
    assert summary["n"] == 4 and summary["counts"] == {"ok": 2, "unparseable": 1, "error": 1}
    assert summary["parse_failure_rate"] == round(1 / 3, 4) and summary["error_rate"] == 0.25
    assert summary["mean"] == {"accuracy": 3.0, "usefulness": 2.0} and summary["overall_mean"] == 2.5
