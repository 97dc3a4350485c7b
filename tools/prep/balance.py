"""Balancing by error combination (seed 002, Table 2 and section 2.2), and class weights for a weighted loss.

The balancing unit is the group `<label>|<error names sorted, joined by '+', or 'none'>`: an
exercise with one combination of form errors (squat|knees_forward+knees_inward, squat|none, ...).

- two-step: step 1 is the full set unchanged; step 2 undersamples every group to the smallest
  group and adds a horizontal-flip copy of each clip kept (seed 002: 37 per error type, original
  and flipped);
- dynamic-step: nothing is removed; each group is filled up to the largest group of its
  exercise (seed 002: "781 for squat") with augmented copies, the augmentations taken in turn
  (hflip, invert, rotate, hflip+invert, hflip+rotate) over the group's clips;
- undersample / oversample: the plain forms (oversampling duplicates clips, no augmentation);
- weights: no new set, only class_weights.json.

Every selection is a pure function of (the group's ids, the seed): the same input and seed give
the same set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videotune.core.schemas import Sample
from videotune.prep.augment import OPS, AugmentParams, augmented_job, mirror_labels
from videotune.prep.derive import ClipJob, rng_for, with_meta

Strategy = Literal["two-step", "dynamic-step", "undersample", "oversample", "weights"]
Scheme = Literal["inverse_frequency", "sqrt_inverse_frequency", "effective_number"]
Scope = Literal["exercise", "all"]


def group_key(label: str, error_names: Iterable[str]) -> str:
    """`<label>|<sorted error names joined by '+', or 'none'>` (the class-weights file's group key)."""
    names = sorted(set(error_names))
    return f"{label}|{'+'.join(names) if names else 'none'}"


def sample_group(sample: Sample) -> str:
    return group_key(sample.label, (e.name for e in sample.errors))


def group_ids(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """{group: ids in input order} from (id, group) pairs."""
    groups: dict[str, list[str]] = defaultdict(list)
    for item_id, group in items:
        groups[group].append(item_id)
    return dict(sorted(groups.items()))


def _shuffled(ids: list[str], seed: int, group: str) -> list[str]:
    # sorted first: the order of the input file does not change which ids are drawn
    ordered = sorted(ids)
    return [ordered[i] for i in rng_for(seed, "balance", group).permutation(len(ordered))]


def undersample(groups: dict[str, list[str]], seed: int, size: int | None = None) -> dict[str, list[str]]:
    """Each group cut to `size` (default: the smallest group's), drawn at random; ids kept in input order."""
    size = min(len(ids) for ids in groups.values()) if size is None else size
    chosen: dict[str, list[str]] = {}
    for group, ids in groups.items():
        keep = set(_shuffled(ids, seed, group)[:size])
        chosen[group] = [i for i in ids if i in keep]
    return chosen


def targets(groups: dict[str, list[str]], scope: Scope) -> dict[str, int]:
    """The size each group is filled up to: the largest group of its exercise (label), or of all."""
    if scope == "all":
        largest = max(len(ids) for ids in groups.values())
        return {group: largest for group in groups}
    by_label: dict[str, int] = defaultdict(int)
    for group, ids in groups.items():
        label = group.split("|", 1)[0]
        by_label[label] = max(by_label[label], len(ids))
    return {group: by_label[group.split("|", 1)[0]] for group in groups}


def fill_plan(groups: dict[str, list[str]], sizes: dict[str, int], seed: int) -> dict[str, list[tuple[str, int]]]:
    """For each group, the (parent id, copy number) pairs that fill it up to its size.

    Parents are taken in a seeded order, round after round, so every clip of a group gets its
    k-th copy before any gets its (k+1)-th.
    """
    plan: dict[str, list[tuple[str, int]]] = {}
    for group, ids in groups.items():
        order = _shuffled(ids, seed, group)
        deficit = max(0, sizes[group] - len(ids))
        plan[group] = [(order[i % len(order)], i // len(order)) for i in range(deficit)]
    return plan


# --------------------------------------------------------------------------- class weights


def _raw_weight(count: int, scheme: Scheme, beta: float) -> float:
    if scheme == "inverse_frequency":
        return 1.0 / count
    if scheme == "sqrt_inverse_frequency":
        return 1.0 / np.sqrt(count)
    # Cui et al. 2019, "Class-balanced loss based on effective number of samples"
    return (1.0 - beta) / (1.0 - beta**count)


def class_weights(items: list[tuple[str, str]], scheme: Scheme = "inverse_frequency", beta: float = 0.999) -> dict[str, Any]:
    """The class-weights file for (id, group) pairs: weights normalised to mean 1 over the items.

    Exactly {"scheme", "group_by": "label+errors", "groups": {group: weight}, "examples": {id: weight}}:
    the format `vt-train sft --class-weights` reads (tools/prep/README.md).
    """
    if not items:
        raise ValueError("class weights of an empty set")
    counts = group_counts(items)
    raw = {group: _raw_weight(n, scheme, beta) for group, n in counts.items()}
    scale = len(items) / sum(raw[group] * n for group, n in counts.items())
    weights = {group: float(raw[group] * scale) for group in sorted(raw)}
    return {"scheme": scheme, "group_by": "label+errors", "groups": weights,
            "examples": {item_id: weights[group] for item_id, group in items}}


def group_counts(items: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for _, group in items:
        counts[group] += 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------- plans over samples


@dataclass
class Copy:
    """One clip of a balanced set: a parent as it is (op None), a duplicate, or an augmented copy."""

    parent: Sample
    op: str | None = None  # an augmentation from augment.OPS, or "dup" for a plain duplicate
    tag: str = ""  # makes repeated copies' ids unique: "", "~2", "~3", ...


@dataclass
class BalancedSet:
    name: str  # "" for a single set written at --out, else its subfolder (step1, step2)
    copies: list[Copy] = field(default_factory=list)


def _flip_keeps_group(sample: Sample) -> bool:
    mirrored = mirror_labels(sample)
    return group_key(mirrored["label"], (e.name for e in mirrored["errors"])) == sample_group(sample)


def plan_balance(samples: list[Sample], strategy: Strategy, seed: int, scope: Scope = "exercise") -> list[BalancedSet]:
    """The sets a strategy makes from `samples` (the clips to balance; other splits are added by the caller)."""
    if not samples:
        raise ValueError("nothing to balance: no sample was selected")
    by_id = {s.id: s for s in samples}
    groups = group_ids((s.id, sample_group(s)) for s in samples)
    if strategy == "weights":
        return []
    if strategy == "undersample":
        kept = undersample(groups, seed)
        return [BalancedSet("", [Copy(by_id[i]) for ids in kept.values() for i in ids])]
    if strategy == "two-step":
        kept = undersample(groups, seed)
        step2 = [Copy(by_id[i]) for ids in kept.values() for i in ids]
        step2 += [Copy(by_id[i], "hflip") for ids in kept.values() for i in ids]
        return [BalancedSet("step1", [Copy(s) for s in samples]), BalancedSet("step2", step2)]
    plan = fill_plan(groups, targets(groups, scope), seed)
    copies = [Copy(s) for s in samples]
    for group in groups:
        for parent_id, k in plan[group]:
            parent = by_id[parent_id]
            if strategy == "oversample":
                copies.append(Copy(parent, "dup", str(k + 1)))
                continue
            # a flip that turns left_knee into right_knee would fill the mirrored group, not this one
            ops = OPS if _flip_keeps_group(parent) else tuple(op for op in OPS if "hflip" not in op)
            copies.append(Copy(parent, ops[k % len(ops)], f"~{k // len(ops) + 1}" if k >= len(ops) else ""))
    return [BalancedSet("", copies)]


def copies_to_jobs(copies: list[Copy], data_root: Path, seed: int, params: AugmentParams) -> list[ClipJob]:
    """The clip jobs of a balanced set: parents linked, duplicates sharing the parent's file, augmented copies re-encoded."""
    jobs = []
    for copy in copies:
        parent, source = copy.parent, data_root / copy.parent.media
        if copy.op is None:
            jobs.append(ClipJob(parent, source))
        elif copy.op == "dup":
            meta = with_meta(parent, derived={"operation": "balance-duplicate", "parent_id": parent.id})
            jobs.append(ClipJob(parent.model_copy(update={"id": f"{parent.id}~dup{copy.tag}", "meta": meta}), source))
        else:
            jobs.append(augmented_job(parent, copy.op, data_root, seed, params, copy.tag))
    return jobs
