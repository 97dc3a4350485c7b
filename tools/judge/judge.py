"""Scoring: ask the judge, validate its answer, re-ask on an invalid one, never invent a score.

`score_predictions` writes verdicts.jsonl resumably (ids already there are skipped, ids that
ended in `error` are asked again) and finally rewrites it in the order of the predictions, so
the same inputs give the same file whatever the concurrency. `pairwise` does the same for
order-swapped comparisons of two prediction files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal, TypeVar

import jsonschema
from pydantic import BaseModel, ConfigDict

from videotune.core.io import InputError, ResumableJsonl, iter_jsonl, write_jsonl
from videotune.core.progress import Progress
from videotune.core.schemas import Prediction, Verdict
from videotune.judge.backends import Backend, TransportError
from videotune.judge.cache import AnswerCache, cache_key
from videotune.judge.rubric import PAIRWISE_SCHEMA, Rubric, check_json_answer, question_of

log = logging.getLogger("videotune.judge")
R = TypeVar("R", bound=BaseModel)

MAX_REASKS = 3
REASK = (
    "Your previous answer could not be used: {problem}. Reply again with only the JSON object in the "
    "requested form: every field present, each score an integer from 1 to 5."
)


class Asked(BaseModel):
    """What one question to the judge came to: a valid answer, or the last invalid one and why."""

    value: dict[str, Any] | None
    raw: str
    problem: str = ""
    answers: int


class Judge:
    """A backend, a rubric and a cache: asks, validates, re-asks at most `max_reasks` times."""

    def __init__(self, backend: Backend, rubric: Rubric, cache: AnswerCache, max_reasks: int = MAX_REASKS):
        if not 0 <= max_reasks <= MAX_REASKS:
            raise InputError(f"max_reasks must be between 0 and {MAX_REASKS}, got {max_reasks}")
        self.backend = backend
        self.rubric = rubric
        self.cache = cache
        self.max_reasks = max_reasks

    def ask(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        schema_name: str,
        check: Callable[[str], tuple[dict[str, Any] | None, str]],
    ) -> Asked:
        conversation = list(messages)
        raw, problem = "", ""
        for answer in range(1, self.max_reasks + 2):
            key = cache_key(self.backend.judge, self.rubric.id, conversation, self.backend.sampling)
            raw = self.cache.get(key)
            if raw is None:
                raw = self.backend.complete(conversation, schema, schema_name)
                self.cache.put(key, raw, {"judge": self.backend.judge, "rubric": self.rubric.id})
            else:
                self.backend.counter.add("cache_hits")
            value, problem = check(raw)
            if value is not None:
                return Asked(value=value, raw=raw, answers=answer)
            # At temperature 0 the same messages give the same answer: show the judge its answer
            # and what is wrong with it, so the next attempt can differ.
            conversation += [
                {"role": "assistant", "content": raw},
                {"role": "user", "content": REASK.format(problem=problem)},
            ]
            self.backend.counter.add("reasks" if answer <= self.max_reasks else "unparseable")
        return Asked(value=None, raw=raw, problem=problem, answers=self.max_reasks + 1)


def score_one(judge: Judge, prediction: Prediction) -> Verdict:
    """The verdict on one prediction. Scores come only from a valid answer; otherwise none."""
    rubric = judge.rubric
    base = {"id": prediction.id, "judge": judge.backend.judge, "rubric": rubric.id}
    if prediction.status != "ok":
        # Nothing to judge: the model produced no prediction. Recorded, never scored.
        return Verdict(**base, status="error", rationale=f"not judged: the prediction has status error ({prediction.error})")
    messages = rubric.render(question_of(prediction), prediction.reference, prediction.prediction)
    try:
        asked = judge.ask(messages, rubric.output_schema, f"{rubric.name}_verdict", rubric.check_answer)
    except TransportError as err:
        return Verdict(**base, status="error", rationale=f"judge unreachable: {err}")
    if asked.value is None:
        return Verdict(**base, status="unparseable", raw=asked.raw,
                       rationale=f"no valid answer in {asked.answers} attempts; last problem: {asked.problem}")
    scores = {name: asked.value[name] for name in rubric.dimension_names}
    return Verdict(**base, status="ok", scores=scores, overall=rubric.overall_of(scores),
                   rationale=str(asked.value.get("rationale", "")), raw=asked.raw)


# --------------------------------------------------------------------------- resumable runs


def _prepare_resume(path: Path, model: type[R], ids: Sequence[str], judge: str, rubric: str) -> int:
    """Check an existing output belongs to this run, and drop its `error` rows so they are asked again.

    Returns how many rows were dropped. Rows of another judge or rubric, or of ids not in the
    input, are refused: mixing them would silently blend two experiments in one file.
    """
    if not path.exists():
        return 0
    ResumableJsonl(path, model).close()  # cuts a last line left half-written by a kill
    wanted = set(ids)
    kept, dropped = [], 0
    for row in iter_jsonl(path, model):
        row_judge, row_rubric = row.judge, row.rubric
        if (row_judge, row_rubric) != (judge, rubric):
            raise InputError(
                f"{path}: id {row.id!r} was judged by {row_judge} with rubric {row_rubric}, not {judge} with "  # type: ignore[attr-defined]
                f"{rubric}; write into another --out"
            )
        if row.id not in wanted:  # type: ignore[attr-defined]
            raise InputError(f"{path}: id {row.id!r} is not in the input; write into another --out")  # type: ignore[attr-defined]
        if row.status == "error":
            dropped += 1
        else:
            kept.append(row)
    if dropped:
        write_jsonl(path, kept)
    return dropped


def run_resumable(
    items: Sequence[Any],
    work: Callable[[Any], R],
    path: Path,
    model: type[R],
    judge: str,
    rubric: str,
    concurrency: int,
    description: str,
) -> list[R]:
    """Apply `work` to every item not yet in `path` (keyed by item.id), `concurrency` at a time.

    Each result is appended (fsynced) as it arrives, so a kill loses at most the ones in
    flight; at the end the file is rewritten in input order.
    """
    ids = [item.id for item in items]
    retried = _prepare_resume(path, model, ids, judge, rubric)
    if retried:
        log.info("%s: asking again for %d ids that ended in error", path, retried)
    with ResumableJsonl(path, model) as sink:
        todo = [item for item in items if item.id not in sink.done]
        log.info("%d items, %d already done, %d to judge", len(items), len(items) - len(todo), len(todo))
        with Progress(description, len(todo)) as progress, ThreadPoolExecutor(max_workers=concurrency) as pool:
            pending: set[Future[R]] = {pool.submit(work, item) for item in todo}
            try:
                while pending:
                    # Each result is written the moment it arrives: a kill loses only those in flight.
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    # Keep every finished result before re-raising a worker's fatal error.
                    failed = [f for f in done if f.exception() is not None]
                    for future in done:
                        if future.exception() is None:
                            sink.append(future.result())
                            progress.advance()
                    if failed:
                        raise failed[0].exception()  # type: ignore[misc]
            except BaseException:
                # Fatal error or Ctrl-C: keep what is written, drop what has not started.
                for future in pending:
                    future.cancel()
                sink.close()
                if path.stat().st_size == 0:
                    path.unlink()  # nothing was answered: no empty verdicts file is left behind
                raise
    by_id = {row.id: row for row in iter_jsonl(path, model)}  # type: ignore[attr-defined]
    ordered = [by_id[i] for i in ids]
    write_jsonl(path, ordered)
    return ordered


def score_predictions(predictions: Sequence[Prediction], judge: Judge, out_path: Path, concurrency: int) -> list[Verdict]:
    ids = [p.id for p in predictions]
    if not ids:
        raise InputError("predictions: no predictions to judge")
    if len(set(ids)) != len(ids):
        raise InputError("predictions: duplicate ids")
    return run_resumable(
        predictions, lambda p: score_one(judge, p), out_path, Verdict,
        judge.backend.judge, judge.rubric.id, concurrency, "judge",
    )


def summarize(verdicts: Sequence[Verdict], rubric: Rubric) -> dict[str, Any]:
    """summary.json: counts, parse-failure and error rates, mean score per dimension over `ok` verdicts.

    The parse-failure rate is over the answers the judge gave (ok + unparseable); the error
    rate over all verdicts. Means are over `ok` verdicts only: an unscored item is not a 3.
    """
    n = len(verdicts)
    counts = {status: sum(v.status == status for v in verdicts) for status in ("ok", "unparseable", "error")}
    answered = counts["ok"] + counts["unparseable"]
    ok = [v for v in verdicts if v.status == "ok"]
    mean = {d: (round(sum(v.scores[d] for v in ok) / len(ok), 4) if ok else None) for d in rubric.dimension_names}
    overall = [v.overall for v in ok if v.overall is not None]
    return {
        "n": n,
        "rubric": rubric.id,
        "judge": verdicts[0].judge if verdicts else None,
        "counts": counts,
        "parse_failure_rate": round(counts["unparseable"] / answered, 4) if answered else None,
        "error_rate": round(counts["error"] / n, 4) if n else None,
        "mean": mean,
        "overall_mean": round(sum(overall) / len(overall), 4) if overall else None,
    }


# --------------------------------------------------------------------------- pairwise


class PairVerdict(BaseModel):
    """One row of pairwise.jsonl: the same pair judged in both orders.

    `winner_ab` is the judge's choice with A shown first, `winner_ba` with B shown first, both
    mapped back to a|b|tie. `preference` counts only when the two agree; otherwise it is
    `inconsistent` (position bias). It is null unless both judgements are valid.
    """

    model_config = ConfigDict(extra="forbid")
    id: str
    judge: str
    rubric: str
    model_a: str
    model_b: str
    winner_ab: Literal["a", "b", "tie"] | None = None
    winner_ba: Literal["a", "b", "tie"] | None = None
    preference: Literal["a", "b", "tie", "inconsistent"] | None = None
    status: Literal["ok", "unparseable", "error"]
    rationale_ab: str = ""
    rationale_ba: str = ""
    raw_ab: str = ""
    raw_ba: str = ""


class Pair(BaseModel):
    id: str
    a: Prediction
    b: Prediction


def make_pairs(a: Sequence[Prediction], b: Sequence[Prediction]) -> tuple[list[Pair], dict[str, int]]:
    """Join two prediction files on id. Both must answer the same reference, else the comparison means nothing."""
    by_id = {p.id: p for p in b}
    pairs = []
    for pa in a:
        pb = by_id.get(pa.id)
        if pb is None:
            continue
        if pa.reference != pb.reference:
            raise InputError(f"id {pa.id!r}: the two prediction files have different references for it")
        pairs.append(Pair(id=pa.id, a=pa, b=pb))
    joined = {p.id for p in pairs}
    unmatched = {"only_in_a": sum(p.id not in joined for p in a), "only_in_b": sum(p.id not in joined for p in b)}
    if not pairs:
        raise InputError("the two prediction files share no id")
    return pairs, unmatched


_PAIRWISE_VALIDATOR = jsonschema.Draft202012Validator(PAIRWISE_SCHEMA)


def _check_pairwise(text: str) -> tuple[dict[str, Any] | None, str]:
    return check_json_answer(text, _PAIRWISE_VALIDATOR, [])


def judge_pair(judge: Judge, pair: Pair) -> PairVerdict:
    rubric = judge.rubric
    base = {"id": pair.id, "judge": judge.backend.judge, "rubric": rubric.id,
            "model_a": pair.a.model, "model_b": pair.b.model}
    if pair.a.status != "ok" or pair.b.status != "ok":
        return PairVerdict(**base, status="error", rationale_ab="not judged: a prediction has status error")
    question = question_of(pair.a)
    results = {}
    for order, (first, second, names) in {
        "ab": (pair.a.prediction, pair.b.prediction, {"1": "a", "2": "b"}),
        "ba": (pair.b.prediction, pair.a.prediction, {"1": "b", "2": "a"}),
    }.items():
        messages = rubric.render_pairwise(question, pair.a.reference, first, second)
        try:
            asked = judge.ask(messages, PAIRWISE_SCHEMA, f"{rubric.name}_pairwise", _check_pairwise)
        except TransportError as err:
            return PairVerdict(**base, status="error", **{f"rationale_{order}": f"judge unreachable: {err}"})
        if asked.value is None:
            results[order] = (None, f"no valid answer in {asked.answers} attempts; last problem: {asked.problem}", asked.raw)
        else:
            winner = asked.value["winner"]
            results[order] = (names.get(winner, "tie"), str(asked.value.get("rationale", "")), asked.raw)
    (w_ab, r_ab, raw_ab), (w_ba, r_ba, raw_ba) = results["ab"], results["ba"]
    valid = w_ab is not None and w_ba is not None
    preference = (w_ab if w_ab == w_ba else "inconsistent") if valid else None
    return PairVerdict(**base, winner_ab=w_ab, winner_ba=w_ba, preference=preference,
                       status="ok" if valid else "unparseable",
                       rationale_ab=r_ab, rationale_ba=r_ba, raw_ab=raw_ab, raw_ba=raw_ba)


def judge_pairs(pairs: Sequence[Pair], judge: Judge, out_path: Path, concurrency: int) -> list[PairVerdict]:
    return run_resumable(
        pairs, lambda p: judge_pair(judge, p), out_path, PairVerdict,
        judge.backend.judge, judge.rubric.id, concurrency, "pairwise",
    )


def summarize_pairs(rows: Sequence[PairVerdict], unmatched: dict[str, int]) -> dict[str, Any]:
    """Win rates count consistent preferences only; `consistency_rate` shows how much position bias there was."""
    n = len(rows)
    ok = [r for r in rows if r.status == "ok"]
    prefs = {k: sum(r.preference == k for r in ok) for k in ("a", "b", "tie", "inconsistent")}
    consistent = prefs["a"] + prefs["b"] + prefs["tie"]
    return {
        "n": n,
        "model_a": rows[0].model_a if rows else None,
        "model_b": rows[0].model_b if rows else None,
        "counts": {s: sum(r.status == s for r in rows) for s in ("ok", "unparseable", "error")},
        "preferences": prefs,
        "consistency_rate": round(consistent / len(ok), 4) if ok else None,
        "a_win_rate": round(prefs["a"] / len(ok), 4) if ok else None,
        "b_win_rate": round(prefs["b"] / len(ok), 4) if ok else None,
        "tie_rate": round(prefs["tie"] / len(ok), 4) if ok else None,
        **unmatched,
    }
