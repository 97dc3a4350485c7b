"""vt-judge: LLM-as-judge scoring (`score`, `pairwise`), agreement with experts (`agreement`), expert review page (`review`)."""

from __future__ import annotations

import getpass
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console

from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, WorkFailed, read_jsonl, write_json
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.schemas import Example, Prediction, Verdict
from videotune.judge.backends import make_backend
from videotune.judge.cache import AnswerCache, default_cache_dir
from videotune.judge.judge import (
    MAX_REASKS,
    Judge,
    judge_pairs,
    make_pairs,
    score_predictions,
    summarize,
    summarize_pairs,
)
from videotune.judge.ratings import ExpertRating, RatingStore
from videotune.judge.review import ReviewApp, build_items, make_server, serve
from videotune.judge.rubric import load_rubric

app = make_app("Judge predictions with an LLM against a rubric, and compare the judge with experts.")
console = Console()
# httpx logs every request at INFO: thousands of lines per run, and nothing a user needs.
logging.getLogger("httpx").setLevel(logging.WARNING)


@app.callback()
def _group() -> None:
    """Judge predictions with an LLM against a rubric, and compare the judge with experts."""
    # An explicit callback keeps the subcommands required even if only one were registered.


class BackendOptions(CommandConfig):
    rubric: str = Field("holistic", description="shipped rubric (holistic, clinical, proassist) or a rubric YAML path")
    backend: Literal["openai", "hf"] = Field(
        "openai", description="openai: any OpenAI-compatible chat completions server; hf: a local transformers model"
    )
    base_url: str | None = Field(
        None, description="server URL ending in /v1 [default: $VT_JUDGE_BASE_URL]; the API key is read only from "
        "$VT_JUDGE_API_KEY or $OPENAI_API_KEY"
    )
    model: str | None = Field(None, description="judge model name (openai) or path (hf) [default: $VT_JUDGE_MODEL]")
    out: Path = Field(description="output folder (created if missing)")
    concurrency: int = Field(4, ge=1, le=256, description="requests in flight at once (openai backend)")
    timeout_s: float = Field(120.0, gt=0, description="seconds before one request is abandoned and retried")
    max_retries: int = Field(5, ge=0, description="retries of one request after a connection error, timeout, 429 or 5xx")
    backoff_s: float = Field(1.0, ge=0, description="first retry wait; doubles per retry (a 429's Retry-After wins)")
    max_backoff_s: float = Field(60.0, ge=0, description="cap of the doubling retry wait")
    max_reasks: int = Field(MAX_REASKS, ge=0, le=MAX_REASKS,
                            description="times an invalid answer is re-asked before the item is recorded unparseable")
    max_tokens: int = Field(512, ge=16, description="answer length limit")
    seed: int = Field(0, description="sampling seed sent with every request (temperature is always 0)")
    answer_cache: bool = Field(True, description="reuse and store answers in the on-disk answer cache")
    answer_cache_dir: Path | None = Field(
        None, description="answer cache folder [default: $VT_CACHE_DIR/judge or ~/.cache/videotune/judge]")
    load_in_8bit: bool = Field(False, description="hf backend: load the model in 8-bit (bitsandbytes, CUDA only)")
    trust_remote_code: bool = Field(False, description="hf backend: allow the model's own code (opt-in)")


def _judge(config: BackendOptions):
    rubric = load_rubric(config.rubric)
    backend = make_backend(
        config.backend, config.base_url, config.model, seed=config.seed, max_tokens=config.max_tokens,
        timeout_s=config.timeout_s, max_retries=config.max_retries, backoff_s=config.backoff_s,
        max_backoff_s=config.max_backoff_s, concurrency=config.concurrency, load_in_8bit=config.load_in_8bit,
        trust_remote_code=config.trust_remote_code,
    )
    cache = AnswerCache((config.answer_cache_dir or default_cache_dir()) if config.answer_cache else None)
    return rubric, backend, Judge(backend, rubric, cache, max_reasks=config.max_reasks)


def _resolved(config: BackendOptions, backend) -> dict:
    """The config as run.json records it: with the URL and model actually used (never the API key)."""
    resolved = config.model_dump(mode="json")
    resolved["model"] = backend.judge.split(":", 1)[1]
    resolved["rubric_id"] = load_rubric(config.rubric).id
    resolved["answer_cache_dir"] = str(config.answer_cache_dir or default_cache_dir()) if config.answer_cache else None
    if config.backend == "openai":
        resolved["base_url"] = backend.base_url
        resolved["response_format"] = backend.response_format
    return resolved


class ScoreConfig(BackendOptions):
    """Score each prediction on the rubric's dimensions (1-5) with an LLM judge.

    Writes OUT/verdicts.jsonl (one verdict per prediction id: ok, unparseable or error; an
    unparseable answer is never given a score), OUT/summary.json and OUT/run.json. A rerun
    resumes: ids already judged are skipped, ids that ended in error are asked again.
    """

    predictions: Path = Field(description="predictions.jsonl written by vt-infer")


def _write_manifest(manifest: RunManifest, config, backend, inputs: dict, outputs: dict) -> dict:
    """run.json with the resolved backend settings, the inputs' hashes and this run's request counts."""
    manifest.data["config"] = _resolved(config, backend)
    for name, path in inputs.items():
        manifest.add_input(path, name)
    cost = {k: backend.counter.get(k) for k in ("requests", "retries", "cache_hits", "reasks", "unparseable")}
    manifest.write(outputs=outputs, this_run=cost)
    return cost


def run_score(config: ScoreConfig) -> None:
    seed_everything(config.seed)
    predictions = read_jsonl(config.predictions, Prediction)
    rubric, backend, judge = _judge(config)
    manifest = RunManifest("judge", "score", {}, config.out, seed=config.seed)
    try:
        verdicts = score_predictions(predictions, judge, config.out / "verdicts.jsonl", config.concurrency)
    finally:
        backend.close()
    summary = summarize(verdicts, rubric)
    write_json(config.out / "summary.json", summary)
    cost = _write_manifest(manifest, config, backend, {"predictions": config.predictions, "rubric": rubric.source},
                           {"verdicts": "verdicts.jsonl", "summary": "summary.json"})
    counts = summary["counts"]
    console.print(
        f"{summary['n']} verdicts: {counts['ok']} ok, {counts['unparseable']} unparseable, {counts['error']} error "
        f"(parse-failure rate {summary['parse_failure_rate']}); this run: {cost['requests']} requests, "
        f"{cost['cache_hits']} cache hits"
    )
    console.print(f"wrote {config.out / 'verdicts.jsonl'}")
    _fail_on_errors(counts, summary["n"], config.out / "verdicts.jsonl", "verdicts")


def _fail_on_errors(counts: dict, n: int, path: Path, what: str) -> None:
    """Exit 1 when any item ended in error (the judge unreachable, or a prediction with status error)."""
    if counts["error"]:
        raise WorkFailed(
            f"{counts['error']} of {n} {what} ended in error ({counts['ok']} ok, {counts['unparseable']} unparseable); "
            f"each one's reason is in {path}; a rerun asks the judge again for these only"
        )


class PairwiseConfig(BackendOptions):
    """Compare two prediction files item by item, each pair judged in both orders.

    A preference counts only when both orders agree; otherwise the pair is `inconsistent`
    (position bias). Writes OUT/pairwise.jsonl, OUT/summary.json and OUT/run.json; resumes.
    """

    predictions_a: Path = Field(description="predictions.jsonl of model A")
    predictions_b: Path = Field(description="predictions.jsonl of model B (same ids and references)")


def run_pairwise(config: PairwiseConfig) -> None:
    seed_everything(config.seed)
    pairs, unmatched = make_pairs(read_jsonl(config.predictions_a, Prediction), read_jsonl(config.predictions_b, Prediction))
    rubric, backend, judge = _judge(config)
    manifest = RunManifest("judge", "pairwise", {}, config.out, seed=config.seed)
    try:
        rows = judge_pairs(pairs, judge, config.out / "pairwise.jsonl", config.concurrency)
    finally:
        backend.close()
    summary = summarize_pairs(rows, unmatched)
    write_json(config.out / "summary.json", summary)
    _write_manifest(manifest, config, backend, {"a": config.predictions_a, "b": config.predictions_b, "rubric": rubric.source},
                    {"pairwise": "pairwise.jsonl", "summary": "summary.json"})
    prefs = summary["preferences"]
    console.print(
        f"{summary['n']} pairs: A {prefs['a']}, B {prefs['b']}, tie {prefs['tie']}, inconsistent "
        f"{prefs['inconsistent']} (consistency {summary['consistency_rate']})"
    )
    console.print(f"wrote {config.out / 'pairwise.jsonl'}")
    _fail_on_errors(summary["counts"], summary["n"], config.out / "pairwise.jsonl", "pairs")


class AgreementConfig(CommandConfig):
    """Agreement of judge verdicts with expert ratings, per dimension.

    Quadratic-weighted Cohen's kappa, Spearman's rho, exact and within-1 agreement, n, with
    bootstrap 95% intervals. Writes OUT/metrics.json and OUT/run.json.
    """

    verdicts: Path = Field(description="verdicts.jsonl written by `vt-judge score`")
    ratings: Path = Field(description="expert ratings.jsonl written by `vt-judge review` ({id, scores {dimension: 1..5}, ...})")
    out: Path = Field(description="output folder (created if missing)")
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0: none)")
    seed: int = Field(0, description="seed of the bootstrap resampling")


def run_agreement(config: AgreementConfig) -> None:
    # Imported here: scipy and sklearn take about a second to import, which every other command would pay.
    from videotune.judge.agreement import agreement

    manifest = RunManifest("judge", "agreement", config.model_dump(mode="json"), config.out, seed=config.seed)
    verdicts = read_jsonl(config.verdicts, Verdict)
    ratings = read_jsonl(config.ratings, ExpertRating)
    metrics = agreement(verdicts, ratings, n_bootstrap=config.n_bootstrap, seed=config.seed)
    write_json(config.out / "metrics.json", metrics.model_dump(mode="json"))
    manifest.add_input(config.verdicts, "verdicts")
    manifest.add_input(config.ratings, "ratings")
    manifest.write(outputs={"metrics": "metrics.json"})
    for dim, stats in metrics.per_class.items():
        console.print(
            f"{dim}: n={stats['n']} kappa_w={stats['weighted_kappa']} rho={stats['spearman']} "
            f"exact={stats['exact_agreement']:.3f} within1={stats['within1_agreement']:.3f}"
        )
    console.print(f"wrote {config.out / 'metrics.json'}")


class ReviewConfig(CommandConfig):
    """Serve a local page (127.0.0.1 only) where an expert rates predictions on the rubric's dimensions.

    The video is shown beside the ground truth and the prediction. Ratings are saved to
    OUT/ratings.jsonl on every click of Save (atomically; a re-rating replaces the old one);
    the page reopens at the first unrated item. Stop with Ctrl-C.
    """

    predictions: Path = Field(description="predictions.jsonl to rate")
    rubric: str = Field("clinical", description="shipped rubric (holistic, clinical, proassist) or a rubric YAML path")
    data_root: Path = Field(description="folder the media paths are relative to")
    examples: Path | None = Field(
        None, description="examples JSONL to take each id's media path from, where predictions' meta has no 'media'"
    )
    out: Path = Field(description="output folder (created if missing)")
    port: int = Field(8765, ge=0, le=65535, description="port on 127.0.0.1 (0: any free port)")
    rater: str = Field("", description="name recorded with each rating [default: the login name]")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no $USER
        return ""


def run_review(config: ReviewConfig) -> None:
    if not config.data_root.is_dir():
        raise InputError(f"--data-root {config.data_root}: not a folder")
    rubric = load_rubric(config.rubric)
    examples = read_jsonl(config.examples, Example) if config.examples else []
    items = build_items(read_jsonl(config.predictions, Prediction), examples)
    if not items:
        raise InputError(f"{config.predictions}: no prediction with status ok to rate")
    store = RatingStore(config.out / "ratings.jsonl", [i.id for i in items])
    rater = config.rater or _login_name()
    manifest = RunManifest("judge", "review", config.model_dump(mode="json"), config.out)
    manifest.add_input(config.predictions, "predictions")
    manifest.add_input(rubric.source, "rubric")
    server = make_server(ReviewApp(items, rubric, store, config.data_root, rater), port=config.port)
    host, port = server.server_address[:2]
    done = store.first_unrated([i.id for i in items])
    console.print(f"review page: http://{host}:{port}/  ({len(items)} items, resuming at item {done + 1}; Ctrl-C to stop)")
    try:
        serve(server)
    finally:
        manifest.write(outputs={"ratings": "ratings.jsonl"}, rated=len(store.ratings))


add_command(
    app, "score", ScoreConfig, run_score,
    example="VT_JUDGE_API_KEY=... vt-judge score --predictions results/demo/infer/predictions.jsonl --rubric clinical "
    "--backend openai --base-url http://127.0.0.1:8000/v1 --model mistralai/Mixtral-8x7B-Instruct-v0.1 "
    "--out results/demo/judge")
add_command(
    app, "pairwise", PairwiseConfig, run_pairwise,
    example="vt-judge pairwise --predictions-a results/demo/infer/predictions.jsonl "
    "--predictions-b results/int8-dynamic/infer/predictions.jsonl --rubric holistic "
    "--base-url http://127.0.0.1:8000/v1 --model judge --out results/pairwise")
add_command(
    app, "agreement", AgreementConfig, run_agreement,
    example="vt-judge agreement --verdicts results/demo/judge/verdicts.jsonl --ratings results/demo/review/ratings.jsonl "
    "--out results/demo/judge_agreement")
add_command(
    app, "review", ReviewConfig, run_review,
    example="vt-judge review --predictions results/demo/infer/predictions.jsonl --rubric clinical "
    "--examples data/gym/split/examples/test.jsonl --data-root data/gym/raw --out results/demo/review --port 8765")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
