import json

import numpy as np
import pytest
from derived_helpers import samples_file, tree_digest, vt_prep

from videotune.core.io import read_json, read_samples
from videotune.core.schemas import ErrorSpan, Sample
from videotune.core.video import SamplingSpec, sample_frames
from videotune.prep.augment import AugmentParams, augmented_job, draw_params, frame_fn, mirror_labels, parse_op, swap_sides
from videotune.prep.derive import rng_for

# a made-up sided taxonomy: the synthetic gym has no sided labels
SIDED = {"left_knee_valgus": "right_knee_valgus", "right_elbow_flare": "left_elbow_flare",
         "hip-shift-left": "hip-shift-right", "LeftHeelRaise": "RightHeelRaise", "LEFT_SHOULDER": "RIGHT_SHOULDER"}


def _lunge(errors=("left_knee_valgus",)):
    return Sample(id="c1", dataset="d", media="videos/c1.mp4", media_kind="video", duration_s=3.0, fps=12.0,
                  group="subj", task="aqa", label="left_lunge",
                  errors=[ErrorSpan(name=n, start_s=0.5, end_s=1.0) for n in errors],
                  question="Is the left knee stable?", answer="The Left knee caves in; keep the right hip level.")


def test_swap_map_exchanges_sides_and_keeps_case():
    for name, mirrored in SIDED.items():
        assert swap_sides(name) == mirrored
        assert swap_sides(mirrored) == name
    assert swap_sides("Left knee, RIGHT hip, left") == "Right knee, LEFT hip, right"
    # words that merely contain the letters are left alone
    for word in ("leftover", "bright", "upright", "Righteous", "copyright", "knees_inward"):
        assert swap_sides(word) == word


def test_mirrored_labels_swap_errors_question_and_answer():
    mirrored = mirror_labels(_lunge(("left_knee_valgus", "right_elbow_flare")))
    assert mirrored["label"] == "right_lunge"
    assert [e.name for e in mirrored["errors"]] == ["right_knee_valgus", "left_elbow_flare"]
    assert mirrored["errors"][0].start_s == 0.5 and mirrored["errors"][0].end_s == 1.0
    assert mirrored["question"] == "Is the right knee stable?"
    assert mirrored["answer"] == "The Right knee caves in; keep the left hip level."


def test_flip_copies_get_mirrored_labels_others_do_not(tmp_path):
    sample = _lunge()
    flipped = augmented_job(sample, "hflip+invert", tmp_path, 0, AugmentParams()).sample
    assert flipped.id == "c1~hflip+invert" and flipped.group == "subj"
    assert flipped.errors[0].name == "right_knee_valgus" and flipped.label == "right_lunge"
    assert json.loads(flipped.meta)["derived"] == {"operation": "augment", "op": "hflip+invert", "parent_id": "c1"}
    inverted = augmented_job(sample, "invert", tmp_path, 0, AugmentParams()).sample
    assert inverted.errors[0].name == "left_knee_valgus" and inverted.answer == sample.answer


def test_unknown_ops_are_refused():
    assert parse_op("hflip+rotate") == ("hflip", "rotate")
    for bad in ("vflip", "hflip+hflip", "", "hflip+"):
        with pytest.raises(ValueError, match="unknown augmentation"):
            parse_op(bad)


def test_frame_ops_do_what_they_say():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    assert np.array_equal(frame_fn("hflip", {})(frame), frame[:, ::-1])
    assert np.array_equal(frame_fn("invert", {})(frame), 255 - frame)
    assert np.array_equal(frame_fn("hflip+invert", {})(frame), 255 - frame[:, ::-1])
    assert np.array_equal(frame_fn("rotate", {"angle_deg": 0.0})(frame), frame)


def test_one_angle_per_clip_the_same_for_every_frame_and_seed():
    params = AugmentParams(rotate_min_deg=5, rotate_max_deg=15)
    drawn = draw_params("rotate", rng_for(0, "clip~rotate", "augment"), params)
    assert 5 <= abs(drawn["angle_deg"]) <= 15
    assert drawn == draw_params("rotate", rng_for(0, "clip~rotate", "augment"), params)
    angles = {draw_params("rotate", rng_for(seed, "clip~rotate", "augment"), params)["angle_deg"] for seed in range(8)}
    assert len(angles) == 8
    rotate = frame_fn("rotate", drawn)
    bar = np.zeros((40, 40, 3), np.uint8)
    bar[18:22, 5:35] = 255  # a horizontal bar: after rotation it tilts, the same way in every frame
    once, again = rotate(bar), rotate(bar.copy())
    assert np.array_equal(once, again) and not np.array_equal(once, bar)


def test_augment_command_is_deterministic_and_records_lineage(gym_raw, tmp_path):
    parent = samples_file(gym_raw, tmp_path / "parent", n=2)
    args = ["augment", "--samples", parent, "--data-root", gym_raw, "--ops", "hflip,rotate,hflip+invert", "--seed", "5"]
    vt_prep(*args, "--out", tmp_path / "a")
    vt_prep(*args, "--out", tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")  # same seed, same bytes

    samples = {s.id: s for s in read_samples(tmp_path / "a" / "samples.parquet")}
    parents = read_samples(parent)
    assert len(samples) == 2 * 4  # each parent and its three copies
    for p in parents:
        for op in ("hflip", "rotate", "hflip+invert"):
            copy = samples[f"{p.id}~{op}"]
            assert copy.group == p.group and copy.label == p.label and copy.errors == p.errors
            assert (tmp_path / "a" / copy.media).is_file()
    run = read_json(tmp_path / "a" / "run.json")
    assert run["lineage"]["operation"] == "augment" and run["lineage"]["seed"] == 5
    assert run["lineage"]["params"]["ops"] == ["hflip", "rotate", "hflip+invert"]
    assert run["lineage"]["parent"] == str(parent)

    first = parents[0]
    original = sample_frames(gym_raw / first.media, SamplingSpec(n_frames=3)).frames.astype(int)
    flipped = sample_frames(tmp_path / "a" / samples[f"{first.id}~hflip"].media, SamplingSpec(n_frames=3)).frames.astype(int)
    inverted = sample_frames(tmp_path / "a" / samples[f"{first.id}~hflip+invert"].media, SamplingSpec(n_frames=3)).frames
    assert np.abs(flipped - original[:, :, ::-1]).mean() < 4  # H.264 re-encoding: a few grey levels
    assert np.abs(inverted.astype(int) - (255 - original[:, :, ::-1])).mean() < 4

    other = tmp_path / "c"
    vt_prep(*args[:-1], "6", "--out", other)
    assert tree_digest(other)[f"videos/{first.id}~rotate.mp4"] != tree_digest(tmp_path / "a")[f"videos/{first.id}~rotate.mp4"]


def test_augment_refuses_bad_ops_and_names_missing_clips(gym_raw, tmp_path):
    parent = samples_file(gym_raw, tmp_path / "parent", n=1)
    bad = vt_prep("augment", "--samples", parent, "--data-root", gym_raw, "--out", tmp_path / "x", "--ops", "vflip", check=False)
    assert bad.returncode == 2 and "vflip" in bad.stderr
    missing = vt_prep("augment", "--samples", parent, "--data-root", tmp_path, "--out", tmp_path / "y", "--ops", "hflip",
                      "--strict", check=False)
    assert missing.returncode == 2
    rejects = (tmp_path / "y" / "rejects.jsonl").read_text()
    assert "gym-00000" in rejects and "not found" in rejects


def test_a_derived_set_never_overwrites_its_parent(gym_raw, tmp_path):
    parent = samples_file(gym_raw, tmp_path / "parent", n=1)
    before = parent.read_bytes()
    for out in (tmp_path / "parent", gym_raw):
        refused = vt_prep("augment", "--samples", parent, "--data-root", gym_raw, "--out", out, "--ops", "hflip", check=False)
        assert refused.returncode == 2 and "its own folder" in " ".join(refused.stderr.split())
    assert parent.read_bytes() == before


def test_build_and_split_keep_copies_with_their_parent(gym_raw, tmp_path):
    from videotune.core.io import read_jsonl
    from videotune.core.schemas import Example

    parent = samples_file(gym_raw, tmp_path / "parent", n=6)
    vt_prep("augment", "--samples", parent, "--data-root", gym_raw, "--ops", "hflip", "--out", tmp_path / "aug")
    vt_prep("build", "--samples", tmp_path / "aug" / "samples.parquet", "--out", tmp_path / "built", "--frames", "2")
    vt_prep("split", "--examples", tmp_path / "built" / "examples" / "all.jsonl", "--out", tmp_path / "split",
            "--ratios", "0.5,0.25,0.25")
    split_of = {}
    for name in ("train", "val", "test"):
        for example in read_jsonl(tmp_path / "split" / "examples" / f"{name}.jsonl", Example):
            split_of[example.sample_id] = name
    assert len(split_of) == 12
    for sample_id, name in split_of.items():
        assert split_of[sample_id.split("~")[0]] == name  # a copy sits in its parent's split
