"""vt-prep augment / balance / subset / degrade / frames / resize: the derived sets' typed configs and calls.

The logic lives in augment.py, balance.py, subset.py, degrade.py, variants.py and derive.py;
cli.py registers these commands with `register(app)`. Every derived set is written with a
run.json whose `lineage` names the parent, the operation, its parameters and the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from pydantic import Field, field_validator, model_validator
from rich.console import Console
from rich.table import Table

from videotune.core.cli import CommandConfig, add_command
from videotune.core.io import InputError, read_jsonl, read_samples, write_json, write_jsonl
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import Example, Reject, Sample

console = Console(stderr=True)
Split = Literal["train", "val", "test"]


class _VideoSetBase(CommandConfig):
    samples: Path = Field(description="samples.parquet of the parent set")
    out: Path = Field(description="output folder: the new data root(s) with videos/, samples.parquet, run.json")
    data_root: Path | None = Field(None, description="folder the samples' media paths are relative to [default: the samples file's folder]")
    splits: list[Split] = Field([], description="only samples of these splits are changed, the rest pass through [default: all]")
    strict: bool = Field(False, description="exit 2 if any clip is refused (outputs are still written)")
    seed: int = Field(0, description="random seed: the same seed writes the same bytes")

    def root(self) -> Path:
        return self.data_root or self.samples.parent


def _load(config: _VideoSetBase) -> tuple[list[Sample], list[Sample]]:
    from videotune.prep.derive import check_videos, select

    out = config.out.resolve()
    if out in (config.root().resolve(), config.samples.resolve().parent):
        # the new samples.parquet would replace the parent's, and links would point at themselves
        raise InputError(f"--out {config.out}: a derived set needs its own folder, not the parent's ({config.root()})")
    samples = read_samples(config.samples)
    check_videos(samples, config.samples)
    chosen, passed = select(samples, list(config.splits))
    if not chosen:
        raise InputError(f"{config.samples}: no sample is in the splits {list(config.splits)}")
    return chosen, passed


def _report(sets: dict[str, tuple[int, int]], title: str, unit: str = "samples") -> None:
    table = Table(title=title)
    for column in ("set", unit, "refused"):
        table.add_column(column)
    for name, (n, refused) in sets.items():
        table.add_row(name or ".", str(n), str(refused))
    console.print(table)


def _finish(out: Path, rejects: list[Reject], strict: bool) -> None:
    if not rejects:
        return
    console.print(f"[yellow]{len(rejects)} clip(s) refused[/yellow] (rejects.jsonl in each set), first:")
    for reject in rejects[:5]:
        console.print(f"  {reject.file} [{reject.record}]: {reject.reason}")
    if strict:
        raise InputError(f"{len(rejects)} clip(s) refused and --strict is set (see rejects.jsonl under {out})")


# --------------------------------------------------------------------------- augment


class AugmentConfig(_VideoSetBase):
    """Augmented copies of every clip (seed 002): hflip, invert, rotate, hflip+invert, hflip+rotate, via albumentations.

    New ids `<id>~<op>`, group kept (a split never separates a clip from its copies); flips swap
    left/right in labels, error names, question and answer.
    """

    ops: list[str] = Field(["hflip", "invert", "rotate", "hflip+invert", "hflip+rotate"],
                           description="augmentations: hflip, invert, rotate or '+' combinations")
    include_original: bool = Field(True, description="put the parent clips (hard-linked) into the new set too")
    rotate_min_deg: float = Field(5.0, ge=0, description="smallest rotation angle in degrees (sign drawn at random)")
    rotate_max_deg: float = Field(15.0, gt=0, le=180, description="largest rotation angle in degrees")

    @field_validator("ops")
    @classmethod
    def _ops(cls, ops: list[str]) -> list[str]:
        from videotune.prep.augment import parse_op

        for op in ops:
            parse_op(op)
        if not ops or len(set(ops)) != len(ops):
            raise ValueError("give one or more distinct ops")
        return ops

    @model_validator(mode="after")
    def _angles(self) -> AugmentConfig:
        if self.rotate_min_deg > self.rotate_max_deg:
            raise ValueError("rotate_min_deg must not exceed rotate_max_deg")
        return self


def augment_command(config: AugmentConfig) -> None:
    from videotune.prep.augment import AugmentParams, augment_jobs
    from videotune.prep.derive import ClipJob, Lineage, write_video_set

    seed_everything(config.seed)
    chosen, passed = _load(config)
    params = AugmentParams(config.rotate_min_deg, config.rotate_max_deg)
    jobs = augment_jobs(chosen, config.root(), list(config.ops), config.seed, params, config.include_original)
    jobs += [ClipJob(s, config.root() / s.media) for s in passed]
    lineage = Lineage.of(config.samples, "augment", {"ops": list(config.ops), "include_original": config.include_original,
                                                     "rotate_deg": [config.rotate_min_deg, config.rotate_max_deg],
                                                     "splits": list(config.splits)}, config.seed)
    result = write_video_set(config.out, jobs, lineage, "augment", config.model_dump(mode="json"))
    _report({"": (len(result.samples), len(result.rejects))}, "augment")
    _finish(config.out, result.rejects, config.strict)


# --------------------------------------------------------------------------- balance


class BalanceConfig(_VideoSetBase):
    """Balance error-combination groups (seed 002): two-step, dynamic-step, undersample, oversample, or class weights.

    A group is an exercise with one combination of errors (`<label>|<errors joined by +>`).
    Every output set gets class_weights.json (`--strategy weights` writes only that). Balance
    the training split only (`--splits train`) once samples carry splits.
    """

    strategy: Literal["two-step", "dynamic-step", "undersample", "oversample", "weights"] = Field(
        "two-step", description="two-step: step1 full + step2 undersampled with flips; dynamic-step: fill with augmentations")
    scope: Literal["exercise", "all"] = Field(
        "exercise", description="fill groups up to the largest group of their exercise (seed 002) or of all groups")
    scheme: Literal["inverse_frequency", "sqrt_inverse_frequency", "effective_number"] = Field(
        "inverse_frequency", description="class-weight scheme of class_weights.json")
    beta: float = Field(0.999, gt=0, lt=1, description="effective_number's beta (Cui et al. 2019)")
    rotate_min_deg: float = Field(5.0, ge=0, description="augmented copies: smallest rotation angle in degrees")
    rotate_max_deg: float = Field(15.0, gt=0, le=180, description="augmented copies: largest rotation angle in degrees")


def balance_command(config: BalanceConfig) -> None:
    from videotune.prep.augment import AugmentParams
    from videotune.prep.balance import class_weights, copies_to_jobs, group_counts, plan_balance, sample_group
    from videotune.prep.derive import ClipJob, Lineage, write_video_set

    seed_everything(config.seed)
    chosen, passed = _load(config)
    params = {"strategy": config.strategy, "scope": config.scope, "scheme": config.scheme, "splits": list(config.splits)}
    lineage = Lineage.of(config.samples, "balance", params, config.seed)
    passed_ids = {s.id for s in passed}

    def groups_of(samples: list[Sample]) -> list[tuple[str, str]]:
        # the balanced clips only: samples of other splits pass through and are not trained on here
        return [(s.id, sample_group(s)) for s in samples if s.id not in passed_ids]

    if config.strategy == "weights":
        manifest = RunManifest("prep", "balance", config.model_dump(mode="json"), config.out, seed=config.seed)
        manifest.add_input(config.samples, name="parent")
        weights = class_weights(groups_of(chosen), config.scheme, config.beta)
        write_json(config.out / "class_weights.json", weights)
        manifest.write(outputs={"class_weights": "class_weights.json"}, lineage=lineage.as_dict(),
                       counts=group_counts(groups_of(chosen)))
        console.print(f"wrote {config.out / 'class_weights.json'} ({len(weights['groups'])} groups)")
        return
    sets = plan_balance(chosen, config.strategy, config.seed, config.scope)
    summary: dict[str, tuple[int, int]] = {}
    rejects: list[Reject] = []
    augment = AugmentParams(config.rotate_min_deg, config.rotate_max_deg)
    for balanced in sets:
        out = config.out / balanced.name if balanced.name else config.out
        jobs = copies_to_jobs(balanced.copies, config.root(), config.seed, augment)
        jobs += [ClipJob(s, config.root() / s.media) for s in passed]
        set_lineage = Lineage(lineage.parent, lineage.parent_sha256, "balance",
                              {**params, "set": balanced.name or config.strategy}, config.seed)
        result = write_video_set(out, jobs, set_lineage, "balance", config.model_dump(mode="json"))
        write_json(out / "class_weights.json", class_weights(groups_of(result.samples), config.scheme, config.beta))
        summary[balanced.name] = (len(result.samples), len(result.rejects))
        rejects += result.rejects
        console.print(f"{out}: clips per group {group_counts(groups_of(result.samples))}")
    if any(s.name for s in sets):
        manifest = RunManifest("prep", "balance", config.model_dump(mode="json"), config.out, seed=config.seed)
        manifest.add_input(config.samples, name="parent")
        manifest.write(outputs={name: f"{name}/samples.parquet" for name in summary}, lineage=lineage.as_dict(),
                       sets={name: {"n_samples": n, "n_rejected": r} for name, (n, r) in summary.items()})
    _report(summary, f"balance ({config.strategy})")
    _finish(config.out, rejects, config.strict)


# --------------------------------------------------------------------------- degrade


class DegradeConfig(_VideoSetBase):
    """Degraded copies for robustness tests: motion blur, compression, lighting, occlusion; one set per (kind, level).

    Sets are written to OUT/<kind>_<level>/ (blur_4, compression_crf40, lighting_-20, occlusion_30);
    sample ids are kept so per-clip results pair up across levels.
    """

    kinds: list[Literal["blur", "compression", "lighting", "occlusion"]] = Field(
        ["blur", "compression", "lighting", "occlusion"], description="degradations to write")
    blur_levels: list[float] = Field([2.0, 4.0, 8.0], description="motion-blur kernel lengths, % of the frame's longer side")
    crf_levels: list[int] = Field([35, 40, 45], description="x264 CRF of the compression sets (0..51)")
    lighting_levels: list[float] = Field([-60.0, -40.0, -20.0, 20.0, 40.0, 60.0],
                                         description="brightness and contrast change, % (write as --lighting-levels=-60,60)")
    occlusion_levels: list[float] = Field([10.0, 20.0, 30.0], description="occluded share of the frame area, %")
    occlusion_fill: Literal["black", "random"] = Field("black", description="box colour: black, or one random colour per box")

    @model_validator(mode="after")
    def _levels(self) -> DegradeConfig:
        from videotune.prep.degrade import check_level

        for kind, levels in self.levels().items():
            for level in levels:
                check_level(kind, level)
        return self

    def levels(self) -> dict[str, list[float]]:
        table = {"blur": list(self.blur_levels), "compression": [float(c) for c in self.crf_levels],
                 "lighting": list(self.lighting_levels), "occlusion": list(self.occlusion_levels)}
        return {kind: table[kind] for kind in self.kinds}


def degrade_command(config: DegradeConfig) -> None:
    from videotune.prep.degrade import degrade_jobs, level_name
    from videotune.prep.derive import ClipJob, DerivedResult, Lineage, write_video_set

    seed_everything(config.seed)
    chosen, passed = _load(config)
    manifest = RunManifest("prep", "degrade", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.samples, name="parent")
    summary: dict[str, tuple[int, int]] = {}
    rejects: list[Reject] = []
    for kind, levels in config.levels().items():
        for level in levels:
            name = level_name(kind, level)
            jobs, refused = degrade_jobs(chosen, config.root(), kind, level, config.seed, config.occlusion_fill)
            jobs += [ClipJob(s, config.root() / s.media) for s in passed]
            lineage = Lineage.of(config.samples, "degrade", {"kind": kind, "level": level, "splits": list(config.splits),
                                                             "occlusion_fill": config.occlusion_fill}, config.seed)
            result: DerivedResult = write_video_set(config.out / name, jobs, lineage, "degrade", config.model_dump(mode="json"),
                                                    refused=refused)
            summary[name] = (len(result.samples), len(result.rejects))
            rejects += result.rejects
    manifest.write(outputs={name: f"{name}/samples.parquet" for name in summary},
                   sets={name: {"n_samples": n, "n_rejected": r} for name, (n, r) in summary.items()})
    _report(summary, "degrade")
    _finish(config.out, rejects, config.strict)


# --------------------------------------------------------------------------- resize


class ResizeConfig(_VideoSetBase):
    """Resolution variants: every clip re-encoded at each size (square, longer side, or letterbox), one set per size.

    Sets are written to OUT/<mode><size>/ (square224, letterbox768); sample ids are kept.
    """

    sizes: list[int] = Field([224, 336, 448, 560], description="target sizes in px (even)")
    mode: Literal["square", "longest", "letterbox"] = Field(
        "square",
        description="square: stretched to size x size; longest: longer side = size, aspect kept; letterbox: aspect kept, padded")

    @field_validator("sizes")
    @classmethod
    def _even(cls, sizes: list[int]) -> list[int]:
        if not sizes or any(s < 2 or s % 2 for s in sizes):
            raise ValueError(f"sizes {sizes} must be even numbers of px >= 2 (H.264 with 4:2:0 chroma)")
        return sizes


def resize_command(config: ResizeConfig) -> None:
    from videotune.prep.derive import ClipJob, Lineage, with_meta, write_video_set
    from videotune.prep.variants import resize_fn

    seed_everything(config.seed)
    chosen, passed = _load(config)
    manifest = RunManifest("prep", "resize", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.samples, name="parent")
    summary: dict[str, tuple[int, int]] = {}
    rejects: list[Reject] = []
    for size in config.sizes:
        name = f"{config.mode}{size}"
        fn = resize_fn(size, config.mode)
        derived = {"operation": "resize", "size_px": size, "mode": config.mode}
        jobs = [ClipJob(s.model_copy(update={"meta": with_meta(s, derived=derived)}), config.root() / s.media, fn)
                for s in chosen]
        jobs += [ClipJob(s, config.root() / s.media) for s in passed]
        lineage = Lineage.of(config.samples, "resize", {**derived, "splits": list(config.splits)}, config.seed)
        result = write_video_set(config.out / name, jobs, lineage, "resize", config.model_dump(mode="json"))
        summary[name] = (len(result.samples), len(result.rejects))
        rejects += result.rejects
    manifest.write(outputs={name: f"{name}/samples.parquet" for name in summary},
                   sets={name: {"n_samples": n, "n_rejected": r} for name, (n, r) in summary.items()})
    _report(summary, "resize")
    _finish(config.out, rejects, config.strict)


# --------------------------------------------------------------------------- subset


class SubsetConfig(CommandConfig):
    """Nested training subsets stratified by exercise and error group; val and test the same in every subset.

    Reads a split's examples/{train,val,test}.jsonl; writes OUT/r<ratio>/examples/{train,val,test}.jsonl.
    """

    examples: Path = Field(description="folder with train.jsonl, val.jsonl, test.jsonl (a split's examples/ or its parent)")
    out: Path = Field(description="output folder: r<ratio>/examples/*.jsonl and run.json per subset")
    ratios: list[float] = Field([0.25, 0.5, 0.75, 1.0], description="training shares to keep, each in (0, 1]")
    seed: int = Field(0, description="seed of the shuffle within each stratum")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, ratios: list[float]) -> list[float]:
        from videotune.prep.subset import check_ratios

        return check_ratios(ratios)


def subset_command(config: SubsetConfig) -> None:
    from videotune.prep.derive import Lineage
    from videotune.prep.subset import nested_subsets, stratum, subset_name

    folder = config.examples / "examples" if (config.examples / "examples").is_dir() else config.examples
    splits = {name: read_jsonl(folder / f"{name}.jsonl", Example) for name in ("train", "val", "test")}
    chosen = nested_subsets([(e.id, stratum(e)) for e in splits["train"]], list(config.ratios), config.seed)
    manifest = RunManifest("prep", "subset", config.model_dump(mode="json"), config.out, seed=config.seed)
    for name in splits:
        manifest.add_input(folder / f"{name}.jsonl", name=name)
    table = Table(title="subset")
    for column in ("subset", "train", "val", "test", "strata"):
        table.add_column(column)
    sizes = {}
    for ratio, ids in chosen.items():
        name = subset_name(ratio)
        keep = set(ids)
        train = [e for e in splits["train"] if e.id in keep]
        sub = RunManifest("prep", "subset", config.model_dump(mode="json"), config.out / name, seed=config.seed)
        sub.add_input(folder / "train.jsonl", name="parent")
        write_jsonl(config.out / name / "examples" / "train.jsonl", train)
        for split in ("val", "test"):
            write_jsonl(config.out / name / "examples" / f"{split}.jsonl", splits[split])
        lineage = Lineage.of(folder / "train.jsonl", "subset", {"ratio": ratio, "stratify": "label+errors"}, config.seed)
        sub.write(outputs={s: f"examples/{s}.jsonl" for s in ("train", "val", "test")}, lineage=lineage.as_dict(),
                  sizes={"train": len(train), "val": len(splits["val"]), "test": len(splits["test"])})
        sizes[name] = len(train)
        table.add_row(name, str(len(train)), str(len(splits["val"])), str(len(splits["test"])),
                      str(len({stratum(e) for e in train})))
    manifest.write(outputs={name: f"{name}/examples" for name in sizes}, train_sizes=sizes)
    console.print(table)


# --------------------------------------------------------------------------- frames


class FramesConfig(CommandConfig):
    """Temporal variants as example sets: frame counts at constant coverage, fps ratios at a constant count.

    No re-encoding: each variant changes the examples' frames (count, exact timestamps) and the
    prompt's time sentence. Writes OUT/frames<n>/ and OUT/fps<ratio>_frames<count>/examples/<file>.
    """

    examples: Path = Field(description="examples JSONL to vary (e.g. a test split)")
    out: Path = Field(description="output folder: one folder per variant with examples/<same file name> and run.json")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    frame_counts: list[int] = Field([2, 4, 8, 16, 32], description="frame counts, uniform over the whole clip")
    fps_ratios: list[float] = Field([1.0, 0.5, 0.25], description="shares of the source frame rate (1 = every frame)")
    fps_count: int = Field(16, ge=1, description="frames per clip in the fps-ratio variants")
    strict: bool = Field(False, description="exit 2 if any example is refused (outputs are still written)")

    @model_validator(mode="after")
    def _values(self) -> FramesConfig:
        if any(n < 1 for n in self.frame_counts):
            raise ValueError(f"--frame-counts {self.frame_counts}: each must be >= 1")
        if any(not 0 < r <= 1 for r in self.fps_ratios):
            raise ValueError(f"--fps-ratios {self.fps_ratios}: each must lie in (0, 1]")
        if not self.frame_counts and not self.fps_ratios:
            raise ValueError("give --frame-counts or --fps-ratios")
        return self


def frames_command(config: FramesConfig) -> None:
    from videotune.core.video import VideoReadError
    from videotune.prep.derive import Lineage
    from videotune.prep.variants import frame_plans, frame_variant

    examples = read_jsonl(config.examples, Example)
    manifest = RunManifest("prep", "frames", config.model_dump(mode="json"), config.out)
    manifest.add_input(config.examples, name="parent")
    plans = frame_plans(list(config.frame_counts), list(config.fps_ratios), config.fps_count)
    summary: dict[str, tuple[int, int]] = {}
    all_rejects: list[Reject] = []
    with Progress("frame variants", len(plans) * len(examples)) as progress:
        for plan in plans:
            sub = RunManifest("prep", "frames", config.model_dump(mode="json"), config.out / plan.name)
            varied, rejects = [], []
            for example in examples:
                media = config.data_root / example.media
                try:
                    varied.append(frame_variant(example, media, plan))
                except (VideoReadError, ValueError) as err:
                    rejects.append(Reject(file=str(config.examples), record=example.id, reason=f"{plan.name}: {err}"))
                progress.advance()
            target = config.out / plan.name / "examples" / config.examples.name
            write_jsonl(target, varied)
            if rejects:
                write_jsonl(config.out / plan.name / "rejects.jsonl", rejects)
            lineage = Lineage.of(config.examples, "frames", plan.params(), 0)
            sub.add_input(config.examples, name="parent")
            sub.write(outputs={"examples": f"examples/{config.examples.name}", "n_examples": len(varied),
                               "n_rejected": len(rejects)}, lineage=lineage.as_dict())
            summary[plan.name] = (len(varied), len(rejects))
            all_rejects += rejects
    manifest.write(outputs={name: f"{name}/examples/{config.examples.name}" for name in summary},
                   sets={name: {"n_examples": n, "n_rejected": r} for name, (n, r) in summary.items()})
    _report(summary, "frame variants", unit="examples")
    _finish(config.out, all_rejects, config.strict)


def register(app: typer.Typer) -> None:
    """Add the derived-set commands to vt-prep."""
    add_command(app, "augment", AugmentConfig, augment_command,
                example="vt-prep augment --samples data/gym/raw/samples.parquet --out data/gym/augmented --ops hflip,rotate")
    add_command(app, "balance", BalanceConfig, balance_command,
                example="vt-prep balance --samples data/gym/raw/samples.parquet --out data/gym/two_step --strategy two-step")
    add_command(app, "subset", SubsetConfig, subset_command,
                example="vt-prep subset --examples data/gym/split/examples --out data/gym/subsets --ratios 0.5,1.0")
    add_command(app, "degrade", DegradeConfig, degrade_command,
                example="vt-prep degrade --samples data/gym/raw/samples.parquet --out data/gym/degraded --kinds blur,occlusion "
                        "--blur-levels 4 --occlusion-levels 20")
    add_command(app, "frames", FramesConfig, frames_command,
                example="vt-prep frames --examples data/gym/split/examples/test.jsonl --data-root data/gym/raw --out data/gym/frames "
                        "--frame-counts 4,8 --fps-ratios 1,0.5 --fps-count 8")
    add_command(app, "resize", ResizeConfig, resize_command,
                example="vt-prep resize --samples data/gym/raw/samples.parquet --out data/gym/resized --sizes 32,48 --mode letterbox")
