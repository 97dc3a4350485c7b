"""Nested, stratified training subsets for data-efficiency curves (RQ1.1.3).

Works on a split's examples (examples/{train,val,test}.jsonl): only train shrinks; val and test
are the same records in every subset, so every point of the curve is scored on one test set.
Each stratum (exercise and error combination, the balancing group of balance.py) is shuffled
once with the seed and every ratio takes a prefix of it, so the 25% subset lies inside the 50%
one, which lies inside the 75% one. A stratum keeps at least one example at any ratio > 0.
"""

from __future__ import annotations

import math

from videotune.core.schemas import Example
from videotune.prep.balance import group_key
from videotune.prep.derive import rng_for


def stratum(example: Example) -> str:
    """The example's exercise and error combination, from the meta vt-prep build writes."""
    errors = example.meta.get("errors") or []
    names = [e["name"] if isinstance(e, dict) else str(e) for e in errors]
    return group_key(str(example.meta.get("label", "")), names)


def check_ratios(ratios: list[float]) -> list[float]:
    if not ratios:
        raise ValueError("give at least one ratio")
    if any(not 0 < r <= 1 for r in ratios):
        raise ValueError(f"ratios {ratios} must lie in (0, 1]")
    if len(set(ratios)) != len(ratios):
        raise ValueError(f"ratios {ratios} repeat a value")
    return sorted(ratios)


def subset_size(n: int, ratio: float) -> int:
    """How many of a stratum's `n` examples a ratio keeps: n*ratio rounded half up, at least 1.

    Non-decreasing in `ratio`, which is what makes the subsets nested.
    """
    return min(n, max(1, math.floor(n * ratio + 0.5)))


def nested_subsets(items: list[tuple[str, str]], ratios: list[float], seed: int) -> dict[float, list[str]]:
    """{ratio: ids kept, in input order} for (id, stratum) pairs."""
    ratios = check_ratios(ratios)
    by_stratum: dict[str, list[str]] = {}
    for item_id, key in items:
        by_stratum.setdefault(key, []).append(item_id)
    kept: dict[float, set[str]] = {r: set() for r in ratios}
    for key, ids in sorted(by_stratum.items()):
        ordered = sorted(ids)  # the input order does not change the draw
        order = [ordered[i] for i in rng_for(seed, "subset", key).permutation(len(ordered))]
        for ratio in ratios:
            kept[ratio].update(order[: subset_size(len(order), ratio)])
    return {ratio: [item_id for item_id, _ in items if item_id in kept[ratio]] for ratio in ratios}


def subset_name(ratio: float) -> str:
    return f"r{ratio:g}"
