"""Order-swapped pairwise judging: a preference counts only when both orders agree."""

import json

import pytest
from judge_fakes import first_user, make_predictions

from videotune.core.io import InputError
from videotune.judge.backends import OpenAIBackend
from videotune.judge.cache import AnswerCache
from videotune.judge.judge import Judge, judge_pairs, make_pairs, summarize_pairs
from videotune.judge.rubric import load_rubric


def _files():
    a = make_predictions(4, model="model-a")
    b = make_predictions(4, model="model-b")
    # A's answer is the better one on items 0 and 1, B's on item 2; item 3 is a draw.
    for i in (0, 1):
        a[i] = a[i].model_copy(update={"prediction": "GOOD " + a[i].prediction})
    b[2] = b[2].model_copy(update={"prediction": "GOOD " + b[2].prediction})
    return a, b


def _judge(server):
    backend = OpenAIBackend(server.url, "judge", max_retries=1, backoff_s=0.001, timeout_s=2)
    return Judge(backend, load_rubric("holistic"), AnswerCache(None))


def test_consistent_judge(chat_server, tmp_path):
    pairs, unmatched = make_pairs(*_files())
    rows = judge_pairs(pairs, _judge(chat_server), tmp_path / "pairwise.jsonl", 2)
    assert [r.preference for r in rows] == ["a", "a", "b", "tie"]
    assert all(r.winner_ab == r.winner_ba for r in rows)
    assert len(chat_server.requests) == 8  # every pair in both orders
    shown_first = {first_user(r["body"]).split("Answer 1:\n")[1][:4] for r in chat_server.requests}
    assert shown_first == {"GOOD", "Knee"}
    summary = summarize_pairs(rows, unmatched)
    assert summary["preferences"] == {"a": 2, "b": 1, "tie": 1, "inconsistent": 0}
    assert summary["consistency_rate"] == 1.0 and summary["a_win_rate"] == 0.5
    assert summary["model_a"] == "model-a" and summary["model_b"] == "model-b"


def test_position_biased_judge_is_inconsistent(chat_server, tmp_path):
    # A judge that always picks the first answer shown prefers A in one order and B in the other.
    chat_server.answer = lambda body: json.dumps({"rationale": "first is best", "winner": "1"})
    pairs, unmatched = make_pairs(*_files())
    rows = judge_pairs(pairs, _judge(chat_server), tmp_path / "pairwise.jsonl", 1)
    assert [(r.winner_ab, r.winner_ba, r.preference) for r in rows] == [("a", "b", "inconsistent")] * 4
    summary = summarize_pairs(rows, unmatched)
    assert summary["preferences"]["inconsistent"] == 4
    assert summary["consistency_rate"] == 0.0 and summary["a_win_rate"] == 0.0


def test_unparseable_side_gives_no_preference(chat_server, tmp_path):
    chat_server.script.extend([{"content": "A is better"}] * 4)  # the first order never answers in JSON
    pairs, _ = make_pairs(*_files())
    rows = judge_pairs(pairs[:1], _judge(chat_server), tmp_path / "pairwise.jsonl", 1)
    assert rows[0].status == "unparseable" and rows[0].preference is None
    assert rows[0].winner_ab is None and rows[0].raw_ab == "A is better"


def test_pairs_need_the_same_reference():
    a, b = _files()
    b[0] = b[0].model_copy(update={"reference": "something else"})
    with pytest.raises(InputError, match="different references"):
        make_pairs(a, b)
    with pytest.raises(InputError, match="share no id"):
        make_pairs(a, make_predictions(2, prefix="other"))
    pairs, unmatched = make_pairs(a[:3], _files()[1])
    assert len(pairs) == 3 and unmatched == {"only_in_a": 0, "only_in_b": 1}
