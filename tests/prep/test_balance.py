import json
from collections import Counter

import numpy as np
import pytest
from derived_helpers import samples_file, tree_digest, vt_prep, with_errors

from videotune.core.io import read_json, read_samples
from videotune.core.schemas import ErrorSpan, Sample
from videotune.prep.augment import OPS
from videotune.prep.balance import (
    class_weights,
    fill_plan,
    group_ids,
    group_key,
    plan_balance,
    sample_group,
    targets,
    undersample,
)


def _sample(i: int, label: str, errors: list[str]) -> Sample:
    return Sample(id=f"s{i:03d}", dataset="d", media=f"videos/s{i:03d}.mp4", media_kind="video", duration_s=2.0, fps=12.0,
                  group=f"subject{i % 5}", task="aqa", label=label,
                  errors=[ErrorSpan(name=n, start_s=0.0, end_s=1.0) for n in errors])


# seed 002's Table 2 shape, scaled down: squat 781/37/159/402 -> 16/2/4/8; OHP 392/551/98/880 -> 8/11/2/18
TABLE = [("squat", ["knees_forward"], 16), ("squat", ["knees_inward"], 2), ("squat", ["knees_forward", "knees_inward"], 4),
         ("squat", [], 8), ("overhead_press", ["elbows"], 8), ("overhead_press", ["knees"], 11),
         ("overhead_press", ["elbows", "knees"], 2), ("overhead_press", [], 18)]


def _table() -> list[Sample]:
    samples, i = [], 0
    for label, errors, count in TABLE:
        for _ in range(count):
            samples.append(_sample(i, label, errors))
            i += 1
    return samples


def test_group_key_is_label_and_sorted_errors():
    assert group_key("squat", ["knees_inward", "knees_forward"]) == "squat|knees_forward+knees_inward"
    assert group_key("squat", []) == "squat|none"
    assert group_key("squat", ["knees", "knees"]) == "squat|knees"


def test_undersample_equalises_groups_deterministically_whatever_the_input_order():
    samples = _table()
    groups = group_ids((s.id, sample_group(s)) for s in samples)
    kept = undersample(groups, seed=3)
    assert {len(ids) for ids in kept.values()} == {2}
    assert all(set(kept[g]) <= set(groups[g]) for g in groups)
    reversed_groups = group_ids((s.id, sample_group(s)) for s in reversed(samples))
    assert {g: sorted(v) for g, v in undersample(reversed_groups, seed=3).items()} == {g: sorted(v) for g, v in kept.items()}
    assert undersample(groups, seed=4) != kept


def test_two_step_keeps_everything_then_balances_with_flips():
    step1, step2 = plan_balance(_table(), "two-step", seed=0)
    assert step1.name == "step1" and len(step1.copies) == sum(c for *_, c in TABLE) and all(c.op is None for c in step1.copies)
    per_group = Counter((sample_group(c.parent), c.op) for c in step2.copies)
    for label, errors, _ in TABLE:
        key = group_key(label, errors)
        assert per_group[(key, None)] == 2 and per_group[(key, "hflip")] == 2  # the smallest group: 2 originals + 2 flips
    originals = [c.parent.id for c in step2.copies if c.op is None]
    assert sorted(originals) == sorted(c.parent.id for c in step2.copies if c.op == "hflip")


def test_dynamic_step_fills_each_group_to_its_exercise_largest_with_augmentations():
    (balanced,) = plan_balance(_table(), "dynamic-step", seed=0)
    sizes = Counter(sample_group(c.parent) for c in balanced.copies)
    for label, errors, _ in TABLE:
        assert sizes[group_key(label, errors)] == (16 if label == "squat" else 18)
    ops = Counter(c.op for c in balanced.copies if c.op is not None)
    assert set(ops) == set(OPS)
    ids = [c.parent.id + (f"~{c.op}{c.tag}" if c.op else "") for c in balanced.copies]
    assert len(set(ids)) == len(ids)  # repeated copies of one clip get distinct ids
    assert Counter(sample_group(c.parent) for c in plan_balance(_table(), "dynamic-step", seed=0, scope="all")[0].copies) \
        == {group_key(label, errors): 18 for label, errors, _ in TABLE}


def test_dynamic_step_never_flips_a_sided_error_into_the_other_group():
    samples = [_sample(i, "lunge", ["left_knee"]) for i in range(2)] + [_sample(10 + i, "lunge", ["right_knee"]) for i in range(6)]
    (balanced,) = plan_balance(samples, "dynamic-step", seed=0)
    added = [c for c in balanced.copies if c.op is not None]
    assert len(added) == 4 and all("hflip" not in c.op for c in added)


def test_fill_plan_gives_every_clip_a_copy_before_any_gets_two():
    plan = fill_plan({"g": ["a", "b", "c"]}, {"g": 8}, seed=1)["g"]
    assert len(plan) == 5
    assert sorted(p for p, k in plan if k == 0) == ["a", "b", "c"]
    assert all(k == 1 for _, k in plan[3:])
    assert targets({"a|x": ["1"] * 3, "a|y": ["2"], "b|z": ["3"] * 7}, "exercise") == {"a|x": 3, "a|y": 3, "b|z": 7}


def test_oversample_duplicates_and_undersample_drops():
    (over,) = plan_balance(_table(), "oversample", seed=0)
    assert {c.op for c in over.copies} == {None, "dup"}
    (under,) = plan_balance(_table(), "undersample", seed=0)
    assert len(under.copies) == 2 * len(TABLE)


@pytest.mark.parametrize("scheme", ["inverse_frequency", "sqrt_inverse_frequency", "effective_number"])
def test_class_weights_have_mean_one_and_favour_rare_groups(scheme):
    items = [(s.id, sample_group(s)) for s in _table()]
    weights = class_weights(items, scheme)
    assert set(weights) == {"scheme", "group_by", "groups", "examples"}
    assert weights["scheme"] == scheme and weights["group_by"] == "label+errors"
    assert np.isclose(np.mean(list(weights["examples"].values())), 1.0)
    groups = weights["groups"]
    assert groups["squat|knees_inward"] > groups["squat|none"] > groups["squat|knees_forward"]
    assert weights["examples"]["s016"] == groups[sample_group(_table()[16])]
    if scheme == "inverse_frequency":  # n_g * w_g is the same for every group
        counts = Counter(g for _, g in items)
        assert np.allclose([counts[g] * w for g, w in groups.items()], counts["squat|none"] * groups["squat|none"])


def _imbalanced(gym_raw, tmp_path):
    # 5 clips: three squat|none, two squat|knees_forward (labels set here, the clips are the rendered ones)
    def relabel(i, sample):
        return with_errors(sample, "squat", [] if i < 3 else ["knees_forward"])

    return samples_file(gym_raw, tmp_path / "parent", n=5, update=relabel)


def test_balance_two_step_command_writes_both_steps_with_weights(gym_raw, tmp_path):
    parent = _imbalanced(gym_raw, tmp_path)
    args = ["balance", "--samples", parent, "--data-root", gym_raw, "--strategy", "two-step", "--seed", "2"]
    vt_prep(*args, "--out", tmp_path / "a")
    vt_prep(*args, "--out", tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    step1 = read_samples(tmp_path / "a" / "step1" / "samples.parquet")
    step2 = read_samples(tmp_path / "a" / "step2" / "samples.parquet")
    assert len(step1) == 5
    assert Counter(sample_group(s) for s in step2) == {"squat|none": 4, "squat|knees_forward": 4}
    assert sum(s.id.endswith("~hflip") for s in step2) == 4
    for s in step2:
        assert (tmp_path / "a" / "step2" / s.media).is_file()
    weights1 = read_json(tmp_path / "a" / "step1" / "class_weights.json")
    assert weights1["groups"]["squat|knees_forward"] == pytest.approx(1.25)  # 5 / (2 groups * 2 clips)
    assert weights1["groups"]["squat|none"] == pytest.approx(5 / 6)
    assert set(read_json(tmp_path / "a" / "step2" / "class_weights.json")["groups"].values()) == {1.0}
    run = read_json(tmp_path / "a" / "step2" / "run.json")
    assert run["lineage"]["operation"] == "balance" and run["lineage"]["params"]["set"] == "step2"
    assert set(read_json(tmp_path / "a" / "run.json")["sets"]) == {"step1", "step2"}


def test_balance_weights_only_and_splits_pass_through(gym_raw, tmp_path):
    def relabel(i, sample):
        return with_errors(sample, "squat", [] if i < 3 else ["knees_forward"]).model_copy(
            update={"split": "train" if i < 4 else "test"})

    parent = samples_file(gym_raw, tmp_path / "parent", n=5, update=relabel)
    vt_prep("balance", "--samples", parent, "--data-root", gym_raw, "--strategy", "weights", "--out", tmp_path / "w",
            "--splits", "train")
    weights = json.loads((tmp_path / "w" / "class_weights.json").read_text())
    assert set(weights["examples"]) == {"gym-00000", "gym-00001", "gym-00002", "gym-00003"}  # the test clip is not weighted
    assert not (tmp_path / "w" / "videos").exists()
    for copy in ("u", "u2"):
        vt_prep("balance", "--samples", parent, "--data-root", gym_raw, "--strategy", "undersample", "--out", tmp_path / copy,
                "--splits", "train")
    assert tree_digest(tmp_path / "u") == tree_digest(tmp_path / "u2")
    kept = read_samples(tmp_path / "u" / "samples.parquet")
    assert Counter(s.split for s in kept) == {"train": 2, "test": 1}


def test_dynamic_step_and_oversample_commands_fill_the_small_group(gym_raw, tmp_path):
    def relabel(i, sample):
        return with_errors(sample, "squat", [] if i < 3 else ["knees_forward"])

    parent = samples_file(gym_raw, tmp_path / "parent", n=4, update=relabel)  # 3 none, 1 knees_forward
    for copy in ("d", "d2"):  # twice: the same bytes (augmentations drawn from the seed)
        vt_prep("balance", "--samples", parent, "--data-root", gym_raw, "--strategy", "dynamic-step", "--out", tmp_path / copy)
    assert tree_digest(tmp_path / "d") == tree_digest(tmp_path / "d2")
    filled = read_samples(tmp_path / "d" / "samples.parquet")
    assert Counter(sample_group(s) for s in filled) == {"squat|none": 3, "squat|knees_forward": 3}
    copies = [s for s in filled if "~" in s.id]
    assert [s.id for s in copies] == ["gym-00003~hflip", "gym-00003~invert"]
    assert all(s.group == filled[3].group and (tmp_path / "d" / s.media).is_file() for s in copies)
    assert json.loads(copies[1].meta)["derived"]["parent_id"] == "gym-00003"

    for copy in ("o", "o2"):
        vt_prep("balance", "--samples", parent, "--data-root", gym_raw, "--strategy", "oversample", "--out", tmp_path / copy)
    assert tree_digest(tmp_path / "o") == tree_digest(tmp_path / "o2")
    duplicated = read_samples(tmp_path / "o" / "samples.parquet")
    dups = [s for s in duplicated if "~dup" in s.id]
    assert [s.id for s in dups] == ["gym-00003~dup1", "gym-00003~dup2"]
    assert all(s.media == "videos/gym-00003.mp4" for s in dups)  # a duplicate shares its parent's file
    assert not any(p.name.startswith("gym-00003~") for p in (tmp_path / "o" / "videos").iterdir())
