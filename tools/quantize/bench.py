"""Precision benchmark: fp32 vs bf16 vs int8 side by side on the tiny model and a real-size one.

    python -m videotune.quantize.bench --examples data/bench/split/examples/test.jsonl \
        --corpus data/bench/split/examples/train.jsonl --data-root data/bench/raw --out results/bench/quantize

For each model (the tiny one and a random-weight model of a released architecture, both built
offline) and each method: vt-quantize's own code writes the model directory; then the
console scripts measure it exactly as a user would: `vt-infer profile` (latency breakdown at
batch 1 and the batch sizes after it, peak memory) and `vt-infer generate` (greedy answers on
the test examples, batch 1, compared with fp32's). Tools talk through files here too: this
module runs vt-infer as a program and reads its profile.json and predictions.jsonl.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.console import Console
from rich.table import Table

from videotune.core import models
from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, read_json, read_jsonl, replace_dir, write_json
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Example, Prediction
from videotune.quantize.methods import METHODS, quantize, size_report
from videotune.quantize.reference import REFERENCE_ARCHS, build_reference

log = logging.getLogger("videotune.quantize")
console = Console()
app = make_app("Benchmark precisions side by side: size, latency, output agreement, batch throughput.")

# The issue's targets (RQ3): int8 weights at most 0.3x fp32's bytes; int8 no slower than fp32 on a
# CPU; batch 8 at least twice batch 1's samples/s.
INT8_SIZE_RATIO_MAX = 0.3
INT8_LATENCY_RATIO_MAX = 1.0
BATCH_SPEEDUP_MIN = 2.0


class BenchConfig(CommandConfig):
    """Quantize the tiny model and a random-weight real-size model by each method, then profile them
    and compare their greedy outputs with fp32's. Writes OUT/bench.json, OUT/bench.md, OUT/run.json
    and, per model and method, OUT/<model>/<method>/{model,profile,generate}.
    """

    examples: Path = Field(description="test examples JSONL (synthetic clips) for latency and agreement")
    corpus: Path = Field(description="training examples JSONL: trains the models' tokenizers")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder")
    tiny_model: Path | None = Field(None, description="a tiny model directory [default: build one into OUT/models/tiny]")
    reference: str = Field("smolvlm2-256m", description=f"real architecture to build with random weights ({', '.join(REFERENCE_ARCHS)}; "
                           "'none' to skip)")
    methods: list[str] = Field(["fp32", "bf16", "int8-dynamic", "int8-weight"], description="methods; fp32 is the baseline")
    batch_sizes: list[int] = Field([1, 8], description="batch sizes profiled; the first is the latency baseline")
    n_samples: int = Field(8, ge=1, description="recorded samples per batch size")
    warmup: int = Field(1, ge=0, description="warm-up batches per batch size")
    frames: int = Field(2, ge=1, description="frames per clip")
    max_new_tokens: int = Field(16, ge=1, description="tokens generated per sample (fixed length while profiling)")
    seed: int = Field(0, description="seed of the random weights")


def _vt(script: str, *args: Any) -> None:
    """Run a console script of this environment; its failure is this run's failure, with its stderr."""
    binary = Path(sys.executable).parent / script
    result = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(map(str, args[:1]))} exited {result.returncode}:\n{result.stderr[-3000:]}")


def _corpus_texts(path: Path) -> list[str]:
    return [m.content for e in read_jsonl(path, Example) for m in e.messages]


def _ensure_models(config: BenchConfig) -> dict[str, Path]:
    """name -> float32 model directory; built once and reused (same seed, same weights)."""
    found: dict[str, Path] = {}
    texts = None
    if config.tiny_model is not None:
        found["tiny"] = config.tiny_model
    else:
        target = config.out / "models" / "tiny"
        if not (target / "config.json").is_file():
            texts = texts or _corpus_texts(config.corpus)
            with replace_dir(target) as tmp:
                models.build_tiny("smolvlm2", tmp, texts, seed=config.seed)
        found["tiny"] = target
    if config.reference != "none":
        if config.reference not in REFERENCE_ARCHS:
            raise InputError(f"--reference {config.reference!r}: one of {', '.join(REFERENCE_ARCHS)} or 'none'")
        target = config.out / "models" / f"{config.reference}-random"
        if not (target / "config.json").is_file():
            texts = texts or _corpus_texts(config.corpus)
            with replace_dir(target) as tmp:
                build_reference(config.reference, tmp, texts, seed=config.seed)
        found[config.reference] = target
    return found


def prefix_agreement(reference: list[int], other: list[int]) -> float:
    """Share of the longer sequence that both share from the start: greedy outputs agree up to
    their first differing token and (almost always) never again after it."""
    longest = max(len(reference), len(other))
    if longest == 0:
        return 1.0
    same = next((i for i, (a, b) in enumerate(zip(reference, other)) if a != b), min(len(reference), len(other)))
    return same / longest


def agreement(baseline: list[Prediction], other: list[Prediction], tokenize) -> dict[str, Any]:
    """Exact-match rate and mean token-prefix agreement of `other`'s answers with `baseline`'s, by id."""
    by_id = {p.id: p for p in other if p.status == "ok"}
    pairs = [(b, by_id[b.id]) for b in baseline if b.status == "ok" and b.id in by_id]
    if not pairs:
        raise RuntimeError("no example has an answer from both models")
    exact = sum(b.prediction == o.prediction for b, o in pairs)
    prefix = [prefix_agreement(tokenize(b.prediction), tokenize(o.prediction)) for b, o in pairs]
    return {"n": len(pairs), "exact_match": exact / len(pairs), "prefix_agreement": sum(prefix) / len(prefix)}


def _profile_row(profile: dict[str, Any], batch_size: int) -> dict[str, Any] | None:
    return next((c for c in profile["configs"] if c["batch_size"] == batch_size), None)


def summarize_variant(profile: dict[str, Any], size: dict[str, Any], batch_sizes: list[int]) -> dict[str, Any]:
    """The figures the benchmark table shows for one model directory."""
    first = _profile_row(profile, batch_sizes[0])
    row: dict[str, Any] = {"weights_bytes": size["weights_bytes_after"], "peak_memory_bytes": None}
    if first and first["status"] == "ok":
        row.update(
            latency_s=first["latency_s"]["per_sample"]["mean"], latency_p50_s=first["latency_s"]["per_sample"]["p50"],
            prefill_s=first["latency_s"]["prefill"]["mean"], decode_s=first["latency_s"]["decode"]["mean"],
            preprocess_s=first["latency_s"]["preprocess"]["mean"], tokens_per_s=first["throughput"]["tokens_per_s"],
            samples_per_s=first["throughput"]["samples_per_s"], peak_memory_bytes=first["peak_memory_bytes"],
        )
    scaling = {}
    for b in batch_sizes[1:]:
        other = _profile_row(profile, b)
        if other and other["status"] == "ok" and first and first["status"] == "ok":
            scaling[str(b)] = {
                "samples_per_s": other["throughput"]["samples_per_s"],
                "speedup": other["throughput"]["samples_per_s"] / first["throughput"]["samples_per_s"],
                "peak_memory_bytes": other["peak_memory_bytes"],
            }
        else:
            scaling[str(b)] = {"status": other["status"] if other else "missing"}
    row["batch_scaling"] = scaling
    return row


def add_ratios(variants: dict[str, dict[str, Any]]) -> None:
    """Size and latency ratios to fp32, in place."""
    base = variants.get("fp32")
    if not base:
        return
    for row in variants.values():
        row["size_ratio"] = row["weights_bytes"] / base["weights_bytes"]
        if "latency_s" in row and "latency_s" in base:
            row["latency_ratio"] = row["latency_s"] / base["latency_s"]


def check_targets(results: dict[str, dict[str, dict[str, Any]]], batch: int) -> list[dict[str, Any]]:
    """Each target per model and int8 method (batch speedup: per model and method), met or not."""
    checks = []
    for model_name, variants in results.items():
        for method, row in variants.items():
            if method.startswith("int8"):
                checks.append({"model": model_name, "method": method, "target": f"size <= {INT8_SIZE_RATIO_MAX}x fp32",
                               "value": row.get("size_ratio"), "met": row.get("size_ratio", 9) <= INT8_SIZE_RATIO_MAX})
                checks.append({"model": model_name, "method": method, "target": "latency <= fp32 (CPU)",
                               "value": row.get("latency_ratio"),
                               "met": row.get("latency_ratio", 9) <= INT8_LATENCY_RATIO_MAX})
            speedup = row["batch_scaling"].get(str(batch), {}).get("speedup")
            checks.append({"model": model_name, "method": method, "target": f"batch {batch} >= {BATCH_SPEEDUP_MIN}x batch 1 samples/s",
                           "value": speedup, "met": speedup is not None and speedup >= BATCH_SPEEDUP_MIN})
    return checks


def markdown(results: dict[str, dict[str, dict[str, Any]]], checks: list[dict[str, Any]], batch: int) -> str:
    lines = [
        f"| model | method | weights MB | size vs fp32 | latency/sample s (b1) | vs fp32 | prefill s | decode s | "
        f"tokens/s | peak RSS MiB | batch {batch} speedup | exact match | prefix agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model_name, variants in results.items():
        for method, r in variants.items():
            agree = r.get("agreement", {})
            speed = r["batch_scaling"].get(str(batch), {})
            lines.append(
                f"| {model_name} | {method} | {r['weights_bytes'] / 1e6:.2f} | {r.get('size_ratio', float('nan')):.3f} | "
                f"{r.get('latency_s', float('nan')):.3f} | {r.get('latency_ratio', float('nan')):.2f} | "
                f"{r.get('prefill_s', float('nan')):.3f} | {r.get('decode_s', float('nan')):.3f} | "
                f"{r.get('tokens_per_s', float('nan')):.1f} | "
                f"{(r['peak_memory_bytes'] or 0) / 2**20:.0f} | "
                f"{speed.get('speedup', float('nan')):.2f} | {agree.get('exact_match', float('nan')):.2f} | "
                f"{agree.get('prefix_agreement', float('nan')):.2f} |"
            )
    lines += ["", "| model | method | target | value | met |", "|---|---|---|---|---|"]
    for c in checks:
        value = "n/a" if c["value"] is None else f"{c['value']:.3f}"
        lines.append(f"| {c['model']} | {c['method']} | {c['target']} | {value} | {'yes' if c['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def run_bench(config: BenchConfig) -> dict[str, Any]:
    from transformers import AutoTokenizer

    unknown = [m for m in config.methods if m not in METHODS or m == "gptq"]
    if unknown or "fp32" not in config.methods:
        raise InputError(f"--methods {config.methods}: include fp32 (the baseline); CPU methods only ({unknown} refused)")
    if sorted(set(config.batch_sizes)) != list(config.batch_sizes):
        raise InputError(f"--batch-sizes {config.batch_sizes}: distinct and ascending")
    methods = ["fp32"] + [m for m in config.methods if m != "fp32"]
    load_at_start = os.getloadavg()  # 1, 5, 15 min: a busy machine makes every latency here suspect
    manifest = RunManifest("quantize", "bench", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.examples, "examples")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for model_name, source in _ensure_models(config).items():
        tokenizer = AutoTokenizer.from_pretrained(source)
        variants: dict[str, dict[str, Any]] = {}
        baseline: list[Prediction] | None = None
        for method in methods:
            where = config.out / model_name / method
            log.info("%s / %s: quantize", model_name, method)
            with replace_dir(where / "model") as tmp:
                quantize(method, source, tmp)
            size = size_report(method, source, where / "model")
            write_json(where / "size.json", size)
            log.info("%s / %s: profile", model_name, method)
            _vt("vt-infer", "profile", "--model", where / "model", "--examples", config.examples, "--data-root",
                config.data_root, "--out", where / "profile", "--n-samples", config.n_samples, "--warmup", config.warmup,
                "--batch-sizes", ",".join(map(str, config.batch_sizes)), "--frames", config.frames,
                "--max-new-tokens", config.max_new_tokens)
            log.info("%s / %s: generate", model_name, method)
            generate_dir = where / "generate"
            (generate_dir / "predictions.jsonl").unlink(missing_ok=True)  # a fresh answer set, not a resumed one
            _vt("vt-infer", "generate", "--model", where / "model", "--examples", config.examples, "--data-root",
                config.data_root, "--out", generate_dir, "--batch-size", 1, "--frames", config.frames,
                "--max-new-tokens", config.max_new_tokens,
                *(["--dtype", {"bf16": "bfloat16", "fp16": "float16"}[method]] if method in ("bf16", "fp16") else []))
            predictions = read_jsonl(generate_dir / "predictions.jsonl", Prediction)
            row = summarize_variant(read_json(where / "profile" / "profile.json"), size, config.batch_sizes)
            if baseline is None:
                baseline = predictions
            row["agreement"] = agreement(
                baseline, predictions, lambda text, tok=tokenizer: tok(text, add_special_tokens=False)["input_ids"])
            variants[method] = row
        add_ratios(variants)
        results[model_name] = variants
    batch = config.batch_sizes[-1]
    checks = check_targets(results, batch)
    report = {"results": results, "targets": checks, "threads": os.environ.get("OMP_NUM_THREADS"),
              "command": " ".join(sys.argv),
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}
    write_json(config.out / "bench.json", report)
    (config.out / "bench.md").write_text(markdown(results, checks, batch))
    manifest.write(outputs={"bench": "bench.json", "table": "bench.md"})
    return report


def bench_command(config: BenchConfig) -> None:
    report = run_bench(config)
    table = Table(title="precision benchmark (ratios to fp32)")
    for column in ("model", "method", "size", "latency", f"batch {config.batch_sizes[-1]}/1", "exact", "prefix"):
        table.add_column(column)
    for model_name, variants in report["results"].items():
        for method, r in variants.items():
            speed = r["batch_scaling"].get(str(config.batch_sizes[-1]), {}).get("speedup")
            table.add_row(model_name, method, f"{r['size_ratio']:.3f}x", f"{r.get('latency_ratio', float('nan')):.2f}x",
                          "n/a" if speed is None else f"{speed:.2f}x", f"{r['agreement']['exact_match']:.2f}",
                          f"{r['agreement']['prefix_agreement']:.2f}")
    console.print(table)
    for c in report["targets"]:
        if not c["met"]:
            console.print(f"[yellow]missed[/yellow] {c['model']} {c['method']}: {c['target']} (measured {c['value']})")
    console.print(f"wrote {config.out / 'bench.json'} and {config.out / 'bench.md'}")


add_command(app, "bench", BenchConfig, bench_command, example=(
    "python -m videotune.quantize.bench --examples data/bench/split/examples/test.jsonl "
    "--corpus data/bench/split/examples/train.jsonl --data-root data/bench/raw --out results/bench/quantize"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
