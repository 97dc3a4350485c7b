"""vt-infer: run models over examples."""

from __future__ import annotations

from rich.console import Console

from videotune.core.cli import add_command, make_app, run_app
from videotune.infer.generate import GenerateConfig, run_generate
from videotune.infer.profile import ProfileConfig, run_profile

console = Console(stderr=True)
app = make_app("Run video-language models over examples: batched greedy generation with timing, and profiling.")


@app.callback()
def _root() -> None:
    """Run video-language models over examples: batched greedy generation with timing, and profiling."""


def generate_command(config: GenerateConfig) -> None:
    summary = run_generate(config)
    console.print(f"{summary['n_predictions']}/{summary['n_examples']} predictions in {config.out / 'predictions.jsonl'}"
                  + (f" ({summary['n_errors_this_run']} errors)" if summary["n_errors_this_run"] else ""))


add_command(app, "generate", GenerateConfig, generate_command, example=(
    "vt-infer generate --model results/demo/train/model --examples data/gym/split/examples/test.jsonl "
    "--data-root data/gym/raw --out results/demo/infer"))


def profile_command(config: ProfileConfig) -> None:
    report = run_profile(config)
    for row in report.configs:
        if row.status != "ok":
            console.print(f"{row.config}: {row.status} {row.error}")
            continue
        total = row.latency_s["total"]
        console.print(
            f"{row.config}: total p50 {total.p50 * 1000:.1f} ms p95 {total.p95 * 1000:.1f} ms, "
            f"{row.latency_s['per_sample'].mean * 1000:.1f} ms/sample, {row.throughput.samples_per_s:.2f} samples/s, "
            f"{row.throughput.tokens_per_s:.1f} tokens/s, peak {row.peak_memory_bytes / 2**20:.0f} MiB"
        )
    console.print(f"wrote {config.out / 'profile.json'} and {config.out / 'profile_samples.csv'}")


add_command(app, "profile", ProfileConfig, profile_command, example=(
    "vt-infer profile --model results/int8-dynamic/model --examples data/gym/split/examples/test.jsonl "
    "--data-root data/gym/raw --out results/int8-dynamic/profile --n-samples 4 --warmup 1 --batch-sizes 1,2 "
    "--resolutions 32,64 --frame-counts 4,8"))


# --------------------------------------------------------------------------- streaming DST (issue 8)
from videotune.infer.stream import StreamConfig, run_stream  # noqa: E402


def stream_command(config: StreamConfig) -> None:
    summary = run_stream(config)
    console.print(f"streamed {summary['n_videos']} videos ({summary['n_frames']} frames, {summary['n_speak']} responses, "
                  f"{summary['n_dst_update']} DST updates, {summary['n_cache_rebuilds']} cache rebuilds); "
                  f"events in {config.out / 'events.jsonl'}")


add_command(app, "stream", StreamConfig, stream_command, example=(
    "vt-infer stream --model results/dst/train/model --examples data/assembly/stream/test.jsonl "
    "--data-root data/assembly/raw --out results/dst/stream"))


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
