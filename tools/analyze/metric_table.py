"""Every metric vt-analyze reports, as one declarative table (in the manner of lmms-eval's `metric_list`).

One entry per (task, metric) says what the metric is: its name in metrics.json, which way is
better, whether it heads the tables, which key holds its baseline, and what it means. Every
reader of metrics takes these facts from here and nowhere else:

- `vt-analyze metrics` prints the task's `headline` and `printed` entries beside their baselines;
- `report` (REPORT.md) puts each metric's baseline beside it;
- `summary` (per-experiment tables, RESULTS_SUMMARY.md, recommendations) takes the headline
  columns, the primary metric (the first headline metric where higher is better) and each
  metric's direction;
- `compare` states for each row which direction is better and which model that makes better;
- `headroom` refuses a threshold on the wrong side (a `minimum:` for a lower-is-better metric);
- `plots` read the direction of the cost axes;
- the scorers (metrics.py, feedback.py, vqa.py) compute every entry that carries its own
  `per_example` function: its mean over the examples where it is defined, with the bootstrap
  interval, and its per-example scores for `compare`.

Adding a metric is one entry here; a metric that is a mean over examples brings its function
in the entry, any other is computed by its task's scorer under the entry's name. Names
ending in "*" are families, one value per class (`error_f1/knees_forward`, `normalized_accuracy/
<stage>`, `judge_<dimension>`). Text metrics score an empty or failed answer 0 and keep it in the mean (text.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

PerExample = Callable[[Any], "float | None"]  # videotune.core.schemas.Prediction -> score (None: undefined)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as written to metrics.json; "name/*" (or "prefix_*") is a family, one value per class
    task: str  # aqa | feedback | vqa | stream | profile, or a collected step: train | quantize | judge
    higher_is_better: bool = True
    headline: bool = False  # a column of the experiment tables, printed by `vt-analyze metrics`
    printed: bool = False  # printed by `vt-analyze metrics` without being a table column
    baseline: str | None = None  # the baseline's kind: its value is metrics["<kind>/<name>"]
    doc: str = ""
    per_example: PerExample | None = None  # a mean over examples: the scorers compute it from this function

    @property
    def family(self) -> bool:
        return self.name.endswith("*")

    def matches(self, key: str) -> bool:
        return key.startswith(self.name[:-1]) if self.family else key == self.name


_EMPTY_IS_ZERO = " An empty or failed answer scores 0 and stays in the mean."


def _latency(task: str, headline: bool) -> list[MetricSpec]:
    doc = "seconds per prediction (vt-infer total_s) over ok, timed predictions"
    return [MetricSpec("latency_p50_s", task, False, headline=headline, printed=True, doc=f"median {doc}"),
            MetricSpec("latency_mean_s", task, False, doc=f"mean {doc}"),
            MetricSpec("latency_p95_s", task, False, doc=f"95th percentile {doc}")]


def _text(task: str, prefix: str = "", headline: bool = True) -> list[MetricSpec]:
    """text.py's metrics (feedback), or the same on matched utterance pairs (stream: prefix response_)."""
    meteor = ("METEOR as HF evaluate computes it (seed 000's definition): NLTK single_meteor_score on "
              "nltk.word_tokenize tokens, alpha 0.9, beta 3, gamma 0.5, WordNet 3.0; not pycocoevalcap's METEOR 1.5.")
    rows = [("embedding_similarity", "cosine of all-MiniLM-L6-v2 sentence embeddings (seed 000's BERT similarity)."),
            ("bertscore_f1", "BERTScore F1 (bert-score, all-MiniLM-L6-v2, no idf, no rescaling)."),
            ("meteor", meteor),
            ("rouge_l", "ROUGE-L F-measure (rouge-score, Porter stemming)."),
            ("bleu_1", "corpus BLEU-1 (sacrebleu) / 100."), ("bleu_2", "corpus BLEU-2 (sacrebleu) / 100."),
            ("bleu_3", "corpus BLEU-3 (sacrebleu) / 100."), ("bleu_4", "corpus BLEU-4 (sacrebleu) / 100."),
            ("cider", "CIDEr-D (pycocoevalcap, COCO PTB tokenizer); absent without Java.")]
    in_table = {"embedding_similarity", "bertscore_f1", "meteor", "rouge_l", "bleu_4", "cider"}
    return [MetricSpec(prefix + name, task, headline=headline and name in in_table, doc=doc + _EMPTY_IS_ZERO)
            for name, doc in rows]


def _profile(task: str, prefix: str = "", headline: bool = False) -> list[MetricSpec]:
    rows = [("samples_per_s", True, True, "throughput of vt-infer profile's first configuration"),
            ("latency_p50_s", False, True, "median seconds per sample (vt-infer profile)"),
            ("latency_p95_s", False, True, "95th percentile seconds per sample (vt-infer profile)"),
            ("peak_memory_gb", False, True, "peak memory of the profiled run (GB)"),
            ("latency_mean_s", False, False, "mean seconds per sample (vt-infer profile)"),
            ("tokens_per_s", True, False, "generated tokens per second (vt-infer profile)"),
            ("model_size_mb", False, False, "model weights (MB)")]
    return [MetricSpec(prefix + name, task, higher, headline=headline and in_table, doc=doc)
            for name, higher, in_table, doc in rows]


SILENT = "baseline_always_silent"

TABLE: tuple[MetricSpec, ...] = (
    # ----------------------------------------------------------------- aqa (metrics.py)
    MetricSpec("exercise_accuracy", "aqa", headline=True, baseline="baseline_majority",
               doc="parsed exercise == true exercise over all predictions (failed and unparseable ones wrong)"),
    MetricSpec("mistake_accuracy", "aqa", printed=True, baseline="baseline_majority",
               doc="yes/no 'a mistake is present' read from the answer == truth"),
    MetricSpec("error_macro_f1", "aqa", headline=True, baseline="baseline_no_error",
               doc="mean per-error F1, each over the clips whose true exercise can show the error"),
    MetricSpec("error_f1/*", "aqa", baseline="baseline_no_error", doc="F1 of detecting the error"),
    MetricSpec("error_precision/*", "aqa", doc="precision of detecting the error"),
    MetricSpec("error_recall/*", "aqa", doc="recall of detecting the error"),
    MetricSpec("error_seed002_macro_f1", "aqa",
               doc="seed 002's macro F1: each error over the clips whose answer names the true exercise"),
    MetricSpec("error_seed002_f1/*", "aqa", doc="seed 002's per-error F1 (clips with a wrong exercise skipped)"),
    MetricSpec("error_seed002_precision/*", "aqa", doc="seed 002's per-error precision"),
    MetricSpec("error_seed002_recall/*", "aqa", doc="seed 002's per-error recall"),
    MetricSpec("span_map_iou0.5", "aqa", headline=True, doc="mAP of span detection at IoU 0.5, ranked by confidence"),
    MetricSpec("span_seed002_map", "aqa", headline=True,
               doc="seed 002's 'mAP': share of clips whose true span is matched at IoU >= 0.5, no ranking"),
    MetricSpec("span_miou", "aqa", headline=True, doc="mean matched IoU over all true spans"),
    MetricSpec("span_r1_iou0.5", "aqa", printed=True, doc="share of true spans matched at IoU >= 0.5"),
    MetricSpec("span_r1_iou0.3", "aqa", doc="share of true spans matched at IoU >= 0.3"),
    MetricSpec("span_r1_iou0.7", "aqa", doc="share of true spans matched at IoU >= 0.7"),
    MetricSpec("span_ap_iou0.5/*", "aqa", doc="AP of span detection of the error at IoU 0.5"),
    MetricSpec("span_seed002_ap/*", "aqa", doc="seed 002's per-error 'AP' (a recall over clips)"),
    *_latency("aqa", headline=True),
    # ----------------------------------------------------------------- feedback (feedback.py, text.py)
    *_text("feedback"),
    MetricSpec("exercise_accuracy", "feedback", headline=True, baseline="baseline_majority",
               doc="the exercise read from the answer == the label's exercise"),
    *_latency("feedback", headline=True),
    # ----------------------------------------------------------------- vqa (vqa.py)
    MetricSpec("normalized_accuracy", "vqa", headline=True, baseline="baseline_majority",
               doc="answer == reference after the VQA normalisation"),
    MetricSpec("exact_accuracy", "vqa", headline=True, doc="answer == reference, surrounding whitespace stripped"),
    *_latency("vqa", headline=True),
    MetricSpec("normalized_accuracy/*", "vqa", headline=True, baseline="baseline_majority",
               doc="normalized accuracy over one curriculum stage"),
    MetricSpec("exact_accuracy/*", "vqa", doc="exact accuracy over one curriculum stage"),
    # ----------------------------------------------------------------- stream (stream.py)
    MetricSpec("speak_f1", "stream", headline=True, baseline=SILENT, doc="frame-level F1 of the speaking decision"),
    MetricSpec("speak_precision", "stream", baseline=SILENT, doc="frame-level precision of the speaking decision"),
    MetricSpec("speak_recall", "stream", baseline=SILENT, doc="frame-level recall of the speaking decision"),
    MetricSpec("matched_f1", "stream", headline=True, baseline=SILENT,
               doc="ProAssist's matched F1 of utterances (bipartite matching in time and meaning)"),
    MetricSpec("matched_precision", "stream", baseline=SILENT, doc="ProAssist's matched precision"),
    MetricSpec("matched_recall", "stream", baseline=SILENT, doc="ProAssist's matched recall"),
    MetricSpec("dst_update_f1", "stream", baseline=SILENT, doc="frame-level F1 of the DST update decision"),
    MetricSpec("dst_update_precision", "stream", baseline=SILENT, doc="frame-level precision of the DST update"),
    MetricSpec("dst_update_recall", "stream", baseline=SILENT, doc="frame-level recall of the DST update"),
    MetricSpec("dst_update_exact", "stream", baseline=SILENT,
               doc="share of reference update frames updated with exactly the reference's changes"),
    MetricSpec("dst_state_accuracy", "stream", headline=True, baseline=SILENT, doc="node states right, per node per frame"),
    MetricSpec("dst_state_exact", "stream", baseline=SILENT, doc="whole DST state right, per frame"),
    *_text("stream", prefix="response_", headline=False),
    # ----------------------------------------------------------------- collected from other tools (vt-analyze collect)
    *_profile("profile", headline=True),
    *_profile("aqa", prefix="profile_"),
    MetricSpec("train_trainable_params", "train", doc="trainable parameters (vt-train)"),
    MetricSpec("train_total_params", "train", doc="all parameters (vt-train)"),
    MetricSpec("train_runtime_s", "train", False, doc="training wall time (s)"),
    MetricSpec("train_epoch_s", "train", False, doc="mean seconds per epoch"),
    MetricSpec("train_final_train_loss", "train", False, doc="last training loss"),
    MetricSpec("train_final_val_loss", "train", False, doc="last validation loss"),
    MetricSpec("train_peak_memory_gb", "train", False, doc="peak memory while training (GB)"),
    MetricSpec("train_model_size_mb", "train", False, doc="saved model (MB)"),
    MetricSpec("train_n_examples", "train", doc="training examples"),
    MetricSpec("quantize_ratio", "quantize", False, doc="weights after / before quantization"),
    MetricSpec("quantize_*", "quantize", False, doc="vt-quantize's size figures (bytes, MB)"),
    MetricSpec("judge_overall", "judge", doc="mean overall judge score (1-5)"),
    MetricSpec("judge_parse_failure_rate", "judge", False, doc="share of judge answers that did not parse"),
    MetricSpec("judge_*", "judge", doc="mean judge score of one rubric dimension (1-5)"),
)


def _specs(table: Iterable[MetricSpec] | None) -> tuple[MetricSpec, ...]:
    # Read at call time, so that an entry added to TABLE (a test, a plugin) is seen everywhere.
    return tuple(TABLE if table is None else table)


def spec_of(name: str, task: str | None = None, table: Iterable[MetricSpec] | None = None) -> MetricSpec | None:
    """The entry of a metric key (a family's entry for `family/class`), preferring the task's own entry."""
    candidates = [s for s in _specs(table) if s.matches(name)]
    exact = [s for s in candidates if not s.family]
    for pool in (exact, candidates):
        for spec in pool:
            if task is None or spec.task == task:
                return spec
        if pool:
            return pool[0]
    return None


def for_task(task: str, table: Iterable[MetricSpec] | None = None) -> list[MetricSpec]:
    return [s for s in _specs(table) if s.task == task]


def higher_is_better(name: str, table: Iterable[MetricSpec] | None = None) -> bool:
    """Direction of a metric key; a baseline key takes its metric's; unknown metrics count as higher-better."""
    if name.startswith("baseline_") and "/" in name:
        name = name.split("/", 1)[1]
    spec = spec_of(name, table=table)
    return True if spec is None else spec.higher_is_better


def lower_is_better(name: str, table: Iterable[MetricSpec] | None = None) -> bool:
    return not higher_is_better(name, table)


def headline_names(task: str, present: Iterable[str], table: Iterable[MetricSpec] | None = None) -> list[str]:
    """The task's headline metrics in table order; a headline family expands to its present keys (sorted)."""
    present = list(present)
    names: list[str] = []
    for spec in for_task(task, table):
        if not spec.headline:
            continue
        keys = sorted(k for k in present if spec.matches(k)) if spec.family else [spec.name]
        names += [k for k in keys if k not in names]
    return names


def printed_names(task: str, table: Iterable[MetricSpec] | None = None) -> list[str]:
    """What `vt-analyze metrics` prints for a task: headline and printed entries (families left out)."""
    return [s.name for s in for_task(task, table) if (s.headline or s.printed) and not s.family]


def baseline_key(name: str, task: str | None = None, table: Iterable[MetricSpec] | None = None) -> str | None:
    """The metrics.json key of a metric's baseline, or None when it has none."""
    spec = spec_of(name, task, table)
    return f"{spec.baseline}/{name}" if spec is not None and spec.baseline else None


def example_functions(task: str, predictions: list[Any],
                      table: Iterable[MetricSpec] | None = None) -> tuple[dict[str, Callable], dict[str, np.ndarray]]:
    """Weighted-mean functions (for point_and_ci) and per-example values of the task's `per_example` entries.

    An example whose function returns None carries no weight in that metric's mean.
    """
    from videotune.analyze.bootstrap import ratio

    functions: dict[str, Callable] = {}
    values: dict[str, np.ndarray] = {}
    for spec in for_task(task, table):
        if spec.per_example is None:
            continue
        raw = [spec.per_example(p) for p in predictions]
        column = np.array([np.nan if v is None else float(v) for v in raw])
        defined = (~np.isnan(column)).astype(float)
        filled = np.nan_to_num(column, nan=0.0)
        functions[spec.name] = lambda W, filled=filled, defined=defined: ratio(W @ filled, W @ defined)
        values[spec.name] = column
    return functions, values


def add_example_scores(per_example: list[dict[str, Any]], values: dict[str, np.ndarray]) -> None:
    """Put the table's per-example values into `per_example.jsonl` rows (None where undefined)."""
    for i, row in enumerate(per_example):
        for name, column in values.items():
            row["scores"][name] = None if np.isnan(column[i]) else float(column[i])
