"""vt-prep: datasets in, samples.parquet and conversation examples out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from videotune.core.cli import CommandConfig, add_command, make_app, run_app
from videotune.core.io import InputError, read_jsonl, read_samples, write_jsonl, write_samples
from videotune.core.manifest import RunManifest, seed_everything
from videotune.core.progress import Progress
from videotune.core.schemas import Example, Reject

console = Console(stderr=True)
app = make_app("Prepare datasets: synthesize, build conversation examples, split without leakage.")
synth_app = make_app("Generate embedded datasets with known ground truth.")
app.add_typer(synth_app, name="synth")


@app.callback()
def _root() -> None:
    """Prepare datasets: synthesize, build conversation examples, split without leakage."""


@synth_app.callback()
def _synth() -> None:
    """Generate embedded datasets with known ground truth."""


def _write_rejects(out: Path, rejects: list[Reject], strict: bool) -> None:
    if not rejects:
        return
    write_jsonl(out / "rejects.jsonl", rejects)
    console.print(f"[yellow]{len(rejects)} record(s) refused[/yellow], reasons in {out / 'rejects.jsonl'}:")
    for reject in rejects[:5]:
        # escaped: a record id in [brackets] would otherwise be read as rich markup and vanish
        console.print(escape(f"  {reject.file} [{reject.record}]: {reject.reason}"))
    if strict:
        raise InputError(f"{len(rejects)} record(s) refused and --strict is set (see {out / 'rejects.jsonl'})")


# --------------------------------------------------------------------------- synth gym


class SynthGymConfig(CommandConfig):
    """Render the synthetic gym dataset: squats and overhead presses with form errors over known spans."""

    out: Path = Field(description="output folder: videos/ and samples.parquet")
    n_clips: int = Field(480, ge=4, description="number of clips (balanced exercises and error combinations)")
    n_subjects: int = Field(48, ge=2, description="number of synthetic subjects (the split's leakage unit)")
    size_px: int = Field(96, ge=32, description="frame side in pixels (even)")
    fps: float = Field(12.0, gt=0, description="frames per second of the rendered clips")
    workers: int = Field(2, ge=1, description="rendering processes")
    error_severity: list[float] = Field(
        [0.7, 1.0], description="LO,HI: range of each injected error's amplitude, drawn uniformly; 1 is the full "
        "deviation each error is defined with (prep/synth_gym.py), and larger faults are easier to see")
    error_prevalence: list[str] = Field(
        [], description="ERROR=SHARE,...: the share of its exercise's clips that show each named error, for an "
        "imbalanced set (knees_forward=0.15); unnamed errors 0.5. An exercise's two errors are dealt independently")
    seed: int = Field(0, description="random seed: the same seed renders the same bytes")

    @field_validator("error_prevalence")
    @classmethod
    def _prevalence(cls, entries: list[str]) -> list[str]:
        parse_prevalence(entries)
        return entries

    @field_validator("error_severity")
    @classmethod
    def _severity_range(cls, severity: list[float]) -> list[float]:
        if len(severity) != 2 or not 0 < severity[0] <= severity[1]:
            raise ValueError(f"{','.join(f'{v:g}' for v in severity)}: takes two numbers LO,HI with 0 < LO <= HI")
        return severity

    @model_validator(mode="after")
    def _even(self) -> SynthGymConfig:
        if self.size_px % 2:
            raise ValueError("size_px must be even (H.264 with 4:2:0 chroma)")
        return self


def parse_prevalence(entries: list[str]) -> dict[str, float]:
    """`["knees_forward=0.15", ...]` -> {error: share}; a bad entry is a ValueError naming it."""
    from videotune.core.taxonomy import ERROR_KEYS

    shares: dict[str, float] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = None
        if not sep or share is None or not 0 <= share <= 1:
            raise ValueError(f"{entry!r}: write ERROR=SHARE with a share between 0 and 1 (knees_forward=0.15)")
        if name not in ERROR_KEYS:
            raise ValueError(f"{entry!r}: no error {name!r}; the errors are {', '.join(ERROR_KEYS)}")
        if name in shares:
            raise ValueError(f"{entry!r}: {name} is named twice")
        shares[name] = share
    return shares


def synth_gym_command(config: SynthGymConfig) -> None:
    from videotune.prep.synth_gym import GymSynthConfig, synth_gym

    seed_everything(config.seed)
    manifest = RunManifest("prep", "synth gym", config.model_dump(mode="json"), config.out, seed=config.seed)
    gym_config = GymSynthConfig(
        n_clips=config.n_clips, seed=config.seed, size_px=config.size_px, fps=config.fps,
        n_subjects=config.n_subjects, workers=config.workers, error_severity=tuple(config.error_severity),
        error_prevalence=parse_prevalence(config.error_prevalence),
    )
    with Progress("render clips", config.n_clips) as progress:
        samples = synth_gym(config.out, gym_config, progress=lambda done, total: progress.advance())
    write_samples(config.out / "samples.parquet", samples)
    counts = Counter((s.label, tuple(sorted(e.name for e in s.errors))) for s in samples)
    manifest.write(outputs={"samples": "samples.parquet", "n_samples": len(samples)},
                   counts={f"{k[0]}:{'+'.join(k[1]) or 'none'}": v for k, v in sorted(counts.items())})
    console.print(f"wrote {len(samples)} clips to {config.out}")


add_command(synth_app, "gym", SynthGymConfig, synth_gym_command,
            example="vt-prep synth gym --out data/gym/raw --n-clips 48 --n-subjects 12 --seed 0")


# --------------------------------------------------------------------------- synth clinic


class SynthClinicConfig(CommandConfig):
    """Render synthetic clinic scans with findings and three curriculum stages of questions (seed 001)."""

    out: Path = Field(description="output folder: images/ and samples.parquet (one row per image and question)")
    n_images: int = Field(240, ge=1, description="number of scans; each gives six questions, two per stage")
    width_px: int = Field(96, ge=32, description="scan width in pixels")
    height_px: int = Field(72, ge=32, description="scan height in pixels (4:3 by default: letterboxing pads it)")
    normal_share: float = Field(1 / 3, ge=0, le=1, description="share of scans without any lesion")
    seed: int = Field(0, description="random seed: the same seed renders the same bytes")


def synth_clinic_command(config: SynthClinicConfig) -> None:
    from videotune.prep.synth_clinic import ClinicSynthConfig, synth_clinic

    manifest = RunManifest("prep", "synth clinic", config.model_dump(mode="json"), config.out, seed=config.seed)
    clinic_config = ClinicSynthConfig(n_images=config.n_images, width_px=config.width_px, height_px=config.height_px,
                                      seed=config.seed, normal_share=config.normal_share)
    with Progress("render scans", config.n_images) as progress:
        samples = synth_clinic(config.out, clinic_config, progress=lambda done, total: progress.advance())
    write_samples(config.out / "samples.parquet", samples)
    answers = Counter(f"{s.stage}/{s.label}={s.answer}" for s in samples)
    manifest.write(outputs={"samples": "samples.parquet", "n_samples": len(samples), "n_images": config.n_images},
                   counts=dict(sorted(answers.items())))
    console.print(f"wrote {config.n_images} scans ({len(samples)} questions) to {config.out}")


add_command(synth_app, "clinic", SynthClinicConfig, synth_clinic_command,
            example="vt-prep synth clinic --out data/clinic/raw --n-images 60 --seed 0")


# --------------------------------------------------------------------------- build


class BuildConfig(CommandConfig):
    """Build conversation examples (examples/all.jsonl) from samples.parquet with the seed-002 templates."""

    samples: Path = Field(description="samples.parquet to read")
    out: Path = Field(description="output folder: examples/all.jsonl, rejects.jsonl, run.json")
    data_root: Path | None = Field(None, description="folder the samples' media paths are relative to [default: the samples file's folder]")
    task: Literal["aqa", "feedback", "vqa", "passthrough"] = Field(
        "aqa", description="aqa: exercise and errors; feedback: physiotherapy text; vqa: the samples' question and answer; "
                           "passthrough: each imported sample's own conversation, scored as its own task")
    variant: Literal["plain", "temporal", "boolean"] = Field(
        "plain", description="answer form: plain errors, errors with time spans, or a yes/no mistake answer")
    frames: int | None = Field(
        None, ge=1, description="frames sampled uniformly per clip (stated in the prompt) [default: 8, unless --fps]")
    fps: float | None = Field(None, gt=0, description="sample this many frames per second of video instead of --frames")
    max_frames: int | None = Field(
        None, ge=1, description="with --fps: where the rate would give more frames, spread this many uniformly over "
                                "the clip instead (the prompt states the frames kept)")
    paraphrases: int = Field(10, ge=1, description="how many paraphrases of each answer template to draw from")
    templates: Path | None = Field(None, description="a templates YAML of the shipped aqa.yaml's shape")
    strict: bool = Field(False, description="exit 2 if any record is refused")
    seed: int = Field(0, description="seed of the paraphrase choice")

    @model_validator(mode="before")
    @classmethod
    def _default_count(cls, values: Any) -> Any:
        # 8 frames unless a rate is asked for: resolved here, so run.json records the count used
        if isinstance(values, dict) and values.get("fps") is None and values.get("frames") is None:
            return {**values, "frames": 8}
        return values

    @model_validator(mode="after")
    def _one_rule(self) -> BuildConfig:
        if self.fps is not None and self.frames is not None:
            raise ValueError("give --frames (a count) or --fps (a rate), not both")
        if self.max_frames is not None and self.fps is None:
            raise ValueError("--max-frames caps an --fps sampling; with a fixed --frames count it has no meaning")
        return self


def build_command(config: BuildConfig) -> None:
    from videotune.prep.build import BuildOptions, build_examples

    samples = read_samples(config.samples)
    data_root = config.data_root or config.samples.parent
    manifest = RunManifest("prep", "build", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.samples)
    options = BuildOptions(task=config.task, variant=config.variant, n_frames=config.frames or 0,
                           paraphrases=config.paraphrases, seed=config.seed,
                           templates_path=str(config.templates) if config.templates else None,
                           target_fps=config.fps, max_frames=config.max_frames)
    examples, rejects = build_examples(samples, data_root, options)
    _write_rejects(config.out, rejects, config.strict)
    write_jsonl(config.out / "examples" / "all.jsonl", examples)
    manifest.write(outputs={"examples": "examples/all.jsonl", "n_examples": len(examples), "n_rejected": len(rejects)})
    console.print(f"wrote {len(examples)} examples to {config.out / 'examples' / 'all.jsonl'}")


add_command(app, "build", BuildConfig, build_command,
            example="vt-prep build --samples data/gym/raw/samples.parquet --out data/gym/built --variant temporal --frames 8")


# --------------------------------------------------------------------------- split


class SplitConfig(CommandConfig):
    """Split examples into train/val/test by group (subject, source video): no group in two splits."""

    examples: Path = Field(description="examples JSONL to split (e.g. examples/all.jsonl)")
    out: Path = Field(description="output folder: examples/{train,val,test}.jsonl, run.json")
    ratios: list[float] = Field([0.7, 0.15, 0.15], description="train,val,test shares of examples")
    respect_given: bool = Field(True, description="keep the dataset's own splits when every example has one")
    seed: int = Field(0, description="seed of the group shuffle")

    @field_validator("ratios")
    @classmethod
    def _three_shares(cls, ratios: list[float]) -> list[float]:
        if len(ratios) != 3:
            raise ValueError("takes three numbers: train,val,test")
        if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise ValueError(f"{','.join(f'{r:g}' for r in ratios)}: the shares must be non-negative and sum to 1")
        return ratios


def split_command(config: SplitConfig) -> None:
    from videotune.prep.split import split_examples, uses_given_splits

    examples = read_jsonl(config.examples, Example)
    manifest = RunManifest("prep", "split", config.model_dump(mode="json"), config.out, seed=config.seed)
    manifest.add_input(config.examples)
    if uses_given_splits(examples, config.respect_given):
        console.print(f"every example carries its dataset's own split: kept those, --ratios "
                      f"{','.join(f'{r:g}' for r in config.ratios)} unused (--no-respect-given splits by the ratios)")
    splits = split_examples(examples, tuple(config.ratios), config.seed, config.respect_given)
    table = Table(title="split")
    for column in ("split", "examples", "groups"):
        table.add_column(column)
    for name, items in splits.items():
        write_jsonl(config.out / "examples" / f"{name}.jsonl", items)
        table.add_row(name, str(len(items)), str(len({e.meta["group"] for e in items})))
    console.print(table)
    manifest.write(outputs={name: f"examples/{name}.jsonl" for name in splits},
                   sizes={name: len(items) for name, items in splits.items()})


add_command(app, "split", SplitConfig, split_command,
            example="vt-prep split --examples data/gym/built/examples/all.jsonl --out data/gym/split")


# --------------------------------------------------------------------------- streaming DST (issue 8)
from videotune.prep.dst import DstPrepConfig, run_dst_prep  # noqa: E402
from videotune.prep.synth_assembly import SynthAssemblyCommand, run_synth_assembly  # noqa: E402


def synth_assembly_command(config: SynthAssemblyCommand) -> None:
    summary = run_synth_assembly(config)
    console.print(f"wrote {summary['n_videos']} videos ({summary['total_duration_s']:.0f} s) and "
                  f"{config.out / 'annotations.json'}")


def dst_command(config: DstPrepConfig) -> None:
    result = run_dst_prep(config)
    if result["rejects"]:
        from rich.markup import escape

        console.print(f"[yellow]{len(result['rejects'])} record(s) refused[/yellow], reasons in {config.out / 'rejects.jsonl'}:")
        for reject in result["rejects"][:5]:
            console.print(escape(f"  {reject.file} ({reject.record}): {reject.reason}"))
    table = Table(title="stream examples")
    for column in ("split", "videos", "frames", "speak", "dst update"):
        table.add_column(column)
    for name, s in result["stats"].items():
        table.add_row(name, str(s["videos"]), str(s["frames"]), f"{s['speak_frames']} ({s['speak_share']:.1%})",
                      f"{s['dst_update_frames']} ({s['dst_update_share']:.1%})")
    console.print(table)


add_command(synth_app, "assembly", SynthAssemblyCommand, synth_assembly_command,
            example="vt-prep synth assembly --out data/assembly/raw --n-videos 10 --seed 0")
add_command(app, "dst", DstPrepConfig, dst_command,
            example="vt-prep dst --annotations data/assembly/raw/annotations.json --fps 2 --out data/assembly")


# --------------------------------------------------------------------------- import / export (configs in cli_import.py)

from videotune.prep.cli_import import register as register_import_export  # noqa: E402

register_import_export(app)

# --------------------------------------------------------------------------- derived sets (configs in cli_derived.py)

from videotune.prep.cli_derived import register as register_derived  # noqa: E402

register_derived(app)


# --------------------------------------------------------------------------- error annotation (configs in cli_annotate.py)

from videotune.prep.cli_annotate import register as register_annotate  # noqa: E402

register_annotate(app)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
