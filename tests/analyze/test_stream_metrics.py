import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from videotune.analyze.cli import app
from videotune.analyze.stream import Utterance, match_utterances, prf, stream_scores
from videotune.core.io import InputError, write_jsonl
from videotune.core.schemas import DstNode, StreamEvent, StreamExample, StreamFrame

NOT = {"S1": "not_started", "S2": "not_started"}
RUN = {"S1": "in_progress", "S2": "not_started"}
DONE = {"S1": "completed", "S2": "in_progress"}


def same_text(preds, refs):
    """A hand-made similarity: 1 for the same text, 0.5 for the same first word, else 0."""
    return np.array([[1.0 if p == r else 0.5 if p.split()[:1] == r.split()[:1] else 0.0 for r in refs] for p in preds])


def u(t, text):
    return Utterance("v", int(t * 2), t, text)


def test_prf():
    assert prf(2, 4, 2) == (0.5, 1.0, pytest.approx(2 / 3))
    assert prf(0, 0, 3) == (0.0, 0.0, 0.0)  # never speaking: precision undefined, reported 0


def test_matching_one_to_one_inside_the_window():
    refs = [u(2.0, "attach the red block"), u(10.0, "well done")]
    # on time, and 1.5 s late (inside the 2 s late window)
    m = match_utterances([u(2.0, "attach the red block"), u(11.5, "well done")], refs, same_text)
    assert [(p.t_s, r.t_s) for p, r, _ in m.matched] == [(2.0, 2.0), (11.5, 10.0)] and not m.missed
    # 3 s late: outside the window, so one redundant and one missed
    m = match_utterances([u(13.0, "well done")], refs, same_text)
    assert not m.matched and [r.t_s for r in m.missed] == [2.0, 10.0] and [p.t_s for p in m.redundant] == [13.0]
    # 1.5 s early is outside the 1 s early window
    m = match_utterances([u(0.5, "attach the red block")], refs, same_text)
    assert not m.matched
    # two predictions for one reference: one matched, the other redundant
    m = match_utterances([u(2.0, "attach the red block"), u(2.5, "attach the red block")], refs[:1], same_text)
    assert len(m.matched) == 1 and m.matched[0][0].t_s == 2.0 and len(m.redundant) == 1


def test_matching_prefers_meaning_over_a_small_time_gap():
    refs = [u(5.0, "careful it slipped"), u(5.5, "now attach the wheel")]
    preds = [u(5.0, "now attach the wheel"), u(5.5, "careful it slipped")]
    m = match_utterances(preds, refs, same_text)
    assert sorted((p.text, r.text) for p, r, _ in m.matched) == [
        ("careful it slipped", "careful it slipped"), ("now attach the wheel", "now attach the wheel")]
    # a pair with nothing in common costs more than leaving the prediction unmatched plus the distance cost
    m = match_utterances([u(5.0, "zzz")], [u(3.0, "careful it slipped")], same_text)
    assert not m.matched and len(m.redundant) == 1 and len(m.missed) == 1


def _example():
    frames = [
        StreamFrame(t_s=0.0, dst_update=False, dst=NOT, speak=False),
        StreamFrame(t_s=0.5, dst_update=True, dst_delta={"S1": "in_progress"}, dst=RUN, speak=True,
                    response="attach the red block"),
        StreamFrame(t_s=1.0, dst_update=False, dst=RUN, speak=False),
        StreamFrame(t_s=1.5, dst_update=True, dst_delta={"S1": "completed", "S2": "in_progress"}, dst=DONE, speak=True,
                    response="now attach the wheel"),
    ]
    return StreamExample(id="v", video_id="v", media="v.mp4", fps=2.0, duration_s=2.0,
                         nodes=[DstNode(id="S1", name="a"), DstNode(id="S2", name="b")], frames=frames)


def _event(frame, t, speak=False, response="", update=False, dst=NOT):
    return StreamEvent(id=f"v@{frame}", video_id="v", frame=frame, t_s=t, speak_prob=0.9 if speak else 0.1, speak=speak,
                       response=response, dst_update_prob=0.9 if update else 0.1, dst_update=update, dst=dst)


def _events():
    # speaks at frames 1 (right) and 2 (a frame late, another text); updates at 1 (right) and 2 (late, partial)
    return [
        _event(0, 0.0),
        _event(1, 0.5, speak=True, response="attach the red block", update=True, dst=RUN),
        _event(2, 1.0, speak=True, response="now attach the wheel", update=True, dst={"S1": "completed", "S2": "not_started"}),
        _event(3, 1.5, dst={"S1": "completed", "S2": "not_started"}),
    ]


def test_decisions_state_and_baseline():
    metrics, per_video, rows = stream_scores(_events(), [_example()], same_text, Path("events.jsonl"))
    m = metrics.metrics
    assert m["speak_precision"] == 0.5 and m["speak_recall"] == 0.5 and m["speak_f1"] == 0.5
    assert m["dst_update_f1"] == 0.5 and m["dst_update_exact"] == 0.5
    # nodes right per frame: 2, 2, 1, 1 of 2 -> 6/8; whole state right at frames 0 and 1
    assert m["dst_state_accuracy"] == 6 / 8 and m["dst_state_exact"] == 2 / 4
    # both utterances match: the second 0.5 s early, inside the window
    assert m["matched_f1"] == 1.0 and len([r for r in rows if r["kind"] == "matched"]) == 2
    assert m["baseline_always_silent/speak_f1"] == 0.0 and m["baseline_always_silent/matched_f1"] == 0.0
    # the silent baseline keeps every node not started: right for 2 + 1 + 1 + 0 of 8 node-frames
    assert m["baseline_always_silent/dst_state_accuracy"] == 4 / 8
    assert m["baseline_always_silent/dst_state_exact"] == 1 / 4
    assert per_video[0]["id"] == "v" and per_video[0]["scores"]["speak_f1"] == 0.5


def test_a_cut_stream_is_refused():
    with pytest.raises(InputError, match="has 3 events for 4 reference frames"):
        stream_scores(_events()[:3], [_example()], same_text, Path("events.jsonl"))


def test_cli_scores_text_on_matched_pairs(tmp_path):
    events, refs = tmp_path / "events.jsonl", tmp_path / "test.jsonl"
    write_jsonl(events, _events())
    write_jsonl(refs, [_example()])
    result = CliRunner().invoke(app, ["metrics", "--task", "stream", "--predictions", str(events), "--references",
                                      str(refs), "--out", str(tmp_path / "m"), "--n-bootstrap", "0"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())["metrics"]
    # both matched pairs are word for word the reference
    assert metrics["response_bleu_4"] == pytest.approx(1.0) and metrics["response_meteor"] > 0.9
    assert metrics["response_embedding_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "m" / "per_example.jsonl").is_file() and (tmp_path / "m" / "matches.jsonl").is_file()
    missing = CliRunner().invoke(app, ["metrics", "--task", "stream", "--predictions", str(events),
                                       "--out", str(tmp_path / "n")])
    assert missing.exit_code == 2 and "--references" in missing.output


def test_intervals_resample_videos():
    second = _example().model_copy(update={"id": "w", "video_id": "w"})
    perfect = [e.model_copy(update={"id": f"w@{e.frame}", "video_id": "w", "speak": f.speak, "response": f.response,
                                    "dst_update": f.dst_update, "dst": f.dst})
               for e, f in zip(_events(), second.frames)]
    metrics, _, _ = stream_scores(_events() + perfect, [_example(), second], same_text, Path("e.jsonl"),
                                  n_bootstrap=400, seed=1)
    lo, hi = metrics.ci95["speak_f1"]
    # resamples hold 0, 1 or 2 copies of the perfect video: F1 ranges from 0.5 (none) to 1.0 (only it)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(1.0)
    assert metrics.metrics["speak_f1"] == pytest.approx(0.75) and lo <= 0.75 <= hi
    assert set(metrics.ci95) == {"speak_f1", "dst_update_f1", "matched_f1", "dst_state_accuracy", "dst_state_exact"}
    same, _, _ = stream_scores(_events(), [_example()], same_text, Path("e.jsonl"), n_bootstrap=50)
    assert same.ci95["speak_f1"] == pytest.approx((0.5, 0.5))
