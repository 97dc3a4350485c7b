"""Group-aware train/val/test split: no leakage unit (subject, source video) in two splits."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from videotune.core.io import InputError
from videotune.core.schemas import Example

SPLITS = ("train", "val", "test")


def assign_groups(group_sizes: dict[str, int], ratios: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Shuffle groups with `seed`, then fill train, val, test in turn up to their share of items.

    Whole groups move, so a split's size can overshoot its share by at most one group.
    Each split with a non-zero ratio gets at least one group when there are enough groups.
    """
    if any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise InputError(f"split ratios {ratios} must be non-negative and sum to 1")
    groups = sorted(group_sizes)
    order = np.random.default_rng(seed).permutation(len(groups))
    total = sum(group_sizes.values())
    # Fill test and val first (the small ones) so their shares are met; train takes the rest.
    targets = {"test": ratios[2] * total, "val": ratios[1] * total}
    filled = {"test": 0, "val": 0}
    assignment: dict[str, str] = {}
    for index in order:
        group = groups[index]
        for split in ("test", "val"):
            if filled[split] < targets[split] and targets[split] > 0:
                assignment[group] = split
                filled[split] += group_sizes[group]
                break
        else:
            assignment[group] = "train"
    return assignment


def uses_given_splits(examples: list[Example], respect_given: bool) -> bool:
    """Whether `split_examples` keeps the dataset's own splits (then the ratios play no part)."""
    return respect_given and bool(examples) and all(e.meta.get("split", "") in SPLITS for e in examples)


def split_examples(
    examples: list[Example], ratios: tuple[float, float, float], seed: int, respect_given: bool = True
) -> dict[str, list[Example]]:
    """Partition examples by their meta['group']; keep given splits when every example has one."""
    for example in examples:
        if not example.meta.get("group"):
            raise InputError(f"example {example.id!r} has no meta.group: the split cannot prevent leakage")
    given = [e.meta.get("split", "") for e in examples]
    if uses_given_splits(examples, respect_given):
        by_group: dict[str, set[str]] = defaultdict(set)
        for example, split in zip(examples, given):
            by_group[example.meta["group"]].add(split)
        leaking = {g: s for g, s in by_group.items() if len(s) > 1}
        if leaking:
            group, splits = next(iter(leaking.items()))
            raise InputError(f"the given splits leak: group {group!r} is in {sorted(splits)} ({len(leaking)} such groups)")
        assignment = {g: next(iter(s)) for g, s in by_group.items()}
    else:
        sizes = Counter(e.meta["group"] for e in examples)
        assignment = assign_groups(dict(sizes), ratios, seed)
    result: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for example in examples:
        split = assignment[example.meta["group"]]
        result[split].append(example.model_copy(update={"meta": {**example.meta, "split": split}}))
    return result
