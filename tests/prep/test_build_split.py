import random
import sys
from pathlib import Path

import numpy as np
import pytest

from videotune.core import taxonomy
from videotune.core.io import InputError, read_samples
from videotune.core.schemas import ErrorSpan, Example, Message, Sample
from videotune.prep.build import BuildOptions, aqa_answer, build_examples, load_templates
from videotune.prep.split import assign_groups, split_examples


def _sample(label="squat", errors=()):
    return Sample(id="s", dataset="d", media="v.mp4", media_kind="video", duration_s=5.0, fps=12.0, group="g",
                  task="aqa", label=label, errors=[ErrorSpan(**e) for e in errors])


def test_templates_have_ten_paraphrases_each():
    templates = load_templates()
    for key in ("no_error", "one_error", "two_errors"):
        assert len(templates[key]) >= 10
        assert len(set(templates[key])) == len(templates[key])


def test_answers_follow_the_seed_templates():
    templates = load_templates()
    rng = random.Random(0)
    none = aqa_answer(_sample(), "plain", templates, rng, 1)
    assert none == "The subject is performing a Squat. He performs it correctly, without any subtle errors."
    two = aqa_answer(_sample(errors=[{"name": "knees_inward", "start_s": 1.0, "end_s": 2.0},
                                     {"name": "knees_forward", "start_s": 0.5, "end_s": 4.58}]), "plain", templates, rng, 1)
    assert two == ("The subject is performing a Squat. The body parts committing errors are the following: "
                   "knees inward and knees forward.")
    temporal = aqa_answer(_sample(errors=[{"name": "knees_forward", "start_s": 2.62, "end_s": 4.58}]),
                          "temporal", templates, rng, 1)
    assert temporal.endswith("knees forward from frame time 2.62s to 4.58s.")
    spans = aqa_answer(_sample("overhead_press", [{"name": "knees", "start_s": 3.0, "end_s": 4.0},
                                                  {"name": "knees", "start_s": 0.0, "end_s": 0.89}]),
                       "temporal", templates, rng, 1)
    assert "knees from frame time 0.00s to 0.89s and knees from frame time 3.00s to 4.00s" in spans
    assert aqa_answer(_sample(), "boolean", templates, rng, 1).startswith("No")


def test_answer_refuses_foreign_error():
    with pytest.raises(InputError, match="does not belong"):
        aqa_answer(_sample(errors=[{"name": "elbows", "start_s": 0, "end_s": 1}]), "plain", load_templates(),
                   random.Random(0), 10)


def test_build_examples_prompt_and_determinism(gym_raw):
    samples = read_samples(gym_raw / "samples.parquet")
    options = BuildOptions(task="aqa", variant="temporal", n_frames=8, paraphrases=10, seed=0)
    examples, rejects = build_examples(samples, gym_raw, options)
    assert not rejects and len(examples) == len(samples)
    again, _ = build_examples(samples, gym_raw, options)
    assert [e.model_dump() for e in examples] == [e.model_dump() for e in again]
    first = examples[0]
    assert first.frames.n == 8 and first.frames.timestamps_s[0] == 0.0
    assert first.messages[0].content.startswith(f"The video lasts for {first.meta['duration_s']:.2f} seconds, and 8 frames")
    assert first.meta["label"] in taxonomy.EXERCISES


def test_fps_with_max_frames_states_the_frames_kept(gym_raw, tmp_path):
    """--fps F --max-frames M: the rate where it fits, M frames spread over the clip where it would not;
    the prompt's time sentence lists exactly the frames that training and inference then decode."""
    import subprocess

    from videotune.core.io import read_jsonl
    from videotune.core.video import SamplingSpec, example_sampling, frame_times, sample_frames, time_instruction

    samples = read_samples(gym_raw / "samples.parquet")[:2]
    info, every = frame_times(gym_raw / samples[0].media)
    rate = 4.0  # frames per second: more than 6 frames over any of these clips (> 3 s)
    free, _ = build_examples(samples, gym_raw, BuildOptions("aqa", "temporal", 0, 10, 0, target_fps=rate))
    capped, _ = build_examples(samples, gym_raw, BuildOptions("aqa", "temporal", 0, 10, 0, target_fps=rate, max_frames=6))
    step = info.fps / rate
    assert free[0].frames.n == int((info.n_frames - 1) / step) + 1 > 6
    assert free[0].frames.timestamps_s == [every[int(k * step + 1e-9)] for k in range(free[0].frames.n)]
    kept = [every[p] for p in np.linspace(0, info.n_frames - 1, 6, dtype=int)]
    assert capped[0].frames.timestamps_s == kept  # the whole clip, not its first 1.5 s
    assert time_instruction(info.duration_s, kept) in capped[0].messages[0].content
    assert capped[0].messages[0].content.startswith(f"The video lasts for {info.duration_s:.2f} seconds, and 6 frames")
    for example in (*free, *capped):  # what vt-train / vt-infer sample for the example is what its prompt states
        spec = example_sampling(example, 32)
        assert sample_frames(gym_raw / example.media, spec).timestamps_s == example.frames.timestamps_s
    assert example_sampling(capped[0], 32) == SamplingSpec(n_frames=None, target_fps=rate, max_frames=6, size=32)

    out = tmp_path / "built"
    cli = [str(Path(sys.executable).parent / "vt-prep"), "build", "--samples", str(gym_raw / "samples.parquet"), "--out"]
    done = subprocess.run([*cli, str(out), "--fps", "4", "--max-frames", "6"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    built = read_jsonl(out / "examples" / "all.jsonl", Example)
    assert all(e.frames.n == 6 and e.meta["sampling"] == {"target_fps": 4.0, "max_frames": 6} for e in built)
    for bad in (["--fps", "4", "--frames", "8"], ["--max-frames", "6"]):
        refused = subprocess.run([*cli, str(tmp_path / "bad"), *bad], capture_output=True, text=True)
        assert refused.returncode == 2 and "--fps" in refused.stderr and not (tmp_path / "bad").exists()


def test_build_rejects_unreadable_media(gym_raw, tmp_path):
    samples = read_samples(gym_raw / "samples.parquet")[:3]
    root = tmp_path / "root"
    (root / "videos").mkdir(parents=True)
    for s in samples:
        (root / s.media).write_bytes((gym_raw / s.media).read_bytes())
    broken = root / samples[1].media
    broken.write_bytes(broken.read_bytes()[:200])  # a download cut short
    examples, rejects = build_examples(samples, root, BuildOptions("aqa", "plain", 8, 10, 0))
    assert len(examples) == 2
    assert rejects[0].record == samples[1].id and str(broken) in rejects[0].reason


def _examples(groups):
    return [
        Example(id=f"e{i}", sample_id=f"s{i}", media="v.mp4", target="t",
                messages=[Message(role="user", content="q"), Message(role="assistant", content="t")],
                meta={"group": g})
        for i, g in enumerate(groups)
    ]


def test_split_never_puts_a_group_in_two_splits():
    groups = [f"g{i % 23}" for i in range(500)]
    splits = split_examples(_examples(groups), (0.7, 0.15, 0.15), seed=5, respect_given=False)
    seen = {}
    for name, items in splits.items():
        for e in items:
            assert seen.setdefault(e.meta["group"], name) == name
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 500 and all(sizes.values())
    assert splits == split_examples(_examples(groups), (0.7, 0.15, 0.15), seed=5, respect_given=False)


def test_split_keeps_given_splits_and_refuses_leaks():
    examples = _examples(["a", "a", "b"])
    for e, s in zip(examples, ["train", "train", "test"]):
        e.meta["split"] = s
    splits = split_examples(examples, (0.7, 0.15, 0.15), seed=0)
    assert [e.id for e in splits["test"]] == ["e2"]
    examples[1].meta["split"] = "val"
    with pytest.raises(InputError, match="group 'a'"):
        split_examples(examples, (0.7, 0.15, 0.15), seed=0)


def test_assign_groups_rejects_bad_ratios():
    with pytest.raises(InputError, match="sum to 1"):
        assign_groups({"a": 1}, (0.5, 0.5, 0.5), 0)
