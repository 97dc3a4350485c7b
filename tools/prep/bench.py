"""Frame-sampler benchmark (issue 3): 16 frames sampled uniformly from a 10 s, 30 fps, 640x480 H.264 clip.

Side by side, in one process and on one clip:
- vt: core.video.sample_frames (one demux pass, keyframe-aware seeking, RGB for kept frames only);
- (a) OpenCV reading every frame with VideoCapture.read and keeping 16 (converted to RGB);
- (b) the ffmpeg CLI decoding the whole clip to the null muxer: the decode-everything limit;
- the frame cache: the first read (sample + store), a second read as a new process makes it (the
  file's content hash recomputed) and one in the same process (hash remembered, a later epoch).
Targets: vt at least as fast as (b), at least 2x faster than (a); a cached read at least 20x
faster than the first. Each figure is the median of --repeats rounds after one warm-up round; a round
runs every reader once, in an order rotated from round to round.

    python -m videotune.prep.bench --out results/bench/prep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import atomic_write_text, write_json
from videotune.core.video import FrameCache, SamplingSpec, encode_video, probe, sample_frames

TARGET_VS_FFMPEG = 1.0  # vt's time must not exceed ffmpeg's decode-everything time
TARGET_VS_OPENCV = 2.0  # vt at least 2x faster than OpenCV reading every frame
TARGET_CACHE = 20.0  # a cached read at least 20x faster than the first


def synthetic_frames(seconds: float, fps: float, width: int, height: int, seed: int = 0):
    """Moving shapes over a drifting gradient with a little noise: content a codec must really code."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.integers(0, 12, (height, width, 3), dtype=np.uint8)
    for i in range(round(seconds * fps)):
        t = i / fps
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = ((xx / width * 200 + 40 * t) % 256).astype(np.uint8)
        frame[..., 1] = ((yy / height * 200 + 25 * t) % 256).astype(np.uint8)
        frame[..., 2] = 90
        for k in range(4):
            cx = int((0.5 + 0.4 * np.sin(t * (k + 1) * 0.9 + k)) * width)
            cy = int((0.5 + 0.4 * np.cos(t * (k + 1) * 0.7 + 2 * k)) * height)
            r = max(4, width // 16)
            frame[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = (255 - 50 * k, 60 * k, 30 + 40 * k)
        yield frame + noise  # uint8 wraps only at the brightest pixels, which the shapes never reach


def make_clip(path: Path, seconds: float, fps: float, width: int, height: int) -> Path:
    """The benchmark clip: H.264 (x264 veryfast, CRF 23), a keyframe every 2 s."""
    encode_video(path, synthetic_frames(seconds, fps, width, height), fps, keyframe_interval_s=2.0)
    return path


def opencv_every_frame(path: Path, n_frames: int) -> np.ndarray:
    """(a): read every frame with OpenCV, keep the seed's uniform positions, RGB for those kept."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, total - 1, n_frames, dtype=int).tolist())
    kept = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            kept.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    return np.stack(kept)


def ffmpeg_null(path: Path, ffmpeg: str) -> None:
    """(b): decode the whole clip, write nothing."""
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True)


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000, "runs": len(times)}


def cache_reads(path: Path, spec: SamplingSpec) -> dict[str, float]:
    """One round of the frame cache's reads (s): the first into an empty cache folder, then a hit as a new
    process makes it (the file hashed again) and a hit in the same process (the hash remembered, as in a
    later epoch)."""
    import videotune.core.video as video

    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vt-bench-cache-") as root:
        cache = FrameCache(root)
        for name in ("cache_first_read", "cache_second_read", "cache_second_read_same_process"):
            if name != "cache_second_read_same_process":
                video._HASH_MEMO.clear()  # a new process: the file is hashed again
            start = time.perf_counter()
            cache.get_or_sample(path, spec)
            times[name] = time.perf_counter() - start
    return times


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Every contender once per round, the order rotated each round: a machine that slows down or speeds
    up during the run moves every contender alike, so the ratios stay fair. A contender returns None
    (timed as a whole) or a dict of named times in s (timed inside, e.g. the cache's reads)."""
    names = list(contenders)
    runs: dict[str, list[float]] = {}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            inner = contenders[name]()
            elapsed = time.perf_counter() - start
            if round_index < warmup:
                continue
            for key, value in (inner.items() if isinstance(inner, dict) else [(name, elapsed)]):
                runs.setdefault(key, []).append(value)
    return {name: _stats(times) for name, times in runs.items()}


def run_bench(clip: Path, n_frames: int, repeats: int, ffmpeg: str | None) -> dict[str, Any]:
    info = probe(clip)
    spec = SamplingSpec(n_frames=n_frames)
    results: dict[str, Any] = {
        "clip": {"path": str(clip), "duration_s": info.duration_s, "fps": info.fps, "n_frames": info.n_frames,
                 "width": info.width, "height": info.height, "bytes": clip.stat().st_size},
        "n_frames": n_frames,
        "timings": {},
    }
    contenders: dict[str, Callable[[], Any]] = {
        "vt_sample_frames": lambda: sample_frames(clip, spec),
        "opencv_every_frame": lambda: opencv_every_frame(clip, n_frames),
    }
    if ffmpeg:
        contenders["ffmpeg_decode_null"] = lambda: ffmpeg_null(clip, ffmpeg)
    contenders["cache"] = lambda: cache_reads(clip, spec)
    results["timings"] = timings = interleaved(contenders, repeats)

    # the same frames: vt and OpenCV pick the same positions; only the YUV->RGB conversion differs
    ours, theirs = sample_frames(clip, spec).frames, opencv_every_frame(clip, n_frames)
    results["vt_vs_opencv_mean_abs_diff"] = float(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).mean())

    vt = timings["vt_sample_frames"]["median_ms"]
    ratios: dict[str, Any] = {
        "opencv_over_vt": {"value": timings["opencv_every_frame"]["median_ms"] / vt, "target": TARGET_VS_OPENCV},
        "cache_first_over_second": {"value": timings["cache_first_read"]["median_ms"]
                                    / timings["cache_second_read"]["median_ms"], "target": TARGET_CACHE},
        "cache_first_over_second_same_process": {"value": timings["cache_first_read"]["median_ms"]
                                                 / timings["cache_second_read_same_process"]["median_ms"],
                                                 "target": TARGET_CACHE},
    }
    if ffmpeg:
        ratios["ffmpeg_over_vt"] = {"value": timings["ffmpeg_decode_null"]["median_ms"] / vt, "target": TARGET_VS_FFMPEG}
    for ratio in ratios.values():
        ratio["met"] = ratio["value"] >= ratio["target"]
    results["ratios"] = ratios
    return results


def host() -> dict[str, Any]:
    import av
    import cv2

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "pyav": av.__version__, "ffmpeg_libs": av.library_versions.get("libavcodec"), "opencv": cv2.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_avg_1min_at_start": load}


def markdown(results: dict[str, Any]) -> str:
    clip = results["clip"]
    lines = [
        f"Clip: {clip['duration_s']:.1f} s, {clip['fps']:g} fps, {clip['width']}x{clip['height']} H.264 "
        f"({clip['n_frames']} frames, {clip['bytes'] / 1e6:.2f} MB), {results['n_frames']} frames sampled uniformly.",
        "",
        "| reader | median (ms) | min (ms) |",
        "|---|---|---|",
    ]
    names = {"vt_sample_frames": "vt sample_frames", "opencv_every_frame": "(a) OpenCV, every frame read",
             "ffmpeg_decode_null": "(b) ffmpeg CLI, whole clip to null", "cache_first_read": "vt frame cache, first read",
             "cache_second_read": "vt frame cache, second read (new process: file re-hashed)",
             "cache_second_read_same_process": "vt frame cache, second read (same process: hash remembered)"}
    for key, label in names.items():
        if key in results["timings"]:
            t = results["timings"][key]
            lines.append(f"| {label} | {t['median_ms']:.1f} | {t['min_ms']:.1f} |")
    lines += ["", "| ratio | value | target | met |", "|---|---|---|---|"]
    for key, ratio in results["ratios"].items():
        lines.append(f"| {key} | {ratio['value']:.2f}x | >= {ratio['target']:g}x | {'yes' if ratio['met'] else 'NO'} |")
    h = results["host"]
    lines += ["", f"Host: {h['platform']}, {h['cpu_count']} CPUs, load average {h['load_avg_1min_at_start']} at the start; "
              f"PyAV {h['pyav']}, OpenCV {h['opencv']}; {results['timings']['vt_sample_frames']['runs']} runs each "
              f"after one warm-up. vt vs OpenCV frames: mean |difference| {results['vt_vs_opencv_mean_abs_diff']:.2f} "
              "grey levels (YUV->RGB conversion only)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/prep"), help="folder for bench.json and bench.md")
    parser.add_argument("--clip", type=Path, default=None, help="an existing clip to time [default: a synthetic one]")
    parser.add_argument("--seconds", type=float, default=10.0, help="synthetic clip length, s")
    parser.add_argument("--fps", type=float, default=30.0, help="synthetic clip frame rate")
    parser.add_argument("--width", type=int, default=640, help="synthetic clip width, px")
    parser.add_argument("--height", type=int, default=480, help="synthetic clip height, px")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled uniformly")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each runs every reader once; medians reported)")
    args = parser.parse_args(argv)

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg CLI not found: (b) is left out (apt-get install ffmpeg)", file=sys.stderr)
    clip = args.clip
    if clip is None:
        clip = args.out / f"clip_{args.seconds:g}s_{args.fps:g}fps_{args.width}x{args.height}.mp4"
        if not clip.is_file():
            make_clip(clip, args.seconds, args.fps, args.width, args.height)
    machine = host()  # before the run: the load average says how busy the machine was
    results = run_bench(clip, args.frames, args.repeats, ffmpeg)
    results["host"] = machine
    write_json(args.out / "bench.json", results)
    text = markdown(results)
    atomic_write_text(args.out / "bench.md", text)
    print(text)
    print(json.dumps({k: round(v["value"], 2) for k, v in results["ratios"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
