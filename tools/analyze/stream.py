"""Metrics of the streaming DST assistant (`vt-analyze metrics --task stream`): ProAssist's, plus DST.

Inputs: vt-infer stream's events.jsonl (one event per frame) and the stream examples it ran on
(vt-prep dst's stream/test.jsonl), joined by video and frame index (the times must agree).

- Speaking decision, frame level: `speak_precision`, `speak_recall`, `speak_f1` over all frames.
- ProAssist's matched F1 (`matched_precision`, `matched_recall`, `matched_f1`): predicted and
  reference utterances of a video are matched one to one by bipartite matching
  (scipy.optimize.linear_sum_assignment). A pair may match only if the reference lies within
  `match_window_s` of the prediction (the prediction at most `late` s after, `early` s before
  it); its cost is the semantic cost 1 - |cos| of the sentence embeddings plus a distance
  cost `factor * (|dt| / range) ** power` (ProAssist's form: factor 0.3, power 1.5, range the
  larger window side). A prediction left unmatched costs 1, what ProAssist charges for talking
  over silence, so a pair costlier than that is not matched. P = matched / (matched + redundant),
  R = matched / (matched + missed).
- DST update decision, frame level: `dst_update_precision`, `dst_update_recall`, `dst_update_f1`;
  `dst_update_exact`: the share of reference update frames where the model updated with exactly
  the reference's changed nodes and states.
- DST state: `dst_state_accuracy` (per node per frame), `dst_state_exact` (whole state per frame).
- Responses on matched pairs: `response_bleu_1..4` (sacrebleu corpus BLEU / 100),
  `response_meteor`, `response_rouge_l`, `response_embedding_similarity`, `response_bertscore_f1`,
  `response_cider` (tools/analyze/text.py's metrics, the same models and settings).
- The always-silent baseline (never speaks, never updates the DST) beside every decision and
  state metric, as `baseline_always_silent/<metric>`.

Counts are pooled over all videos (micro averages); per_example.jsonl holds each video's own.
95% intervals (`--n-bootstrap`) resample videos, the unit the split keeps apart, for the F1s and
state accuracies; the response text metrics have none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import InputError, atomic_write_text, read_jsonl, write_json
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Metrics, StreamEvent, StreamExample

Similarity = Callable[[list[str], list[str]], np.ndarray]  # (predictions, references) -> (n_pred, n_ref) cosines
DISTANCE_FACTOR = 0.3
DISTANCE_POWER = 1.5
UNMATCHED_COST = 1.0
INFEASIBLE = 1e6


@dataclass
class Utterance:
    video_id: str
    frame: int
    t_s: float
    text: str


@dataclass
class Match:
    matched: list[tuple[Utterance, Utterance, float]] = field(default_factory=list)  # (pred, ref, similarity)
    missed: list[Utterance] = field(default_factory=list)
    redundant: list[Utterance] = field(default_factory=list)


def prf(tp: float, n_pred: float, n_true: float) -> tuple[float, float, float]:
    """Precision, recall, F1; 0 where undefined (no predictions / no positives), as ProAssist reports."""
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def match_utterances(preds: list[Utterance], refs: list[Utterance], similarity: Similarity,
                     late_s: float = 2.0, early_s: float = 1.0) -> Match:
    """One-to-one matching of predicted to reference utterances (module docstring)."""
    result = Match()
    if not preds or not refs:
        return Match(missed=list(refs), redundant=list(preds))
    sim = np.abs(np.asarray(similarity([p.text for p in preds], [r.text for r in refs]), dtype=float))
    dt = np.array([[r.t_s - p.t_s for r in refs] for p in preds])  # < 0: the prediction came late
    inside = (dt >= -late_s - 1e-9) & (dt <= early_s + 1e-9)
    scale = max(late_s, early_s) or 1.0
    cost = (1.0 - sim) + DISTANCE_FACTOR * (np.abs(dt) / scale) ** DISTANCE_POWER
    cost = np.where(inside, cost, INFEASIBLE)
    # one dummy column per prediction: leaving it unmatched costs UNMATCHED_COST
    dummy = np.full((len(preds), len(preds)), INFEASIBLE)
    np.fill_diagonal(dummy, UNMATCHED_COST)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(np.hstack([cost, dummy]))
    taken = set()
    for i, j in zip(rows.tolist(), cols.tolist()):
        if j < len(refs) and cost[i, j] < INFEASIBLE:
            result.matched.append((preds[i], refs[j], float(sim[i, j])))
            taken.add(j)
        else:
            result.redundant.append(preds[i])
    result.missed = [r for j, r in enumerate(refs) if j not in taken]
    return result


def _join(events: list[StreamEvent], examples: list[StreamExample], events_path: Path) -> dict[str, list[StreamEvent]]:
    by_video: dict[str, list[StreamEvent]] = {}
    for event in events:
        by_video.setdefault(event.video_id, []).append(event)
    for example in examples:
        got = sorted(by_video.get(example.id, []), key=lambda e: e.frame)
        if len(got) != len(example.frames) or [e.frame for e in got] != list(range(len(example.frames))):
            raise InputError(f"{events_path}: video {example.id!r} has {len(got)} events for {len(example.frames)} "
                             "reference frames (was the stream cut short?)")
        for event, frame in zip(got, example.frames):
            if abs(event.t_s - frame.t_s) > 1e-3:
                raise InputError(f"{events_path}: {event.id}: frame time {event.t_s}s, the reference says {frame.t_s}s")
        by_video[example.id] = got
    extra = set(by_video) - {e.id for e in examples}
    if extra:
        raise InputError(f"{events_path}: events for videos not in the references: {sorted(extra)[:5]}")
    return by_video


def _counts(examples: list[StreamExample], by_video: dict[str, list[StreamEvent]] | None) -> dict[str, float]:
    """Decision and state counts; by_video None scores the always-silent baseline."""
    c = dict.fromkeys(("frames", "speak_tp", "speak_pred", "speak_true", "upd_tp", "upd_pred", "upd_true",
                       "upd_exact", "node_frames", "node_right", "state_exact"), 0.0)
    for example in examples:
        state0 = {n.id: "not_started" for n in example.nodes}
        events = by_video[example.id] if by_video is not None else None
        for index, frame in enumerate(example.frames):
            speak = events[index].speak if events else False
            update = events[index].dst_update if events else False
            state = events[index].dst if events else state0
            c["frames"] += 1
            c["speak_pred"] += speak
            c["speak_true"] += frame.speak
            c["speak_tp"] += speak and frame.speak
            c["upd_pred"] += update
            c["upd_true"] += frame.dst_update
            c["upd_tp"] += update and frame.dst_update
            if frame.dst_update and update and events:
                previous = events[index - 1].dst if index else state0
                delta = {k: v for k, v in state.items() if previous.get(k) != v}
                c["upd_exact"] += delta == frame.dst_delta
            right = sum(state.get(node) == s for node, s in frame.dst.items())
            c["node_frames"] += len(frame.dst)
            c["node_right"] += right
            c["state_exact"] += right == len(frame.dst)
    return c


def _decision_metrics(c: dict[str, float]) -> dict[str, float]:
    out = {}
    for name, key in (("speak", "speak"), ("dst_update", "upd")):
        p, r, f1 = prf(c[f"{key}_tp"], c[f"{key}_pred"], c[f"{key}_true"])
        out.update({f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": f1})
    out["dst_update_exact"] = c["upd_exact"] / c["upd_true"] if c["upd_true"] else 0.0
    out["dst_state_accuracy"] = c["node_right"] / c["node_frames"] if c["node_frames"] else 0.0
    out["dst_state_exact"] = c["state_exact"] / c["frames"] if c["frames"] else 0.0
    return out


def utterances(example: StreamExample, events: list[StreamEvent] | None) -> list[Utterance]:
    """Reference utterances (events None) or the predicted ones (every frame the model decided to speak at)."""
    if events is None:
        return [Utterance(example.id, i, f.t_s, f.response) for i, f in enumerate(example.frames) if f.speak]
    return [Utterance(example.id, e.frame, e.t_s, e.response) for e in events if e.speak]


def video_bootstrap(rows: list[dict[str, float]], n_bootstrap: int, seed: int) -> dict[str, tuple[float, float]]:
    """Percentile 95% intervals of the pooled decision, state and matching metrics, videos resampled.

    Each metric is a ratio of counts summed over videos, so a resample sums the drawn videos'
    counts (analyze.bootstrap's weights) and recomputes it exactly.
    """
    from videotune.analyze.bootstrap import point_and_ci, ratio

    keys = sorted(rows[0])
    C = np.array([[row[k] for k in keys] for row in rows])
    col = {k: C[:, i] for i, k in enumerate(keys)}

    def f1(tp: str, pred: str, true: str):
        return lambda W: ratio(2 * (W @ col[tp]), W @ col[pred] + W @ col[true])

    functions = {
        "speak_f1": f1("speak_tp", "speak_pred", "speak_true"),
        "dst_update_f1": f1("upd_tp", "upd_pred", "upd_true"),
        "matched_f1": f1("matched", "utt_pred", "utt_true"),
        "dst_state_accuracy": lambda W: ratio(W @ col["node_right"], W @ col["node_frames"]),
        "dst_state_exact": lambda W: ratio(W @ col["state_exact"], W @ col["frames"]),
    }
    return point_and_ci(functions, len(rows), n_bootstrap, seed)[1]


def stream_scores(
    events: list[StreamEvent], examples: list[StreamExample], similarity: Similarity, events_path: Path,
    late_s: float = 2.0, early_s: float = 1.0, text_models: Any = None, n_bootstrap: int = 0, seed: int = 0,
) -> tuple[Metrics, list[dict[str, Any]], list[dict[str, Any]]]:
    """(metrics.json, per-video rows, match rows) for events against their reference examples."""
    by_video = _join(events, examples, events_path)
    metrics: dict[str, float | None] = {}
    counts = _counts(examples, by_video)
    metrics.update(_decision_metrics(counts))
    baseline = _decision_metrics(_counts(examples, None))
    matched, n_pred, n_ref = [], 0, 0
    per_video, match_rows, video_counts_rows = [], [], []
    for example in examples:
        preds, refs = utterances(example, by_video[example.id]), utterances(example, None)
        m = match_utterances(preds, refs, similarity, late_s, early_s)
        matched += m.matched
        n_pred += len(preds)
        n_ref += len(refs)
        raw = _counts([example], by_video)
        video_counts_rows.append({**raw, "matched": len(m.matched), "utt_pred": len(preds), "utt_true": len(refs)})
        video_counts = _decision_metrics(raw)
        mp, mr, mf = prf(len(m.matched), len(preds), len(refs))
        per_video.append({"id": example.id, "model": "", "scores": {**video_counts, "matched_precision": mp,
                                                                     "matched_recall": mr, "matched_f1": mf}})
        for p, r, s in m.matched:
            match_rows.append({"video_id": example.id, "kind": "matched", "pred_t_s": p.t_s, "ref_t_s": r.t_s,
                               "prediction": p.text, "reference": r.text, "similarity": round(s, 4)})
        match_rows += [{"video_id": example.id, "kind": "missed", "ref_t_s": r.t_s, "reference": r.text} for r in m.missed]
        match_rows += [{"video_id": example.id, "kind": "redundant", "pred_t_s": p.t_s, "prediction": p.text}
                       for p in m.redundant]
    mp, mr, mf = prf(len(matched), n_pred, n_ref)
    metrics.update({"matched_precision": mp, "matched_recall": mr, "matched_f1": mf})
    baseline.update({"matched_precision": 0.0, "matched_recall": 0.0, "matched_f1": 0.0})
    for name, value in baseline.items():
        metrics[f"baseline_always_silent/{name}"] = value
    meta: dict[str, Any] = {
        "n_frames": int(counts["frames"]), "n_videos": len(examples),
        "n_reference_utterances": n_ref, "n_predicted_utterances": n_pred, "n_matched": len(matched),
        "n_invalid_dst_updates": sum(not e.dst_valid for e in events),
        "matching": {"late_s": late_s, "early_s": early_s, "distance_factor": DISTANCE_FACTOR,
                     "distance_power": DISTANCE_POWER, "unmatched_cost": UNMATCHED_COST,
                     "solver": "scipy.optimize.linear_sum_assignment"},
        "averaging": "micro (counts pooled over videos)",
    }
    if text_models is not None:
        if matched:
            from videotune.analyze.text import bleu_from_stats, score_texts

            scores = score_texts([p.text for p, _, _ in matched], [r.text for _, r, _ in matched], text_models)
            for name, values in scores.per_example.items():
                metrics[f"response_{name}"] = float(np.mean(values))
            for order in (1, 2, 3, 4):
                metrics[f"response_bleu_{order}"] = bleu_from_stats(scores.bleu_stats.sum(axis=0), order)
            meta["text_metrics"] = scores.meta
        else:
            meta["absent_metrics"] = {"response_*": "no matched utterance pairs to score"}
    ci95 = video_bootstrap(video_counts_rows, n_bootstrap, seed) if n_bootstrap else {}
    if ci95:
        meta["bootstrap"] = {"n": n_bootstrap, "seed": seed, "method": "percentile, videos resampled with replacement"}
    return Metrics(n=len(examples), metrics=metrics, ci95=ci95, meta=meta), per_video, match_rows


def embedding_similarity(text_models: Any) -> Similarity:
    """Cosine similarity of the text metrics' sentence embeddings (all-MiniLM-L6-v2)."""

    def similarity(preds: list[str], refs: list[str]) -> np.ndarray:
        texts = sorted(set(preds) | set(refs))
        vectors = text_models.embedder.encode(texts, normalize_embeddings=True, show_progress_bar=False,
                                              convert_to_numpy=True)
        index = {t: i for i, t in enumerate(texts)}
        # an empty text has no meaning to compare: similarity 0
        out = vectors[[index[p] for p in preds]] @ vectors[[index[r] for r in refs]].T
        empty = np.array([not p.strip() for p in preds])[:, None] | np.array([not r.strip() for r in refs])[None, :]
        return np.where(empty, 0.0, out)

    return similarity


def run_stream_metrics(config: Any, console: Any) -> None:
    """`vt-analyze metrics --task stream`: config is analyze's MetricsConfig."""
    from rich.table import Table

    from videotune.analyze.common import PER_EXAMPLE_NAME
    from videotune.analyze.text import load_text_models

    if config.references is None:
        raise InputError("--task stream needs --references: the stream examples the events answer "
                         "(vt-prep dst's stream/test.jsonl)")
    if len(config.match_window_s) != 2 or min(config.match_window_s) < 0:
        raise InputError("--match-window-s takes two non-negative numbers: late,early (seconds)")
    manifest = RunManifest("analyze", "metrics", config.model_dump(mode="json"), config.out, seed=config.seed)
    events = read_jsonl(config.predictions, StreamEvent)
    examples = read_jsonl(config.references, StreamExample)
    if not events:
        raise InputError(f"{config.predictions}: no events to score")
    text_models = load_text_models(config.embedding_model, config.bertscore_layer, config.device)
    late, early = config.match_window_s
    metrics, per_video, match_rows = stream_scores(
        events, examples, embedding_similarity(text_models), config.predictions, late, early, text_models,
        n_bootstrap=config.n_bootstrap, seed=config.seed)
    model = json.loads((config.predictions.parent / "run.json").read_text()).get("config", {}).get("model", "") \
        if (config.predictions.parent / "run.json").is_file() else ""
    for row in per_video:
        row["model"] = model
    write_json(config.out / "metrics.json", metrics.model_dump(mode="json"))
    atomic_write_text(config.out / PER_EXAMPLE_NAME, "".join(json.dumps(r) + "\n" for r in per_video))
    atomic_write_text(config.out / "matches.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in match_rows))
    manifest.add_input(config.predictions, "events")
    manifest.add_input(config.references, "references")
    manifest.write(outputs={"metrics": "metrics.json", "per_example": PER_EXAMPLE_NAME, "matches": "matches.jsonl"})

    table = Table(title=f"stream metrics ({metrics.n} videos, {metrics.meta['n_frames']} frames)")
    for column in ("metric", "model", "95% CI (videos)", "always silent"):
        table.add_column(column)
    for name, value in metrics.metrics.items():
        if name.startswith("baseline_"):
            continue
        base = metrics.metrics.get(f"baseline_always_silent/{name}")
        ci = metrics.ci95.get(name)
        table.add_row(name, f"{value:.3f}" if value is not None else "n/a", f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "",
                      f"{base:.3f}" if base is not None else "")
    console.print(table)
    console.print(f"wrote {config.out / 'metrics.json'}")
