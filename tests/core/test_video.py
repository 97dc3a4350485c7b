"""Frame sampling: the seed paper's timestamps, equality with decoding every frame, seeking,
broken files, the on-disk frame cache and the prompt's time sentence."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import videotune.core.video as video
from videotune.core.video import (
    FrameCache,
    SamplingSpec,
    VideoReadError,
    default_cache_dir,
    encode_video,
    probe,
    sample_frames,
    time_instruction,
)

HEIGHT, WIDTH = 48, 64  # px


def numbered_frame(index: int) -> np.ndarray:
    """A frame whose two halves spell its index in base 16, 16 grey levels apart.

    Flat areas survive H.264 within a few levels, so rounding the mean recovers the index.
    """
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[:, : WIDTH // 2] = (index % 16) * 16
    frame[:, WIDTH // 2 :] = (index // 16) * 16
    return frame


def frame_number(rgb: np.ndarray) -> int:
    half = rgb.shape[1] // 2
    return round(rgb[:, :half].mean() / 16) + 16 * round(rgb[:, half:].mean() / 16)


def make_clip(path: Path, n_frames: int, fps: float, keyframe_interval_s: float = 2.0) -> Path:
    encode_video(path, (numbered_frame(i) for i in range(n_frames)), fps, keyframe_interval_s=keyframe_interval_s)
    return path


def decode_every_frame(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """The naive reference: every frame in decode output order, with its presentation time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float((frame.pts - stream.start_time) * stream.time_base))
    return frames, times


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 8 s at 15 fps, a keyframe every 2 s (30 frames): sparse samples are worth a seek
    return make_clip(tmp_path_factory.mktemp("clips") / "gop.mp4", 120, 15, keyframe_interval_s=2.0)


def test_seed_paper_example_timestamps_and_instruction(tmp_path):
    clip = make_clip(tmp_path / "seed.mp4", 93, 30)  # 3.10 s at 30 fps

    sampled = sample_frames(clip, SamplingSpec(n_frames=8))

    assert [round(t, 2) for t in sampled.timestamps_s] == [0.00, 0.43, 0.87, 1.30, 1.73, 2.17, 2.60, 3.07]
    assert [frame_number(f) for f in sampled.frames] == [0, 13, 26, 39, 52, 65, 78, 92]
    assert sampled.frames.shape == (8, HEIGHT, WIDTH, 3) and sampled.frames.dtype == np.uint8
    assert sampled.duration_s == pytest.approx(3.10) and sampled.fps == pytest.approx(30)
    assert time_instruction(sampled.duration_s, sampled.timestamps_s) == (
        "The video lasts for 3.10 seconds, and 8 frames are uniformly sampled from it. "
        "These frames are located at 0.00s, 0.43s, 0.87s, 1.30s, 1.73s, 2.17s, 2.60s, 3.07s."
    )


def test_probe_reads_the_stream_metadata(tmp_path):
    info = probe(make_clip(tmp_path / "seed.mp4", 93, 30))
    assert (info.n_frames, info.width, info.height) == (93, WIDTH, HEIGHT)
    assert info.fps == pytest.approx(30) and info.duration_s == pytest.approx(3.10)


@pytest.mark.parametrize(
    "spec",
    [SamplingSpec(n_frames=4), SamplingSpec(n_frames=16), SamplingSpec(n_frames=5, start_s=2.5, end_s=6.5)],
    ids=["n4", "n16", "window"],
)
@pytest.mark.parametrize("workers", [1, 2, 3, 8], ids=["1-decoder", "2-decoders", "3-decoders", "one-per-run"])
def test_identical_to_decoding_every_frame(gop_clip, spec, workers, monkeypatch):
    monkeypatch.setenv("VT_DECODE_WORKERS", str(workers))
    seeks, decoded = [], []
    original = video._decoded_frames

    def traced(container, stream, seek_pts, wanted_pts, run_pts=None):
        seeks.append(seek_pts)
        for frame in original(container, stream, seek_pts, wanted_pts, run_pts):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video, "_decoded_frames", traced)
    sampled = sample_frames(gop_clip, spec)

    frames, times = decode_every_frame(gop_clip)
    inside = [i for i, t in enumerate(times) if (spec.start_s or 0) - 1e-9 <= t <= (spec.end_s or 1e9) + 1e-9]
    picked = np.linspace(inside[0], inside[-1], spec.n_frames, dtype=int)
    assert np.array_equal(sampled.frames, np.stack([frames[i] for i in picked]))
    assert sampled.timestamps_s == [times[i] for i in picked]
    if spec.n_frames == 4:
        # positions 0, 39, 79, 119: each past the next keyframe, so three jumps after the first run
        assert len([pts for pts in seeks if pts is not None]) == 4
        assert len(decoded) < len(frames)


def test_runs_split_at_keyframes_into_balanced_chunks():
    keyframes = np.array([0, 60, 120, 180, 240])
    wanted = [0, 20, 40, 60, 80, 100, 120, 140, 159, 179, 199, 219, 239, 259, 279, 299]
    runs = video._seek_runs(keyframes, wanted)
    # a run starts where a keyframe lies after the previous wanted frame (179 -> 199 crosses 180)
    assert runs == [[0, 20, 40], [60, 80, 100], [120, 140, 159, 179], [199, 219, 239], [259, 279, 299]]
    # decoding work 41 + 41 + 60 | 60 + 60 frames: the largest chunk as small as contiguity allows
    assert video._split_runs(keyframes, runs, 2) == [wanted[:10], wanted[10:]]
    assert len(video._split_runs(keyframes, runs, 9)) == 5  # never more chunks than runs
    assert video._split_runs(keyframes, [[5, 9]], 2) == [[5, 9]]


def test_decode_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv("VT_DECODE_WORKERS", "3")
    assert video.decode_workers() == 3
    monkeypatch.setenv("VT_DECODE_WORKERS", "three")
    with pytest.raises(video.InputError, match="VT_DECODE_WORKERS"):
        video.decode_workers()
    monkeypatch.delenv("VT_DECODE_WORKERS")
    assert video.decode_workers() == video.DEFAULT_MAX_DECODERS


def test_a_cut_file_fails_the_same_with_parallel_decoders(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "c.mp4", 120, 15, keyframe_interval_s=1.0)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    messages = []
    for workers in ("1", "2"):
        monkeypatch.setenv("VT_DECODE_WORKERS", workers)
        with pytest.raises(VideoReadError) as err:
            sample_frames(cut, SamplingSpec(n_frames=8))
        messages.append(str(err.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("container_format, suffix", [("matroska", ".mkv"), ("mpegts", ".ts")], ids=["mkv", "ts"])
def test_parallel_decoders_match_every_frame_in_other_containers(gop_clip, tmp_path, monkeypatch, container_format, suffix):
    # the parallel decoders reopen the file without probe decoding (the reorder depth comes from
    # the first open): the B-frames must still come out whole and in order in every container
    clip = tmp_path / f"remuxed{suffix}"
    with av.open(str(gop_clip)) as src, av.open(str(clip), "w", format=container_format) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    frames, _ = decode_every_frame(clip)
    picked = np.linspace(0, len(frames) - 1, 16, dtype=int)
    results = {}
    for workers in ("1", "8"):
        monkeypatch.setenv("VT_DECODE_WORKERS", workers)
        results[workers] = sample_frames(clip, SamplingSpec(n_frames=16))
        assert np.array_equal(results[workers].frames, np.stack([frames[i] for i in picked])), workers
    assert results["1"].timestamps_s == results["8"].timestamps_s


def test_window_keeps_frames_inside_it(gop_clip):
    sampled = sample_frames(gop_clip, SamplingSpec(n_frames=6, start_s=1.0, end_s=3.0))
    assert sampled.timestamps_s[0] == pytest.approx(1.0) and sampled.timestamps_s[-1] == pytest.approx(3.0)
    assert all(1.0 - 1e-9 <= t <= 3.0 + 1e-9 for t in sampled.timestamps_s)
    assert [frame_number(f) for f in sampled.frames] == [round(t * 15) for t in sampled.timestamps_s]


def test_window_without_frames_is_refused(gop_clip):
    with pytest.raises(video.InputError, match="no frame lies inside the window"):
        sample_frames(gop_clip, SamplingSpec(start_s=20.0, end_s=30.0))


def test_target_fps_steps_through_the_window(gop_clip):
    sampled = sample_frames(gop_clip, SamplingSpec(n_frames=None, target_fps=5, start_s=2.0, end_s=4.0))
    # 15 fps source, 5 fps target: every third frame from 2.00 s (frame 30) to 4.00 s (frame 60)
    assert [frame_number(f) for f in sampled.frames] == list(range(30, 61, 3))
    assert sampled.timestamps_s == pytest.approx([i / 15 for i in range(30, 61, 3)])


def test_resize_fits_the_longer_side(gop_clip):
    sampled = sample_frames(gop_clip, SamplingSpec(n_frames=3, size=32))
    assert sampled.frames.shape == (3, 24, 32, 3)  # 64x48 -> 32x24
    assert [frame_number(f) for f in sampled.frames] == [0, 59, 119]


def test_short_clip_repeats_frames(tmp_path):
    clip = make_clip(tmp_path / "short.mp4", 5, 10)
    sampled = sample_frames(clip, SamplingSpec(n_frames=8))
    assert [frame_number(f) for f in sampled.frames] == [0, 0, 1, 1, 2, 2, 3, 4]
    assert sampled.timestamps_s == pytest.approx([0, 0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.4])


def test_file_cut_in_half_is_refused(tmp_path):
    clip = make_clip(tmp_path / "cut.mp4", 93, 30)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])  # the index (moov) sits at the end: gone
    with pytest.raises(VideoReadError, match=f"{clip}: not a readable video"):
        sample_frames(clip, SamplingSpec())


def test_truncated_stream_names_where_it_ends(tmp_path):
    # With the index up front (faststart) the header still promises every frame after a cut.
    source = make_clip(tmp_path / "source.mp4", 93, 30)
    clip = tmp_path / "faststart.mp4"
    with av.open(str(source)) as src, av.open(str(clip), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 3 // 4])

    with pytest.raises(VideoReadError, match=rf"{clip}: truncated: the stream ends at .* s but frames up to 3\.07 s"):
        sample_frames(clip, SamplingSpec(n_frames=8))
    # frames before the cut are still there to be sampled
    early = sample_frames(clip, SamplingSpec(n_frames=3, end_s=0.5))
    assert [frame_number(f) for f in early.frames] == [0, 7, 15]


def test_random_bytes_are_refused(tmp_path):
    clip = tmp_path / "noise.mp4"
    clip.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match=f"{clip}: not a readable video"):
        sample_frames(clip, SamplingSpec())
    with pytest.raises(VideoReadError, match=f"{clip}: not a readable video"):
        probe(clip)


def test_missing_file_is_refused(tmp_path):
    clip = tmp_path / "absent.mp4"
    with pytest.raises(VideoReadError, match=f"{clip}: file not found"):
        sample_frames(clip, SamplingSpec())
    with pytest.raises(VideoReadError, match=f"{clip}: file not found"):
        FrameCache(tmp_path / "cache").get_or_sample(clip, SamplingSpec())


def test_cache_hit_is_identical_and_never_decodes(gop_clip, tmp_path, monkeypatch):
    cache = FrameCache(tmp_path / "cache")
    spec = SamplingSpec(n_frames=4)
    hashes = []
    real_sha256 = video.file_sha256
    monkeypatch.setattr(video, "file_sha256", lambda path: hashes.append(path) or real_sha256(path))
    video._HASH_MEMO.clear()

    first = cache.get_or_sample(gop_clip, spec)

    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit opened the video")

    monkeypatch.setattr(av, "open", refuse)
    second = cache.get_or_sample(gop_clip, spec)

    assert np.array_equal(first.frames, second.frames)
    assert (first.timestamps_s, first.duration_s, first.fps) == (second.timestamps_s, second.duration_s, second.fps)
    assert len(hashes) == 1  # the second lookup found the hash in memory
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1


def test_cache_keys_on_the_spec(gop_clip, tmp_path):
    cache = FrameCache(tmp_path / "cache")
    four = cache.get_or_sample(gop_clip, SamplingSpec(n_frames=4))
    three = cache.get_or_sample(gop_clip, SamplingSpec(n_frames=3))
    assert len(four.frames) == 4 and len(three.frames) == 3
    assert cache.entry_path(gop_clip, SamplingSpec(n_frames=4)) != cache.entry_path(gop_clip, SamplingSpec(n_frames=3))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2


def test_corrupt_cache_entry_is_sampled_again_and_rewritten(gop_clip, tmp_path):
    cache = FrameCache(tmp_path / "cache")
    spec = SamplingSpec(n_frames=4)
    expected = cache.get_or_sample(gop_clip, spec)
    entry = cache.entry_path(gop_clip, spec)
    entry.write_bytes(entry.read_bytes()[:100])  # a half-written archive

    recovered = cache.get_or_sample(gop_clip, spec)

    assert np.array_equal(recovered.frames, expected.frames)
    assert np.array_equal(np.load(entry), expected.frames)  # rewritten whole

    # frames that disagree with their metadata, or metadata gone, are no hit either
    np.save(entry, expected.frames[:3])
    assert np.array_equal(cache.get_or_sample(gop_clip, spec).frames, expected.frames)
    entry.with_suffix(".json").unlink()
    assert np.array_equal(cache.get_or_sample(gop_clip, spec).frames, expected.frames)
    assert entry.with_suffix(".json").is_file()


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VT_CACHE_DIR", str(tmp_path / "frames"))
    assert default_cache_dir() == tmp_path / "frames"
    monkeypatch.delenv("VT_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "videotune" / "frames"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_frames": 8, "target_fps": 2.0},
        {"n_frames": None},
        {"n_frames": 0},
        {"n_frames": True},
        {"n_frames": None, "target_fps": -1.0},
        {"start_s": -0.5},
        {"start_s": 2.0, "end_s": 1.0},
        {"end_s": float("nan")},
        {"size": 0},
    ],
)
def test_sampling_spec_refuses_bad_values(kwargs):
    with pytest.raises(ValueError, match="SamplingSpec"):
        SamplingSpec(**kwargs)


def test_sampling_spec_key_is_stable_and_distinct():
    assert SamplingSpec(n_frames=None, target_fps=2).key() == SamplingSpec(n_frames=None, target_fps=2.0).key()
    assert SamplingSpec().key() == SamplingSpec(n_frames=8).key()
    keys = {
        SamplingSpec().key(),
        SamplingSpec(n_frames=16).key(),
        SamplingSpec(start_s=1.0).key(),
        SamplingSpec(end_s=1.0).key(),
        SamplingSpec(size=224).key(),
        SamplingSpec(n_frames=None, target_fps=8.0).key(),
    }
    assert len(keys) == 6


def test_time_instruction_for_one_frame():
    assert time_instruction(2.0, [1.0]) == (
        "The video lasts for 2.00 seconds, and 1 frame is uniformly sampled from it. This frame is located at 1.00s."
    )
    with pytest.raises(ValueError):
        time_instruction(2.0, [])


def test_plan_frames_matches_sample_frames(tmp_path):
    from videotune.core.video import plan_frames

    path = tmp_path / "plan.mp4"
    frames = [np.full((32, 32, 3), i * 3 % 255, np.uint8) for i in range(93)]
    encode_video(path, frames, fps=30, keyframe_interval_s=1.0)
    for spec in (SamplingSpec(n_frames=8), SamplingSpec(n_frames=5, start_s=1.0, end_s=2.5),
                 SamplingSpec(n_frames=None, target_fps=4)):
        info, planned = plan_frames(path, spec)
        assert planned == sample_frames(path, spec).timestamps_s
        assert info.n_frames == 93


# --------------------------------------------------------------------------- frame budgets


def test_max_frames_caps_a_rate_by_spreading_over_the_clip(gop_clip):
    every = sample_frames(gop_clip, SamplingSpec(n_frames=None, target_fps=15.0)).timestamps_s  # 120 frames
    uncapped = sample_frames(gop_clip, SamplingSpec(n_frames=None, target_fps=4.0, max_frames=64))
    assert len(uncapped.timestamps_s) == 32  # 8 s at 4 fps: under the cap, the rate holds
    assert uncapped.timestamps_s == sample_frames(gop_clip, SamplingSpec(n_frames=None, target_fps=4.0)).timestamps_s
    capped = sample_frames(gop_clip, SamplingSpec(n_frames=None, target_fps=4.0, max_frames=8))
    positions = np.linspace(0, 119, 8, dtype=int)
    assert capped.timestamps_s == [every[p] for p in positions]  # the whole clip, not its first 2 s
    assert [frame_number(f) for f in capped.frames] == positions.tolist()
    windowed = sample_frames(gop_clip, SamplingSpec(n_frames=None, target_fps=15.0, max_frames=3, start_s=2.0, end_s=4.0))
    assert windowed.timestamps_s == [every[30], every[45], every[60]]


def test_max_frames_belongs_to_a_rate_and_enters_the_key():
    with pytest.raises(ValueError, match="max_frames"):
        SamplingSpec(n_frames=8, max_frames=4)
    with pytest.raises(ValueError, match="max_frames"):
        SamplingSpec(n_frames=None, target_fps=2.0, max_frames=0)
    capped, free = SamplingSpec(n_frames=None, target_fps=2.0, max_frames=16), SamplingSpec(n_frames=None, target_fps=2.0)
    assert capped.key() != free.key() and capped.key().startswith(free.key())
    assert free.key() == "v1_n-_fps2.0_start-_end-_size-"  # unchanged: cache entries made before the cap stay valid


def test_example_sampling_follows_the_recorded_rule():
    from videotune.core.schemas import Example, FrameSpec, Message
    from videotune.core.video import example_sampling

    def example(meta):
        return Example(id="a", sample_id="a", media="a.mp4", frames=FrameSpec(n=2, timestamps_s=[0.0, 1.0]),
                       messages=[Message(role="user", content="q"), Message(role="assistant", content="t")],
                       target="t", meta=meta)

    assert example_sampling(example({}), 32) == SamplingSpec(n_frames=2, size=32)
    rate = example({"sampling": {"target_fps": 2.0, "max_frames": 16}})
    assert example_sampling(rate, 32) == SamplingSpec(n_frames=None, target_fps=2.0, max_frames=16, size=32)
    assert example_sampling(rate, 32, n_frames=4) == SamplingSpec(n_frames=4, size=32)  # an override is uniform


# --------------------------------------------------------------------------- frames folders


def write_lossless_clip(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """An RGB clip that stores its pixels exactly (PNG in QuickTime): decoding gives back `frames`."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "rgb24"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frames_folder_of(clip: Path, folder: Path, times: str = "timestamps", suffix: str = ".png") -> Path:
    """The clip's every frame written as images, with its times (timestamps.txt) or its rate (fps.txt)."""
    from PIL import Image

    every = sample_frames(clip, SamplingSpec(n_frames=probe(clip).n_frames))
    folder.mkdir(parents=True)
    for index, frame in enumerate(every.frames):
        Image.fromarray(frame).save(folder / f"frame_{index}{suffix}")  # unpadded: natural order must hold
    if times == "timestamps":
        (folder / "timestamps.txt").write_text("# seconds\n" + "\n".join(repr(t) for t in every.timestamps_s) + "\n")
    else:
        (folder / "fps.txt").write_text(f"{every.fps:g}\n")
    return folder


@pytest.fixture(scope="module")
def lossless_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("lossless")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(36)]
    clip = write_lossless_clip(root / "clip.mov", frames, fps=12)
    return clip, frames_folder_of(clip, root / "frames"), frames_folder_of(clip, root / "frames_fps", times="fps")


@pytest.mark.parametrize(
    "spec",
    [SamplingSpec(n_frames=8), SamplingSpec(n_frames=5, size=32), SamplingSpec(n_frames=None, target_fps=5.0, size=20),
     SamplingSpec(n_frames=None, target_fps=12.0, max_frames=7), SamplingSpec(n_frames=4, start_s=1.0, end_s=2.0)],
    ids=["uniform", "resized", "rate", "rate-capped", "window"],
)
def test_frames_folder_equals_its_lossless_video(lossless_pair, spec):
    from videotune.core.video import plan_frames

    clip, folder, folder_fps = lossless_pair
    ours = sample_frames(clip, spec)
    for given in (folder, folder_fps):
        theirs = sample_frames(given, spec)
        assert theirs.timestamps_s == pytest.approx(ours.timestamps_s, abs=1e-12)
        assert np.array_equal(theirs.frames, ours.frames)  # resized too: the same swscale on the same RGB
        assert theirs.duration_s == pytest.approx(ours.duration_s) and theirs.fps == pytest.approx(ours.fps)
        assert plan_frames(given, spec)[1] == theirs.timestamps_s
    assert probe(folder) == probe(clip)


def test_frames_folder_times_come_from_its_file(tmp_path):
    from PIL import Image

    from videotune.core.video import frame_times

    folder = tmp_path / "clip"
    folder.mkdir()
    for index in range(12):
        Image.fromarray(numbered_frame(index)).save(folder / f"{index}.jpg", quality=95)
    times = [0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 1.0, 1.4, 1.45, 1.9, 2.0, 2.2]  # irregular: exact times, not a rate
    (folder / "timestamps.txt").write_text("\n".join(map(str, times)))
    info, every = frame_times(folder)
    assert every == times and info.n_frames == 12 and info.fps == pytest.approx(11 / 2.2)
    assert info.duration_s == pytest.approx(2.2 + 2.2 / 11)  # the last frame lasts one average period
    sampled = sample_frames(folder, SamplingSpec(n_frames=4))
    assert sampled.timestamps_s == [times[p] for p in np.linspace(0, 11, 4, dtype=int)]
    assert [frame_number(f) for f in sampled.frames] == np.linspace(0, 11, 4, dtype=int).tolist()  # 10 after 9, not after 1


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "needs timestamps.txt"),
        (lambda d: (d / "timestamps.txt").write_text("0\n0.1\n"), "2 times for 3 frames"),
        (lambda d: (d / "timestamps.txt").write_text("0\n0.2\n0.1\n"), "line 3: 0.1 s does not follow 0.2 s"),
        (lambda d: (d / "timestamps.txt").write_text("0\nsoon\n0.2\n"), "line 2: 'soon' is not a number"),
        # comments and blank lines: the line named is the file's own line
        (lambda d: (d / "timestamps.txt").write_text("# s\n0\n\n0.2\n0.1 # late\n"), "line 5: 0.1 s does not follow 0.2 s"),
        (lambda d: (d / "timestamps.txt").write_text("0\n-1\n0.2\n"), "line 2: '-1' is not a time >= 0 s"),
        (lambda d: (d / "timestamps.txt").write_text("0\nnan\n0.2\n"), "line 2: 'nan' is not a time >= 0 s"),
        (lambda d: (d / "fps.txt").write_text("0\n"), "one frame rate > 0"),
        (lambda d: [p.unlink() for p in d.glob("*.png")], "without JPEG or PNG frames"),
    ],
    ids=["no-times", "count", "order", "not-a-number", "order-commented", "negative", "nan", "zero-fps", "no-frames"],
)
def test_bad_frames_folders_are_refused(tmp_path, setup, message):
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(numbered_frame(index)).save(folder / f"f{index}.png")
    setup(folder)
    with pytest.raises(VideoReadError, match=message):
        sample_frames(folder, SamplingSpec(n_frames=2))


def test_frames_of_two_sizes_are_refused(tmp_path):
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    Image.fromarray(numbered_frame(0)).save(folder / "f0.png")
    Image.fromarray(numbered_frame(1)[:, :32]).save(folder / "f1.png")
    (folder / "fps.txt").write_text("2")
    with pytest.raises(VideoReadError, match="f1.png: 32x48 px"):
        sample_frames(folder, SamplingSpec(n_frames=2))


def test_frames_folder_cache_hits_and_follows_its_content(lossless_pair, tmp_path, monkeypatch):
    from PIL import Image

    clip, folder, _ = lossless_pair
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in folder.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    cache, spec = FrameCache(tmp_path / "cache"), SamplingSpec(n_frames=6, size=32)
    first = cache.get_or_sample(copy, spec)
    monkeypatch.setattr(video, "sample_frames", lambda *a, **k: pytest.fail("a hit must not read the frames"))
    again = cache.get_or_sample(copy, spec)
    assert np.array_equal(again.frames, first.frames) and again.timestamps_s == first.timestamps_s
    monkeypatch.undo()
    before = cache.entry_path(copy, spec)
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(copy / "frame_0.png")  # new content, same name
    assert cache.entry_path(copy, spec) != before
    assert not np.array_equal(cache.get_or_sample(copy, spec).frames[0], first.frames[0])


def test_jpeg_frames_decode_the_same_with_or_without_opencv(tmp_path, monkeypatch):
    """JPEG frames go through OpenCV where it is installed, PIL elsewhere (vt-train's image): the same pixels."""
    from PIL import Image

    rng = np.random.default_rng(1)
    folder = tmp_path / "clip"
    folder.mkdir()
    for index in range(4):
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(folder / f"{index}.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)).convert("L").save(folder / "4.jpg")  # grey
    (folder / "fps.txt").write_text("4")
    spec = SamplingSpec(n_frames=5, size=40)
    with_opencv = sample_frames(folder, spec).frames
    assert video._jpeg_decoder() is not None  # vt-prep's extra installs OpenCV
    monkeypatch.setattr(video, "_jpeg_decoder", lambda: None)
    assert np.array_equal(sample_frames(folder, spec).frames, with_opencv)


def test_a_short_frames_folder_repeats_frames(tmp_path):
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(numbered_frame(index)).save(folder / f"{index}.png")
    (folder / "fps.txt").write_text("3")
    sampled = sample_frames(folder, SamplingSpec(n_frames=5))
    assert [frame_number(f) for f in sampled.frames] == [0, 0, 1, 1, 2]
    assert sampled.timestamps_s == pytest.approx([0, 0, 1 / 3, 1 / 3, 2 / 3])


def test_timestamps_with_comments_and_blank_lines_read_as_plain_ones(tmp_path):
    from PIL import Image

    times = {}
    for name, text in (("plain", "0\n0.25\n0.5\n"), ("commented", "# seconds\n0\n\n 0.25  # second frame\n0.5")):
        folder = tmp_path / name
        folder.mkdir()
        for index in range(3):
            Image.fromarray(numbered_frame(index)).save(folder / f"f{index}.png")
        (folder / "timestamps.txt").write_text(text)
        times[name] = video.frame_times(folder)[1]
    assert times["plain"] == times["commented"] == [0.0, 0.25, 0.5]


@pytest.mark.parametrize("time_base", [Fraction(1, 15360), Fraction(1, 90000), Fraction(1001, 30000), Fraction(3, 7)])
def test_frame_times_from_pts_equal_exact_fraction_arithmetic(time_base):
    rng = np.random.default_rng(0)
    ticks = rng.integers(-10**9, 10**10, 5000).tolist() + list(range(0, 9000 * 512, 512))
    for origin in (0, 1234, -512):
        exact = [float((tick - origin) * time_base) for tick in ticks]
        assert video._ticks_to_s(ticks, origin, time_base).tolist() == exact
    huge = [2**62, 2**62 + 1001]  # products past 2**53: Fractions, still exact
    assert video._ticks_to_s(huge, 0, time_base).tolist() == [float(t * time_base) for t in huge]
