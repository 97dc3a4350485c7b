"""Frame-sampler benchmark: core.video's sampler against the decoders our peers use, on one clip and the same frames.

Cases (--cases; every reader of a case takes the same frame positions from the same input):
- main: 16 frames uniformly from a synthetic 10 s, 30 fps, 640x480 H.264 clip (a keyframe every 2 s);
- folder: that clip's 300 frames as JPEG files (quality 90) with timestamps.txt, 16 frames;
- 1080p: the main clip's content at 1920x1080, 16 frames;
- long: a 5-minute 640x480 clip sampled at 1 fps with at most 64 frames (64 frames spread over it).

Readers:
- vt: core.video.sample_frames (`VT_DECODE_WORKERS` decoders side by side: 8 by default, also 1 and 2);
- torchcodec 0.17 (qwen-vl-utils' and ms-swift's Qwen reader): `VideoDecoder(seek_mode=exact|approximate,
  num_ffmpeg_threads=N).get_frames_at(positions)`, N = 1 (its default), 0 (FFmpeg picks), 2, 8 (qwen-vl-utils' default);
- decord 0.6 (qwen-vl-utils' other reader, InternVL's): `VideoReader(num_threads=N).get_batch(positions)`, N = 0
  (its default: decord picks), 1, 2;
- PyAV decoding every frame and keeping the positions, as LLaMA-Factory reads video (PyAV's default threading,
  and frame threads);
- main case only: OpenCV reading every frame, the ffmpeg CLI decoding the whole clip to null, the frame cache's reads;
- folder case: PIL opening each kept frame (how qwen-vl-utils and LLaMA-Factory read a list of frames) and OpenCV's imread.

A calibration pass (--calibration rounds) runs every thread setting of every decoder; the timed rounds
(--repeats; --repeats-large for 1080p and long) then run each decoder at its default and at its best setting.
A round runs every reader once, in an order rotated from round to round, so a machine that slows down or
speeds up moves every reader alike. Figures: the median wall time and the median CPU time (every thread of
this process, plus child processes) per reader. The ratio that counts: the best peer's median (any
decoder, any setting) over vt's at its default, against a target of 1.5x.

    python -m videotune.prep.bench --out results/bench/prep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import atomic_write_text, write_json
from videotune.core.video import FrameCache, SamplingSpec, encode_video, frame_times, probe, sample_frames

TARGET_VS_BEST_PEER = 1.5  # vt at least 1.5x faster than the fastest peer decoder at its best setting
TARGET_VS_FFMPEG = 1.0  # vt's time must not exceed ffmpeg's decode-everything time
TARGET_VS_OPENCV = 2.0  # vt at least 2x faster than OpenCV reading every frame
TARGET_CACHE = 20.0  # a cached read at least 20x faster than the first
CASES = ("main", "folder", "1080p", "long")


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


def pyav_every_frame(path: Path, positions: list[int], frame_threads: bool) -> list[np.ndarray]:
    """LLaMA-Factory's reader: decode every frame with PyAV, keep the sampled positions (RGB)."""
    import av

    wanted = set(positions)
    kept = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if frame_threads:
            stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                kept.append(frame.to_ndarray(format="rgb24"))
            if index >= positions[-1]:
                break
    return kept


def torchcodec_frames(path: Path, positions: list[int], seek_mode: str, threads: int) -> Any:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), seek_mode=seek_mode, num_ffmpeg_threads=threads, dimension_order="NHWC")
    return decoder.get_frames_at(indices=positions).data


def decord_frames(path: Path, positions: list[int], threads: int) -> np.ndarray:
    import decord

    return decord.VideoReader(str(path), num_threads=threads).get_batch(positions).asnumpy()


def pil_frames(files: list[Path]) -> list[np.ndarray]:
    from PIL import Image

    out = []
    for file in files:
        with Image.open(file) as image:
            out.append(np.asarray(image.convert("RGB")))
    return out


def opencv_imread(files: list[Path]) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB) for file in files]


def vt_frames(path: Path, spec: SamplingSpec, workers: int) -> np.ndarray:
    previous = os.environ.get("VT_DECODE_WORKERS")
    os.environ["VT_DECODE_WORKERS"] = str(workers)
    try:
        return sample_frames(path, spec).frames
    finally:
        if previous is None:
            del os.environ["VT_DECODE_WORKERS"]
        else:
            os.environ["VT_DECODE_WORKERS"] = previous


# --------------------------------------------------------------------------- readers and timing


@dataclass
class Reader:
    name: str  # decoder and setting: "torchcodec exact, 8 threads"
    decoder: str  # what "best setting" is chosen within: "torchcodec exact"
    default: bool  # the decoder's own default setting
    read: Callable[[], Any]
    peer: bool = True  # a peer's decoder (vt, the CLI and the cache are not)


def _cpu_s() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                loads: list[float] | None = None) -> dict[str, dict[str, float]]:
    """Every contender once per round, the order rotated each round: a machine that slows down or speeds
    up during the run moves every contender alike, so the ratios stay fair. A contender returns None or
    frames (timed as a whole) or a dict of named times in s (timed inside, e.g. the cache's reads).
    Medians of the wall time and of the CPU time (every thread, and child processes). `loads` gets the
    machine's 1-minute load average after every round."""
    names = list(contenders)
    runs: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            cpu_start, start = _cpu_s(), time.perf_counter()
            inner = contenders[name]()
            elapsed, cpu_used = time.perf_counter() - start, _cpu_s() - cpu_start
            if round_index < warmup:
                continue
            if isinstance(inner, dict):
                for key, value in inner.items():
                    runs.setdefault(key, []).append(value)
            else:
                runs.setdefault(name, []).append(elapsed)
                cpu.setdefault(name, []).append(cpu_used)
        if loads is not None and hasattr(os, "getloadavg"):
            loads.append(os.getloadavg()[0])
    stats = {}
    for name, times in runs.items():
        stats[name] = {"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000, "runs": len(times)}
        if name in cpu:
            stats[name]["cpu_median_ms"] = statistics.median(cpu[name]) * 1000
    return stats


def _mean_abs_diff(ours: np.ndarray, theirs: Any) -> float:
    theirs = np.stack([np.asarray(f) for f in theirs]) if isinstance(theirs, list) else np.asarray(theirs)
    return float(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).mean())


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    path: Path  # the clip or frames folder
    spec: SamplingSpec  # what vt samples
    positions: list[int]  # the same frames, as positions, for the peers
    readers: list[Reader] = field(default_factory=list)
    with_references: bool = False  # OpenCV, the ffmpeg CLI and the cache (the main case)


def _vt_readers(case: Case) -> list[Reader]:
    return [Reader(f"vt, {w} decoders" if w > 1 else "vt, 1 decoder", "vt", w == 8,
                   lambda w=w: vt_frames(case.path, case.spec, w), peer=False) for w in (8, 1, 2)]


def unavailable(module: str) -> str | None:
    """Why a peer decoder cannot be imported here (None: it can): a missing package, or, for torchcodec,
    missing FFmpeg libraries (it loads the system's: tools/prep/install_system_deps.sh)."""
    try:
        if module == "torchcodec":
            from torchcodec.decoders import VideoDecoder  # noqa: F401 - loads the FFmpeg libraries
        else:
            __import__(module)
    except Exception as err:  # noqa: BLE001 - ImportError, or OSError/RuntimeError from loading native libraries
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def _video_peers(case: Case) -> list[Reader]:
    path, positions = case.path, case.positions
    readers = []
    if unavailable("torchcodec") is None:
        for mode in ("exact", "approximate"):
            for threads in (1, 0, 2, 8):
                label = {0: "FFmpeg's choice of threads", 1: "1 thread"}.get(threads, f"{threads} threads")
                readers.append(Reader(f"torchcodec {mode}, {label}", f"torchcodec {mode}", threads == 1,
                                      lambda m=mode, t=threads: torchcodec_frames(path, positions, m, t)))
    if unavailable("decord") is None:
        for threads in (0, 1, 2):
            label = {0: "decord's choice of threads", 1: "1 thread"}.get(threads, f"{threads} threads")
            readers.append(Reader(f"decord, {label}", "decord", threads == 0,
                                  lambda t=threads: decord_frames(path, positions, t)))
    for frame_threads in (False, True):
        readers.append(Reader(f"PyAV every frame (LLaMA-Factory), {'frame threads' if frame_threads else 'default threads'}",
                              "PyAV every frame", not frame_threads,
                              lambda f=frame_threads: pyav_every_frame(path, positions, f)))
    return readers


def folder_of_frames(clip: Path, folder: Path, quality: int = 90) -> Path:
    """Every frame of `clip` as JPEG (`quality`) with timestamps.txt: a pre-extracted copy of the clip."""
    from PIL import Image

    if (folder / "timestamps.txt").is_file():
        return folder
    info, times = frame_times(clip)
    every = sample_frames(clip, SamplingSpec(n_frames=info.n_frames))
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(every.frames):
        Image.fromarray(frame).save(folder / f"frame_{index:05d}.jpg", quality=quality)
    atomic_write_text(folder / "timestamps.txt", "\n".join(repr(t) for t in times) + "\n")
    return folder


def build_case(name: str, out: Path, args: argparse.Namespace) -> Case:
    size = f"{args.width}x{args.height}"
    main = out / f"clip_{args.seconds:g}s_{args.fps:g}fps_{size}.mp4"
    if name in ("main", "folder") and not main.is_file():
        make_clip(main, args.seconds, args.fps, args.width, args.height)
    if name == "main":
        path, spec = main, SamplingSpec(n_frames=args.frames)
    elif name == "folder":
        path, spec = folder_of_frames(main, out / f"frames_{args.seconds:g}s_{args.fps:g}fps_{size}"), SamplingSpec(n_frames=args.frames)
    elif name == "1080p":
        path = out / f"clip_{args.seconds:g}s_{args.fps:g}fps_1920x1080.mp4"
        if not path.is_file():
            make_clip(path, args.seconds, args.fps, 1920, 1080)
        spec = SamplingSpec(n_frames=args.frames)
    elif name == "long":
        path = out / f"clip_{args.long_seconds:g}s_{args.fps:g}fps_{size}.mp4"
        if not path.is_file():
            make_clip(path, args.long_seconds, args.fps, args.width, args.height)
        spec = SamplingSpec(n_frames=None, target_fps=1.0, max_frames=args.long_max_frames)
    else:
        raise ValueError(f"unknown case {name!r}; cases: {', '.join(CASES)}")
    info, every = frame_times(path)
    chosen = sample_frames(path, SamplingSpec(**{**spec.__dict__, "size": 16})).timestamps_s  # vt's pick, small
    positions = [every.index(t) for t in chosen]
    case = Case(name, path, spec, positions, with_references=name == "main")
    case.readers = _vt_readers(case)
    if name == "folder":
        files = sorted(p for p in path.iterdir() if p.suffix == ".jpg")
        kept = [files[p] for p in positions]
        case.readers += [Reader("PIL, each kept frame (qwen-vl-utils, LLaMA-Factory)", "PIL", True, lambda: pil_frames(kept)),
                         Reader("OpenCV imread, each kept frame", "OpenCV imread", True, lambda: opencv_imread(kept))]
    else:
        case.readers += _video_peers(case)
    return case


def run_case(case: Case, repeats: int, calibration: int, ffmpeg: str | None) -> dict[str, Any]:
    info = probe(case.path)
    result: dict[str, Any] = {
        "input": {"path": str(case.path), "kind": "frames folder" if case.path.is_dir() else "video",
                  "duration_s": info.duration_s, "fps": info.fps, "n_frames": info.n_frames, "width": info.width,
                  "height": info.height},
        "spec": case.spec.key(), "n_sampled": len(case.positions),
    }
    # calibration: every setting of every decoder, to find each one's best
    loads: list[float] = []  # the 1-minute load average after every round: how busy the machine was
    calibrated = interleaved({r.name: r.read for r in case.readers}, calibration, loads=loads) if calibration else {}
    best: dict[str, str] = {}
    for reader in case.readers:
        current = best.get(reader.decoder)
        if current is None or calibrated.get(reader.name, {}).get("median_ms", 0) < calibrated.get(current, {}).get("median_ms", 0):
            best[reader.decoder] = reader.name
    chosen = [r for r in case.readers if r.default or best[r.decoder] == r.name]
    contenders: dict[str, Callable[[], Any]] = {r.name: r.read for r in chosen}
    if case.with_references:
        contenders["(a) OpenCV, every frame read"] = lambda: opencv_every_frame(case.path, len(case.positions))
        if ffmpeg:
            contenders["(b) ffmpeg CLI, whole clip to null"] = lambda: ffmpeg_null(case.path, ffmpeg)
        contenders["cache"] = lambda: cache_reads(case.path, case.spec)
    timings = interleaved(contenders, repeats, loads=loads)
    result["load_avg_1min"] = {"min": min(loads), "median": statistics.median(loads), "max": max(loads)} if loads else None
    result["calibration"] = calibrated
    result["readers"] = [{"name": r.name, "decoder": r.decoder, "default": r.default, "best": best[r.decoder] == r.name,
                          "peer": r.peer} for r in chosen]
    result["timings"] = timings

    # the same frames: each reader's against vt's (exact decoders agree bit for bit; PIL and OpenCV convert
    # YUV->RGB or decode JPEG their own way)
    ours = vt_frames(case.path, case.spec, 8)
    result["mean_abs_diff_vs_vt"] = {r.name: _mean_abs_diff(ours, r.read()) for r in chosen if r.peer}
    vt = timings[next(r.name for r in chosen if r.decoder == "vt" and r.default)]["median_ms"]
    peers = {r.name: timings[r.name]["median_ms"] for r in chosen if r.peer}
    fastest = min(peers, key=peers.get)
    ratios: dict[str, Any] = {"best_peer_over_vt": {"value": peers[fastest] / vt, "target": TARGET_VS_BEST_PEER,
                                                    "best_peer": fastest}}
    # CPU time: the work each reader does, which a machine busy with other jobs distorts less than wall time
    vt_cpu = timings[next(r.name for r in chosen if r.decoder == "vt" and r.default)]["cpu_median_ms"]
    peers_cpu = {r.name: timings[r.name]["cpu_median_ms"] for r in chosen if r.peer}
    leanest = min(peers_cpu, key=peers_cpu.get)
    ratios["best_peer_cpu_over_vt_cpu"] = {"value": peers_cpu[leanest] / vt_cpu, "target": TARGET_VS_BEST_PEER,
                                           "best_peer": leanest}
    if case.with_references:
        ratios["opencv_over_vt"] = {"value": timings["(a) OpenCV, every frame read"]["median_ms"] / vt, "target": TARGET_VS_OPENCV}
        if ffmpeg:
            ratios["ffmpeg_over_vt"] = {"value": timings["(b) ffmpeg CLI, whole clip to null"]["median_ms"] / vt,
                                        "target": TARGET_VS_FFMPEG}
        for name, key in (("cache_first_over_second", "cache_second_read"),
                          ("cache_first_over_second_same_process", "cache_second_read_same_process")):
            ratios[name] = {"value": timings["cache_first_read"]["median_ms"] / timings[key]["median_ms"], "target": TARGET_CACHE}
    for ratio in ratios.values():
        ratio["met"] = ratio["value"] >= ratio["target"]
    result["ratios"] = ratios
    return result


def host() -> dict[str, Any]:
    import av
    import cv2

    versions = {"pyav": av.__version__, "ffmpeg_libs": av.library_versions.get("libavcodec"), "opencv": cv2.__version__}
    missing = {}
    for module in ("torchcodec", "decord", "torch"):
        why = unavailable(module)
        versions[module] = __import__(module).__version__ if why is None else None
        if why is not None:
            missing[module] = why
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0], **versions,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_avg_1min_at_start": load, "unavailable": missing}


def _case_markdown(name: str, result: dict[str, Any]) -> list[str]:
    src = result["input"]
    what = "frames folder (JPEG)" if src["kind"] == "frames folder" else "H.264"
    lines = [f"### {name}: {src['duration_s']:.1f} s, {src['fps']:g} fps, {src['width']}x{src['height']} {what}, "
             f"{result['n_sampled']} frames", "",
             "| reader | setting | median (ms) | CPU median (ms) | min (ms) | mean abs diff vs vt |", "|---|---|---|---|---|---|"]
    roles = {r["name"]: ("default" if r["default"] else "") + (" + best" if r["best"] and r["default"] else "best" if r["best"] else "")
             for r in result["readers"]}
    diffs = result.get("mean_abs_diff_vs_vt", {})
    for key, t in result["timings"].items():
        diff = f"{diffs[key]:.2f}" if key in diffs else ""
        cpu = f"{t['cpu_median_ms']:.1f}" if "cpu_median_ms" in t else ""
        lines.append(f"| {key} | {roles.get(key, '')} | {t['median_ms']:.1f} | {cpu} | {t['min_ms']:.1f} | {diff} |")
    load = result.get("load_avg_1min")
    if load:
        lines += ["", f"Load average (1 min) over the case's rounds: {load['min']:.1f}-{load['max']:.1f}, median "
                  f"{load['median']:.1f}, on {os.cpu_count()} CPUs."]
    lines += ["", "| ratio | value | target | met |", "|---|---|---|---|"]
    for key, ratio in result["ratios"].items():
        label = f"{key} ({ratio['best_peer']})" if "best_peer" in ratio else key
        lines.append(f"| {label} | {ratio['value']:.2f}x | >= {ratio['target']:g}x | {'yes' if ratio['met'] else 'NO'} |")
    if result["calibration"]:
        lines += ["", "Calibration (every setting; picks each decoder's best): "
                  + "; ".join(f"{k} {v['median_ms']:.0f}" for k, v in result["calibration"].items()) + " ms"]
    return lines + [""]


def markdown(results: dict[str, Any]) -> str:
    lines = []
    for name, result in results["cases"].items():
        lines += _case_markdown(name, result)
    h = results["host"]
    lines += [f"Host: {h['platform']}, {h['cpu_count']} CPUs, load average {h['load_avg_1min_at_start']} at the start "
              f"(1 min); PyAV {h['pyav']}, torchcodec {h['torchcodec']}, decord {h['decord']}, OpenCV {h['opencv']}, "
              f"torch {h['torch']}. Medians of {results['repeats']} rounds ({results['repeats_large']} for 1080p and long) "
              f"after a warm-up round and {results['calibration']} calibration rounds."]
    for module, why in h["unavailable"].items():
        lines.append(f"{module} could not be used here, left out: {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/prep"), help="folder for bench.json, bench.md and the clips")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--seconds", type=float, default=10.0, help="main clip length, s")
    parser.add_argument("--fps", type=float, default=30.0, help="clip frame rate")
    parser.add_argument("--width", type=int, default=640, help="main clip width, px")
    parser.add_argument("--height", type=int, default=480, help="main clip height, px")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled uniformly (main, folder, 1080p)")
    parser.add_argument("--long-seconds", type=float, default=300.0, help="long clip length, s")
    parser.add_argument("--long-max-frames", type=int, default=64, help="long clip: at most this many frames at 1 fps")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds of main and folder (medians reported)")
    parser.add_argument("--repeats-large", type=int, default=5, help="timed rounds of 1080p and long")
    parser.add_argument("--calibration", type=int, default=3, help="rounds over every thread setting, to pick each decoder's best")
    args = parser.parse_args(argv)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None and "main" in cases:
        print("ffmpeg CLI not found: (b) is left out (apt-get install ffmpeg)", file=sys.stderr)
    machine = host()  # before the run: the load average says how busy the machine was
    results: dict[str, Any] = {"host": machine, "repeats": args.repeats, "repeats_large": args.repeats_large,
                               "calibration": args.calibration, "cases": {}}
    for name in cases:
        case = build_case(name, args.out, args)
        repeats = args.repeats_large if name in ("1080p", "long") else args.repeats
        print(f"{name}: {case.path.name}, {len(case.positions)} frames, {repeats} rounds", file=sys.stderr)
        results["cases"][name] = run_case(case, repeats, args.calibration, ffmpeg)
        write_json(args.out / "bench.json", results)  # each case kept as it finishes
    text = markdown(results)
    atomic_write_text(args.out / "bench.md", text)
    print(text)
    print(json.dumps({name: {k: round(v["value"], 2) for k, v in r["ratios"].items()} for name, r in results["cases"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
