from collections import Counter

import pytest
from derived_helpers import vt_prep

from videotune.core.io import read_json, read_jsonl, write_jsonl
from videotune.core.schemas import Example, Message
from videotune.prep.subset import check_ratios, nested_subsets, stratum, subset_size


def _example(i: int, label: str, errors: list[str], split: str) -> Example:
    target = f"answer {i}"
    return Example(id=f"e{i:03d}", sample_id=f"s{i:03d}", media=f"videos/s{i:03d}.mp4",
                   messages=[Message(role="user", content="q"), Message(role="assistant", content=target)], target=target,
                   meta={"label": label, "errors": [{"name": n, "start_s": 0.0, "end_s": 1.0} for n in errors],
                         "group": f"subject{i % 7}", "split": split})


def _train(n_per: dict[tuple[str, tuple[str, ...]], int]) -> list[Example]:
    examples, i = [], 0
    for (label, errors), count in n_per.items():
        for _ in range(count):
            examples.append(_example(i, label, list(errors), "train"))
            i += 1
    return examples


STRATA = {("squat", ()): 20, ("squat", ("knees_forward",)): 9, ("squat", ("knees_forward", "knees_inward")): 3,
          ("overhead_press", ("elbows",)): 13, ("overhead_press", ()): 1}


def test_subsets_are_nested_and_stratified():
    train = _train(STRATA)
    items = [(e.id, stratum(e)) for e in train]
    subsets = nested_subsets(items, [1.0, 0.25, 0.75, 0.5], seed=0)
    assert list(subsets) == [0.25, 0.5, 0.75, 1.0]
    assert subsets[1.0] == [e.id for e in train]
    for small, large in zip([0.25, 0.5, 0.75], [0.5, 0.75, 1.0]):
        assert set(subsets[small]) <= set(subsets[large])
    by_id = dict(items)
    for ratio, ids in subsets.items():
        counts = Counter(by_id[i] for i in ids)
        for (label, errors), n in STRATA.items():
            key = f"{label}|{'+'.join(sorted(errors)) or 'none'}"
            assert counts[key] == subset_size(n, ratio)  # each stratum keeps its share (at least one)
    assert subset_size(20, 0.25) == 5 and subset_size(3, 0.25) == 1 and subset_size(1, 0.25) == 1


def test_subsets_depend_on_the_seed_not_on_the_input_order():
    train = _train(STRATA)
    items = [(e.id, stratum(e)) for e in train]
    a = nested_subsets(items, [0.5], seed=1)[0.5]
    b = nested_subsets(list(reversed(items)), [0.5], seed=1)[0.5]
    assert sorted(a) == sorted(b)
    assert sorted(nested_subsets(items, [0.5], seed=2)[0.5]) != sorted(a)


def test_bad_ratios_are_refused():
    for bad in ([], [0.0], [1.5], [0.5, 0.5]):
        with pytest.raises(ValueError):
            check_ratios(bad)


def test_subset_command_keeps_val_and_test_identical(tmp_path):
    examples = tmp_path / "split" / "examples"
    write_jsonl(examples / "train.jsonl", _train(STRATA))
    write_jsonl(examples / "val.jsonl", [_example(100 + i, "squat", [], "val") for i in range(3)])
    write_jsonl(examples / "test.jsonl", [_example(200 + i, "squat", ["knees_forward"], "test") for i in range(4)])
    vt_prep("subset", "--examples", tmp_path / "split", "--out", tmp_path / "sub", "--ratios", "0.25,0.5,1.0", "--seed", "3")
    sizes = {}
    for name in ("r0.25", "r0.5", "r1"):
        folder = tmp_path / "sub" / name / "examples"
        for split in ("val", "test"):
            assert (folder / f"{split}.jsonl").read_bytes() == (examples / f"{split}.jsonl").read_bytes()
        sizes[name] = {e.id for e in read_jsonl(folder / "train.jsonl", Example)}
        lineage = read_json(tmp_path / "sub" / name / "run.json")["lineage"]
        assert lineage["operation"] == "subset" and lineage["seed"] == 3
    assert sizes["r0.25"] < sizes["r0.5"] < sizes["r1"]
    assert len(sizes["r1"]) == sum(STRATA.values())
    assert read_json(tmp_path / "sub" / "run.json")["train_sizes"] == {"r0.25": 12, "r0.5": 25, "r1": 46}  # 5+2+1+3+1, 10+5+2+7+1
    again = tmp_path / "sub2"
    vt_prep("subset", "--examples", tmp_path / "split", "--out", again, "--ratios", "0.25,0.5,1.0", "--seed", "3")
    assert (again / "r0.25" / "examples" / "train.jsonl").read_bytes() == \
        (tmp_path / "sub" / "r0.25" / "examples" / "train.jsonl").read_bytes()
