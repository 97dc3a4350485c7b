import numpy as np
import pytest
from derived_helpers import tree_digest, vt_prep

from videotune.core.io import read_json, read_jsonl, read_samples, write_samples
from videotune.core.schemas import Example, FrameSpec, Message, Sample
from videotune.core.video import SamplingSpec, encode_video, plan_frames, probe, sample_frames, time_instruction
from videotune.prep.variants import FramePlan, frame_plans, frame_variant, resize_fn, resized_size

FPS = 10.0
N_FRAMES = 40  # 4 s


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 4 s, 10 fps, 64x48 clip: a bright left half over a dark right half."""
    root = tmp_path_factory.mktemp("variants")
    frames = []
    for i in range(N_FRAMES):
        frame = np.full((48, 64, 3), 40, np.uint8)
        frame[:, :32] = 200
        frame[0:4, i:i + 4] = 255  # something moves, so frames differ
        frames.append(frame)
    encode_video(root / "videos" / "c.mp4", frames, FPS)
    return root


def _example(root, n=8) -> Example:
    info, timestamps = plan_frames(root / "videos" / "c.mp4", SamplingSpec(n_frames=n))
    user = f"{time_instruction(info.duration_s, timestamps)}\nPlease answer the following questions related to this video.\nWhat?"
    return Example(id="c:aqa:plain", sample_id="c", media="videos/c.mp4", frames=FrameSpec(n=n, timestamps_s=timestamps),
                   messages=[Message(role="user", content=user), Message(role="assistant", content="A squat.")],
                   target="A squat.", meta={"duration_s": info.duration_s, "group": "g"})


@pytest.mark.parametrize("count", [2, 4, 8, 16, 32])
def test_frame_counts_cover_the_whole_clip(clip, count):
    varied = frame_variant(_example(clip), clip / "videos" / "c.mp4", FramePlan(f"frames{count}", count, None))
    expected = sample_frames(clip / "videos" / "c.mp4", SamplingSpec(n_frames=count)).timestamps_s
    assert varied.frames.n == count and varied.frames.timestamps_s == expected
    assert varied.frames.timestamps_s[0] == 0.0 and varied.frames.timestamps_s[-1] == pytest.approx((N_FRAMES - 1) / FPS)
    user = varied.messages[0].content
    assert user.startswith(time_instruction(4.0, expected)) and user.endswith("What?")
    assert varied.target == "A squat." and varied.id == "c:aqa:plain"
    assert varied.meta["frames_variant"] == {"name": f"frames{count}", "kind": "count", "n_frames": count,
                                             "coverage": "whole clip"}


@pytest.mark.parametrize("ratio,step", [(1.0, 1), (0.5, 2), (0.25, 4)])
def test_fps_ratios_keep_the_count_and_space_frames_by_the_ratio(clip, ratio, step):
    varied = frame_variant(_example(clip), clip / "videos" / "c.mp4", FramePlan("x", 8, ratio))
    times = np.array(varied.frames.timestamps_s)
    assert varied.frames.n == 8
    assert np.allclose(np.diff(times), step / FPS)
    # centred: the window's middle is within a frame of the clip's middle
    assert abs((times[0] + times[-1]) / 2 - (N_FRAMES - 1) / FPS / 2) <= 1 / FPS
    # the recorded window is the core sampling spec that gives these exact frames at load time
    sampling = varied.meta["sampling"]
    assert sample_frames(clip / "videos" / "c.mp4", SamplingSpec(**sampling)).timestamps_s == varied.frames.timestamps_s
    assert time_instruction(4.0, varied.frames.timestamps_s) in varied.messages[0].content


def test_an_fps_window_longer_than_the_clip_is_refused(clip):
    with pytest.raises(ValueError, match="the clip has 40"):
        frame_variant(_example(clip), clip / "videos" / "c.mp4", FramePlan("x", 16, 0.25))  # 61 frames needed


def test_a_prompt_without_the_time_sentence_is_refused(clip):
    example = _example(clip)
    other = example.model_copy(update={"messages": [Message(role="user", content="no times here"), example.messages[1]]})
    with pytest.raises(ValueError, match="does not state its 8 frames the way vt-prep build writes them"):
        frame_variant(other, clip / "videos" / "c.mp4", FramePlan("frames4", 4, None))


def test_plans_are_named_as_the_seed_names_them():
    names = [p.name for p in frame_plans([2, 4, 8, 16, 32], [1.0, 0.5, 0.25], 16)]
    assert names == ["frames2", "frames4", "frames8", "frames16", "frames32",
                     "fps1_frames16", "fps0.5_frames16", "fps0.25_frames16"]


def test_resize_modes():
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = 200
    assert resize_fn(32, "square")(frame).shape == (32, 32, 3)
    assert resize_fn(32, "longest")(frame).shape == (24, 32, 3)
    boxed = resize_fn(32, "letterbox")(frame)
    assert boxed.shape == (32, 32, 3) and boxed[:4].max() == 0 and boxed[-4:].max() == 0  # padded top and bottom
    assert boxed[8:24, :14].min() > 150 and boxed[8:24, 18:].max() < 10  # left stays left
    assert resized_size(641, 479, 224, "longest") == (224, 168)
    with pytest.raises(ValueError, match="even"):
        resize_fn(225, "square")


def test_frames_command_writes_each_variant(gym_raw, gym_examples, tmp_path):
    out = tmp_path / "frames"
    args = ["frames", "--examples", gym_examples, "--data-root", gym_raw, "--frame-counts", "2,16", "--fps-ratios", "1,0.5",
            "--fps-count", "4"]
    result = vt_prep(*args, "--out", out)
    vt_prep(*args, "--out", tmp_path / "again")
    assert tree_digest(out) == tree_digest(tmp_path / "again")  # the same bytes twice
    originals = read_jsonl(gym_examples, Example)
    for name, n in [("frames2", 2), ("frames16", 16), ("fps1_frames4", 4), ("fps0.5_frames4", 4)]:
        varied = read_jsonl(out / name / "examples" / gym_examples.name, Example)
        assert [e.id for e in varied] == [e.id for e in originals]
        assert all(e.frames.n == n and len(e.frames.timestamps_s) == n for e in varied)
        lineage = read_json(out / name / "run.json")["lineage"]
        assert lineage["operation"] == "frames" and lineage["params"]["n_frames"] == n
    assert "fps0.5_frames4" in result.stderr
    halves = read_jsonl(out / "fps0.5_frames4" / "examples" / gym_examples.name, Example)
    fps = probe(gym_raw / halves[0].media).fps
    assert np.allclose(np.diff(halves[0].frames.timestamps_s), 2 / fps)


def test_resize_command_letterboxes_and_is_deterministic(clip, tmp_path):
    sample = Sample(id="c", dataset="d", media="videos/c.mp4", media_kind="video", duration_s=4.0, fps=FPS, group="g",
                    task="aqa", label="squat")
    write_samples(tmp_path / "samples.parquet", [sample])
    args = ["resize", "--samples", tmp_path / "samples.parquet", "--data-root", clip, "--sizes", "32,48", "--mode", "letterbox"]
    vt_prep(*args, "--out", tmp_path / "a")
    vt_prep(*args, "--out", tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    for size in (32, 48):
        root = tmp_path / "a" / f"letterbox{size}"
        (resized,) = read_samples(root / "samples.parquet")
        info = probe(root / resized.media)
        assert (info.width, info.height, info.n_frames) == (size, size, N_FRAMES)
        first = sample_frames(root / resized.media, SamplingSpec(n_frames=1)).frames[0]
        assert first[: size // 8].mean() < 20  # the pad above the 4:3 picture
        assert read_json(root / "run.json")["lineage"]["params"] == {"operation": "resize", "size_px": size,
                                                                     "mode": "letterbox", "splits": []}


def test_loaders_sample_the_frames_an_fps_example_names(clip):
    """vt-train and vt-infer build their SamplingSpec with core's example_sampling: an fps-ratio
    example must load exactly the frames its prompt states, and a --frames override keeps the window."""
    from videotune.core.video import example_sampling

    example = _example(clip)
    varied = frame_variant(example, clip / "videos" / "c.mp4", FramePlan("x", 8, 0.5))
    sampled = sample_frames(clip / "videos" / "c.mp4", example_sampling(varied, size=None))
    assert sampled.timestamps_s == varied.frames.timestamps_s
    override = example_sampling(varied, size=32, n_frames=2)
    assert (override.n_frames, override.start_s, override.end_s, override.size) == (
        2, varied.meta["sampling"]["start_s"], varied.meta["sampling"]["end_s"], 32)
    plain = example_sampling(example, size=None)
    assert (plain.n_frames, plain.start_s, plain.end_s) == (example.frames.n, None, None)
