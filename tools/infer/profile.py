"""Latency, throughput and memory of a model over examples: breakdown, batch scaling, resolution sweep.

For every (frame size, frame count, batch size) in the full factorial of --resolutions x --frame-counts x
--batch-sizes: `warmup` batches unrecorded, then ceil(N / batch size) recorded batches, each split
into preprocess (video decode + processor + copy to the device), prefill (until the first token's
logits) and decode (the remaining tokens). Statistics are over recorded batches; per-sample latency
is a batch's total divided by its size. Batch scaling stops at the first out-of-memory error: that
batch size is recorded as `oom`, larger ones as `skipped`.

Peak memory: on CUDA torch.cuda.max_memory_allocated, reset before each batch (tensors only, not the
allocator's cache). On a CPU the process resident set size (RSS) sampled every 5 ms by a thread
while the batch runs, so each batch gets its own peak (resource.getrusage's ru_maxrss only ever
grows over the process's life; it is recorded too, as the process-wide peak). A spike shorter than
5 ms can fall between two samples. A CPU seldom raises out-of-memory: Linux's OOM killer ends the
process instead, so on a CPU keep batch sizes within RAM.
"""

from __future__ import annotations

import csv
import gc
import itertools
import logging
import math
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from videotune.core import models
from videotune.core.checks import check_media_paths
from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, atomic_open, read_jsonl, write_json
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import Example
from videotune.core.video import (
    FrameCache,
    SampledFrames,
    SamplingSpec,
    check_frames_restatable,
    default_cache_dir,
    sample_frames,
    with_sampled_frames,
)

log = logging.getLogger("videotune.infer")

PROFILE_SCHEMA = "videotune.profile/1"
RSS_SAMPLE_INTERVAL_S = 0.005
CSV_COLUMNS = (
    "model", "config", "resolution_px", "frames", "batch_size", "batch_index", "row", "example_id", "preprocess_s",
    "prefill_s", "decode_s", "total_s", "latency_per_sample_s", "prompt_tokens", "new_tokens", "peak_memory_bytes",
)


class ProfileConfig(CommandConfig):
    """Profile a model: latency breakdown (preprocess / prefill / decode / total: mean, std, p50, p95, p99),
    tokens/s, frames/s, peak memory, model size; batch scaling and a frame size x frame count sweep.

    Writes OUT/profile.json, OUT/profile_samples.csv (one row per recorded sample) and OUT/run.json.
    """

    model: str = Field(description="model directory (any vt-quantize output too), registry name or hub id")
    examples: Path = Field(description="examples JSONL whose clips and prompts are profiled (cycled to reach --n-samples)")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder: profile.json, profile_samples.csv, run.json")
    n_samples: int = Field(100, ge=1, description="recorded samples per configuration (after warm-up)")
    warmup: int = Field(3, ge=0, description="unrecorded warm-up batches per configuration")
    batch_sizes: list[int] = Field([1], description="batch sizes to scale through, ascending; stops at the first out-of-memory")
    resolutions: list[int] | None = Field(None, description="frame sides in px [default: the processor's]")
    frame_counts: list[int] | None = Field(
        None, description="frames per clip, one run per count; prompts are restated for them [default: as built into the examples]")
    max_new_tokens: int = Field(32, ge=1, description="tokens generated per sample")
    fixed_length: bool = Field(True, description="generate exactly --max-new-tokens (end-of-turn ignored) so runs compare")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="compute dtype (auto: as stored in the checkpoint, e.g. bf16 for vt-quantize --method bf16)")
    device: str = Field("auto", description="cpu, cuda, cuda:1 ... or auto")
    frame_cache: bool = Field(False, description="read frames from the decoded-frame cache (then preprocess excludes video decoding)")
    frame_cache_dir: Path | None = Field(
        None, description="decoded-frame cache for --frame-cache [default: $VT_CACHE_DIR or ~/.cache/videotune/frames]")
    video_max_pixels: int | None = Field(None, ge=1, description=models.VIDEO_MAX_PIXELS_DOC + "; each configuration's "
                                         "tokens_per_frame is then the first example's under the budget")
    trust_remote_code: bool = Field(False, description="allow model code from the checkpoint")
    seed: int = Field(0, description="seed (greedy decoding is deterministic; kept for the manifest)")


# --------------------------------------------------------------------------- report schema


class Summary(BaseModel):
    """Statistics of one quantity over n measurements (seconds for latencies)."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single measurement
    min: float
    p50: float
    p95: float
    p99: float
    max: float


class Throughput(BaseModel):
    samples_per_s: float  # samples / sum of batch totals
    tokens_per_s: float  # generated tokens / sum of (prefill + decode)
    decode_tokens_per_s: float | None  # tokens after each row's first / sum of decode
    frames_per_s: float  # frames through the vision tower / sum of batch totals


class ConfigResult(BaseModel):
    config: str
    resolution_px: int
    frames: int
    batch_size: int
    tokens_per_frame: int
    status: Literal["ok", "oom", "skipped"]
    error: str = ""
    n_batches: int = 0
    n_samples: int = 0
    latency_s: dict[str, Summary] = {}  # preprocess, prefill, decode, total (per batch), per_sample
    throughput: Throughput | None = None
    peak_memory_bytes: int | None = None  # the largest per-batch peak
    peak_memory_bytes_p50: int | None = None


class BatchScalingRow(BaseModel):
    resolution_px: int
    frames: int
    batch_size: int
    status: Literal["ok", "oom", "skipped"]
    latency_per_sample_s: float | None = None  # mean
    samples_per_s: float | None = None
    peak_memory_bytes: int | None = None
    speedup_vs_smallest: float | None = None  # samples_per_s / that of the smallest batch size run


class ProfileReport(BaseModel):
    schema_name: str = Field(PROFILE_SCHEMA, alias="schema")
    model: str
    quantization: dict[str, Any] | None
    model_weights_bytes: int | None
    model_dir_bytes: int | None
    parameters: int
    device: str
    dtype: str
    torch_threads: int
    n_samples: int
    warmup: int
    max_new_tokens: int
    fixed_length: bool
    memory_measure: str
    process_max_rss_bytes: int | None
    configs: list[ConfigResult]
    batch_scaling: list[BatchScalingRow]
    first_oom: dict[str, Any] | None

    model_config = {"populate_by_name": True}


# --------------------------------------------------------------------------- statistics


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample std, min, max and the 50/95/99th percentiles (numpy's linear interpolation
    between closest ranks, Hyndman & Fan type 7)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("summarize: no values")
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return Summary(
        n=int(data.size), mean=float(data.mean()), std=float(data.std(ddof=1)) if data.size > 1 else 0.0,
        min=float(data.min()), p50=float(p50), p95=float(p95), p99=float(p99), max=float(data.max()),
    )


# --------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux without psutil: resident pages from /proc
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_max_rss_bytes() -> int | None:
    """The process's lifetime peak RSS (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class PeakMemory:
    """Peak memory of one measurement: CUDA allocated bytes, or sampled RSS on a CPU."""

    def __init__(self, device: str, interval_s: float = RSS_SAMPLE_INTERVAL_S):
        self.cuda = device.startswith("cuda")
        self.device = device
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, _rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = _rss_bytes()
            self._thread = threading.Thread(target=self._poll, name="rss-peak", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, _rss_bytes())


def is_out_of_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA, and other accelerators), or a CPU allocator's failure."""
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, (RuntimeError, MemoryError)) and (
        isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


# --------------------------------------------------------------------------- one batch


@dataclass
class BatchTiming:
    preprocess_s: float
    prefill_s: float
    decode_s: float
    total_s: float
    prompt_tokens: int
    new_tokens: list[int]
    frames: int  # frames through the vision tower, the whole batch
    peak_memory_bytes: int = 0
    example_ids: list[str] = field(default_factory=list)


@dataclass
class Runner:
    """Everything a batch needs: the model, its processor and how frames are read."""

    model: Any
    processor: Any
    family: models.Family
    device: str
    data_root: Path
    max_new_tokens: int
    fixed_length: bool
    cache: FrameCache | None
    stop_ids: list[int]
    video_max_pixels: int | None = None  # per-clip pixel budget (models.encode_batch)

    def frames_of(self, example: Example, spec: SamplingSpec) -> SampledFrames:
        path = self.data_root / example.media
        return self.cache.get_or_sample(path, spec) if self.cache is not None else sample_frames(path, spec)

    def run(self, batch: Sequence[Example], spec: SamplingSpec) -> BatchTiming:
        with PeakMemory(self.device) as memory:
            t0 = time.perf_counter()
            videos = [self.frames_of(e, spec) for e in batch]
            # the prompts state the frames the sweep gives the model
            prompts = [with_sampled_frames(e, v).messages[-2].content for e, v in zip(batch, videos)]
            inputs = models.encode_batch(
                self.processor, self.family, prompts, [v.frames for v in videos],
                [v.timestamps_s for v in videos], [v.duration_s for v in videos], padding_side="left",
                video_max_pixels=self.video_max_pixels,
            )
            answers = models.generate(
                self.model, self.processor.tokenizer, inputs, max_new_tokens=self.max_new_tokens, stop_ids=self.stop_ids,
                min_new_tokens=self.max_new_tokens if self.fixed_length else None,
            )
            total_s = time.perf_counter() - t0
        return BatchTiming(
            preprocess_s=total_s - answers.total_s, prefill_s=answers.prefill_s, decode_s=answers.decode_s,
            total_s=total_s, prompt_tokens=answers.prompt_tokens, new_tokens=answers.new_tokens,
            frames=sum(len(v.frames) for v in videos), peak_memory_bytes=memory.peak_bytes,
            example_ids=[e.id for e in batch],
        )


# --------------------------------------------------------------------------- the grid


def config_name(resolution: int, frames: int, batch_size: int) -> str:
    return f"r{resolution}_f{frames}_b{batch_size}"


def _cycle(examples: Sequence[Example]) -> Iterator[Example]:
    return itertools.cycle(examples)


def profile_config(
    run_batch: Callable[[Sequence[Example]], BatchTiming],
    examples: Sequence[Example],
    batch_size: int,
    n_samples: int,
    warmup: int,
    on_batch: Callable[[], None] | None = None,
) -> list[BatchTiming]:
    """Warm-up batches, then ceil(n_samples / batch_size) recorded ones (examples cycled)."""
    source = _cycle(examples)
    for _ in range(warmup):
        run_batch([next(source) for _ in range(batch_size)])
        if on_batch:
            on_batch()
    timings = []
    for _ in range(math.ceil(n_samples / batch_size)):
        timings.append(run_batch([next(source) for _ in range(batch_size)]))
        if on_batch:
            on_batch()
    return timings


def config_result(resolution: int, frames: int, batch_size: int, tokens_per_frame: int,
                  timings: Sequence[BatchTiming]) -> ConfigResult:
    """Statistics of the recorded batches of one configuration."""
    totals = [t.total_s for t in timings]
    generation_s = sum(t.prefill_s + t.decode_s for t in timings)
    decode_s = sum(t.decode_s for t in timings)
    tokens = sum(sum(t.new_tokens) for t in timings)
    later_tokens = sum(sum(max(0, n - 1) for n in t.new_tokens) for t in timings)
    n_samples = sum(len(t.new_tokens) for t in timings)
    peaks = [t.peak_memory_bytes for t in timings]
    return ConfigResult(
        config=config_name(resolution, frames, batch_size), resolution_px=resolution, frames=frames,
        batch_size=batch_size, tokens_per_frame=tokens_per_frame, status="ok", n_batches=len(timings),
        n_samples=n_samples,
        latency_s={
            "preprocess": summarize([t.preprocess_s for t in timings]),
            "prefill": summarize([t.prefill_s for t in timings]),
            "decode": summarize([t.decode_s for t in timings]),
            "total": summarize(totals),
            "per_sample": summarize([t.total_s / len(t.new_tokens) for t in timings]),
        },
        throughput=Throughput(
            samples_per_s=n_samples / sum(totals),
            tokens_per_s=tokens / generation_s if generation_s > 0 else 0.0,
            decode_tokens_per_s=later_tokens / decode_s if decode_s > 0 else None,
            frames_per_s=sum(t.frames for t in timings) / sum(totals),
        ),
        peak_memory_bytes=max(peaks), peak_memory_bytes_p50=int(np.percentile(peaks, 50)),
    )


def sweep_batch_sizes(
    make_runner: Callable[[int], Callable[[Sequence[Example]], BatchTiming]],
    examples: Sequence[Example],
    resolution: int,
    frames: int,
    tokens_per_frame: int,
    batch_sizes: Sequence[int],
    n_samples: int,
    warmup: int,
    on_batch: Callable[[], None] | None = None,
    after_oom: Callable[[], None] | None = None,
) -> tuple[list[ConfigResult], list[tuple[int, BatchTiming]]]:
    """Every batch size in order until the first out-of-memory: that one is `oom`, the rest `skipped`.

    Returns the configuration results and the recorded timings (with their batch size) for the CSV.
    """
    results: list[ConfigResult] = []
    recorded: list[tuple[int, BatchTiming]] = []
    oom_error: str | None = None
    for batch_size in batch_sizes:
        name = config_name(resolution, frames, batch_size)
        if oom_error is not None:
            results.append(ConfigResult(config=name, resolution_px=resolution, frames=frames, batch_size=batch_size,
                                        tokens_per_frame=tokens_per_frame, status="skipped",
                                        error=f"a smaller batch ran out of memory: {oom_error}"))
            continue
        try:
            timings = profile_config(make_runner(batch_size), examples, batch_size, n_samples, warmup, on_batch)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            oom_error = f"batch size {batch_size}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            log.warning("out of memory at %s; larger batch sizes skipped", name)
            results.append(ConfigResult(config=name, resolution_px=resolution, frames=frames, batch_size=batch_size,
                                        tokens_per_frame=tokens_per_frame, status="oom", error=oom_error))
            if after_oom:
                after_oom()
            continue
        results.append(config_result(resolution, frames, batch_size, tokens_per_frame, timings))
        recorded.extend((batch_size, t) for t in timings)
    return results, recorded


def batch_scaling_rows(results: Sequence[ConfigResult]) -> list[BatchScalingRow]:
    """One row per (frame size, frames, batch size): per-sample latency, throughput, memory, and
    throughput relative to the smallest batch size of the same frame size and count."""
    rows = []
    base: dict[tuple[int, int], float] = {}
    for r in sorted(results, key=lambda r: (r.resolution_px, r.frames, r.batch_size)):
        key = (r.resolution_px, r.frames)
        if r.status != "ok" or r.throughput is None:
            rows.append(BatchScalingRow(resolution_px=r.resolution_px, frames=r.frames, batch_size=r.batch_size, status=r.status))
            continue
        base.setdefault(key, r.throughput.samples_per_s)
        rows.append(BatchScalingRow(
            resolution_px=r.resolution_px, frames=r.frames, batch_size=r.batch_size, status="ok",
            latency_per_sample_s=r.latency_s["per_sample"].mean, samples_per_s=r.throughput.samples_per_s,
            peak_memory_bytes=r.peak_memory_bytes, speedup_vs_smallest=r.throughput.samples_per_s / base[key],
        ))
    return rows


def csv_rows(model: str, resolution: int, frames: int, recorded: Sequence[tuple[int, BatchTiming]]) -> Iterator[dict[str, Any]]:
    """One row per recorded sample; a sample carries its batch's timings (it waited for all of them).
    `model` (as passed to --model) lets vt-analyze plot read the file as is (latency_violin, batch_scaling)."""
    batch_index: dict[int, int] = {}
    for batch_size, timing in recorded:
        index = batch_index.get(batch_size, 0)
        batch_index[batch_size] = index + 1
        for row, (example_id, new_tokens) in enumerate(zip(timing.example_ids, timing.new_tokens)):
            yield {
                "model": model, "config": config_name(resolution, frames, batch_size), "resolution_px": resolution, "frames": frames,
                "batch_size": batch_size, "batch_index": index, "row": row, "example_id": example_id,
                "preprocess_s": round(timing.preprocess_s, 6), "prefill_s": round(timing.prefill_s, 6),
                "decode_s": round(timing.decode_s, 6), "total_s": round(timing.total_s, 6),
                "latency_per_sample_s": round(timing.total_s / len(timing.new_tokens), 6),
                "prompt_tokens": timing.prompt_tokens, "new_tokens": new_tokens,
                "peak_memory_bytes": timing.peak_memory_bytes,
            }


# --------------------------------------------------------------------------- the command


def _release_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def run_profile(config: ProfileConfig) -> ProfileReport:
    import torch

    if sorted(set(config.batch_sizes)) != list(config.batch_sizes) or min(config.batch_sizes) < 1:
        raise InputError(f"--batch-sizes {config.batch_sizes}: give distinct positive sizes in ascending order")
    for name, values in (("resolutions", config.resolutions), ("frame-counts", config.frame_counts)):
        if values is not None and (not values or min(values) < 1):
            raise InputError(f"--{name} {values}: give positive integers")
    seed_everything(config.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    manifest = RunManifest("infer", "profile", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.examples)
    examples = read_jsonl(config.examples, Example)
    if not examples:
        raise InputError(f"{config.examples}: no examples")
    check_media_paths(config.examples, config.data_root)
    for frames in config.frame_counts or []:
        check_frames_restatable(examples, frames, config.examples)
    ref = models.resolve(config.model)
    ref.family.check_video_max_pixels(config.video_max_pixels)
    if ref.is_local:
        manifest.add_input(ref.source, name="model")
    model, processor = models.load(ref, dtype=config.dtype, trust_remote_code=config.trust_remote_code, device=device)
    model.eval()
    runner = Runner(
        model=model, processor=processor, family=ref.family, device=device, data_root=config.data_root,
        max_new_tokens=config.max_new_tokens, fixed_length=config.fixed_length,
        cache=FrameCache(config.frame_cache_dir or default_cache_dir()) if config.frame_cache else None,
        stop_ids=models.stop_token_ids(processor.tokenizer, ref.family), video_max_pixels=config.video_max_pixels,
    )
    input_dtype = _input_dtype(model)
    resolutions = config.resolutions or [ref.family.frame_size(processor)]
    frame_counts = config.frame_counts or [examples[0].frames.n if examples[0].frames else 1]
    grid = list(itertools.product(resolutions, frame_counts))
    per_config = config.warmup + math.ceil(config.n_samples / min(config.batch_sizes))
    results: list[ConfigResult] = []
    csv_path = config.out / "profile_samples.csv"
    with atomic_open(csv_path, "w") as fh, Progress("profile", len(grid) * len(config.batch_sizes) * per_config) as progress:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for resolution, frames in grid:
            tokens_per_frame = ref.family.set_frame_size(processor, model.config, resolution)
            spec = SamplingSpec(n_frames=frames, size=resolution)
            if config.video_max_pixels is not None:
                first = runner.frames_of(examples[0], spec).frames
                tokens_per_frame = ref.family.budget_frame(processor, first.shape[1], first.shape[2], len(first),
                                                           config.video_max_pixels)[2]

            def make_runner(batch_size: int, spec: SamplingSpec = spec) -> Callable[[Sequence[Example]], BatchTiming]:
                return lambda batch: runner.run(batch, spec)

            found, recorded = sweep_batch_sizes(
                make_runner, examples, resolution, frames, tokens_per_frame, config.batch_sizes, config.n_samples,
                config.warmup, on_batch=progress.advance, after_oom=lambda: _release_memory(device),
            )
            results.extend(found)
            writer.writerows(csv_rows(config.model, resolution, frames, recorded))
    first_oom = next(({"config": r.config, "batch_size": r.batch_size, "error": r.error} for r in results if r.status == "oom"), None)
    report = ProfileReport(
        model=config.model,
        quantization=models.quantization_summary(models.read_quantization(ref.source)) if ref.is_local else None,
        model_weights_bytes=models.weights_bytes(ref.source) if ref.is_local else None,
        model_dir_bytes=models.dir_bytes(ref.source) if ref.is_local else None,
        parameters=sum(p.numel() for p in model.parameters()) + _packed_parameters(model),
        device=device, dtype=str(input_dtype).replace("torch.", "") if input_dtype else config.dtype,
        torch_threads=torch.get_num_threads(), n_samples=config.n_samples, warmup=config.warmup,
        max_new_tokens=config.max_new_tokens, fixed_length=config.fixed_length,
        memory_measure="torch.cuda.max_memory_allocated per batch" if device.startswith("cuda")
        else f"process RSS sampled every {RSS_SAMPLE_INTERVAL_S * 1000:g} ms during each batch",
        process_max_rss_bytes=process_max_rss_bytes(), configs=results, batch_scaling=batch_scaling_rows(results),
        first_oom=first_oom,
    )
    write_json(config.out / "profile.json", report.model_dump(mode="json", by_alias=True))
    write_profile_summary(config.out, report, csv_path)
    manifest.write(outputs={"profile": "profile.json", "samples": csv_path.name},
                   summary={"configs": len(results), "first_oom": first_oom, "device": device})
    return report


def _input_dtype(model) -> Any:
    """The float dtype the model computes in, for the report."""
    import torch

    for p in model.parameters():
        if p.is_floating_point() and p.dtype in (torch.float32, torch.bfloat16, torch.float16):
            return p.dtype
    return None


def _packed_parameters(model) -> int:
    """Weights held by torch.ao dynamic-quantized modules, which model.parameters() does not list."""
    count = 0
    for m in model.modules():
        if hasattr(m, "_packed_params") and callable(getattr(m, "weight", None)):
            bias = m.bias() if callable(getattr(m, "bias", None)) else None
            count += m.weight().numel() + (bias.numel() if bias is not None else 0)
    return count


def write_profile_summary(out: Path, report: ProfileReport, samples_csv: Path) -> None:
    """OUT/summary.json (core.summaries.ProfileSummary): the first configuration that ran, and every sample."""
    from videotune.core.summaries import ProfileSample, ProfileSummary, write_summary

    ok = next((c for c in report.configs if c.status == "ok"), None)
    figures: dict[str, Any] = {}
    if ok is not None:
        latency = ok.latency_s.get("per_sample") or ok.latency_s["total"]
        figures = {"n_samples": ok.n_samples, "batch_size": ok.batch_size, "frames": ok.frames,
                   "resolution_px": ok.resolution_px, "latency_p50_s": latency.p50, "latency_p95_s": latency.p95,
                   "latency_mean_s": latency.mean, "peak_memory_bytes": ok.peak_memory_bytes,
                   "samples_per_s": ok.throughput.samples_per_s if ok.throughput else None,
                   "tokens_per_s": ok.throughput.tokens_per_s if ok.throughput else None}
    with samples_csv.open(encoding="utf-8") as fh:
        samples = [ProfileSample(latency_s=float(r["latency_per_sample_s"]), batch_size=int(r["batch_size"]),
                                 frames=int(r["frames"]), resolution_px=int(r["resolution_px"]))
                   for r in csv.DictReader(fh)]
    write_summary(out, ProfileSummary(model_weights_bytes=report.model_weights_bytes, samples=samples, **figures))
