"""vt-prep import <dataset> and vt-prep export llava: the typed configs and the calls (logic in importers/, export.py).

Kept out of cli.py so that the import/export commands form one unit; cli.py registers them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Literal

import typer
from pydantic import Field, model_validator
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from videotune.core.cli import CommandConfig, add_command, make_app
from videotune.core.io import InputError, read_jsonl, write_json, write_jsonl, write_samples
from videotune.core.manifest import RunManifest
from videotune.core.progress import track
from videotune.core.schemas import Example
from videotune.core.video import media_sha256
from videotune.prep.importers.common import ImportResult

console = Console(stderr=True)


class _ImportBase(CommandConfig):
    out: Path = Field(description="output folder: samples.parquet, rejects.jsonl, run.json")
    dataset: str = Field("", description="dataset name stored in each sample [default: the importer's]")
    hash_media: bool = Field(True, description="hash every imported media file into run.json (lineage; reads each file once)")
    strict: bool = Field(False, description="exit 2 if any record is refused (outputs are still written)")


def _reason_kind(reason: str) -> str:
    """A short class of a refusal reason for the summary table."""
    lowered = reason.lower()
    for needle, kind in (("escapes", "path escapes root"), ("outside the data root", "path escapes root"),
                         ("truncated", "truncated video"), ("not found", "missing file"),
                         ("duplicate", "duplicate id"), ("unknown label", "unknown label"),
                         ("unknown split", "unknown split"), ("before it starts", "end before start"),
                         ("negative", "negative time"), ("past the clip", "past the end"),
                         ("not a readable", "unreadable media"), ("cannot decode", "unreadable media"),
                         ("no video stream", "unreadable media"), ("interval", "malformed interval"),
                         ("conversations", "malformed conversation"), ("frames folder", "unreadable media"),
                         ("error_frames", "bad error frames"), ("error_spans", "bad error frames")):
        if needle in lowered:
            return kind
    return "other"


def _media_digest(root: Path, result: ImportResult) -> dict:
    """One sha256 over (relative path, file sha256) of every imported media file, sorted by path."""
    media = sorted({s.media for s in result.samples})
    digest = hashlib.sha256()
    for rel in track(media, "hash media", len(media)):
        digest.update(rel.encode())
        digest.update(media_sha256(root / rel).encode())  # a video's bytes, or a frames folder's files
    return {"path": str(root), "sha256": digest.hexdigest(), "n_files": len(media)}


def _finish(command: str, config: _ImportBase, root: Path, result: ImportResult, seed: int | None = None) -> None:
    """Write samples.parquet, rejects.jsonl (always, so no stale one survives) and run.json; print a summary."""
    manifest = RunManifest("prep", f"import {command}", config.model_dump(mode="json"), config.out, seed=seed)
    for path in result.inputs:
        manifest.add_input(path)
    if config.hash_media and result.samples:
        manifest.data["inputs"]["media"] = _media_digest(root, result)
    write_jsonl(config.out / "rejects.jsonl", result.rejects)
    write_samples(config.out / "samples.parquet", result.samples)
    by_split = Counter((s.split or "-", s.label or s.task) for s in result.samples)
    reasons = Counter(_reason_kind(r.reason) for r in result.rejects)
    manifest.write(
        outputs={"samples": "samples.parquet", "rejects": "rejects.jsonl", "n_samples": len(result.samples),
                 "n_rejected": len(result.rejects)},
        counts={f"{split}/{label}": n for (split, label), n in sorted(by_split.items())},
        rejected_by_reason=dict(sorted(reasons.items())), notes=result.notes,
    )
    table = Table(title=f"import {command}: {len(result.samples)} samples, {len(result.rejects)} refused")
    for column in ("split", "label/task", "samples"):
        table.add_column(column)
    for (split, label), n in sorted(by_split.items()):
        table.add_row(split, label, str(n))
    console.print(table)
    for note in result.notes:
        console.print(escape(f"note: {note}"))
    if result.rejects:
        console.print(f"[yellow]{len(result.rejects)} record(s) refused[/yellow] "
                      f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}); reasons in {config.out / 'rejects.jsonl'}")
        for reject in result.rejects[:5]:
            console.print(escape(f"  {reject.file} [{reject.record}]: {reject.reason}"))
    console.print(f"wrote {config.out / 'samples.parquet'}")
    if not result.samples:
        raise InputError(f"no record could be imported ({len(result.rejects)} refused; see {config.out / 'rejects.jsonl'})")
    if config.strict and result.rejects:
        raise InputError(f"{len(result.rejects)} record(s) refused and --strict is set (see {config.out / 'rejects.jsonl'})")


# --------------------------------------------------------------------------- import fitness-aqa


class ImportFitnessAqaConfig(_ImportBase):
    """Import the Fitness-AQA release (Squat/ and OHP/ Labeled_Dataset folders) into samples.parquet, every error interval kept."""

    data_root: Path = Field(description="the release folder holding Squat/Labeled_Dataset and OHP/Labeled_Dataset")
    merge_spans: bool = Field(False, description="collapse each error's intervals to (earliest start, latest end), as seed 002 did")
    group_regex: str | None = Field(None, description="regex on the video id whose first group is the leakage unit [default: each video]")


def import_fitness_aqa_command(config: ImportFitnessAqaConfig) -> None:
    from videotune.prep.importers.fitness_aqa import FitnessAqaOptions, import_fitness_aqa

    options = FitnessAqaOptions(merge_spans=config.merge_spans, group_regex=config.group_regex,
                                dataset=config.dataset or "fitness_aqa")
    _finish("fitness-aqa", config, config.data_root, import_fitness_aqa(config.data_root, options))


# --------------------------------------------------------------------------- import qved


class ImportQvedConfig(_ImportBase):
    """Import QVED (ground_truth.json: video_path, labels_descriptive, labels) as feedback samples, split 60/20/20 by group unless given."""

    data_root: Path = Field(description="folder the video paths are relative to (holds ground_truth.json by default)")
    ground_truth: Path | None = Field(None, description="the ground-truth JSON [default: DATA_ROOT/ground_truth.json]")
    manifest: Path | None = Field(
        None, description='{"<video path>": "<exercise>"} to find videos by file name [default: DATA_ROOT/manifest.json if present]')
    splits: Path | None = Field(
        None, description='{"train": [...], "val": [...], "test": [...]} of video ids or paths '
                          "[default: the records' own split, else seeded]")
    exercises: list[str] = Field([], description="accepted exercise labels (e.g. squats,lunges); others are refused [default: any]")
    ratios: list[float] = Field([0.6, 0.2, 0.2], description="train,val,test shares of the seeded split")
    group_regex: str | None = Field(
        None, description="regex on the video id (path without extension) whose first group is the leakage unit [default: each video]")
    seed: int = Field(42, description="seed of the split (seed 000 used 42)")

    @model_validator(mode="after")
    def _three(self) -> ImportQvedConfig:
        if len(self.ratios) != 3:
            raise ValueError("ratios takes three numbers: train,val,test")
        return self


def import_qved_command(config: ImportQvedConfig) -> None:
    from videotune.prep.importers.qved import QvedOptions, import_qved

    options = QvedOptions(ground_truth=config.ground_truth, manifest=config.manifest, splits=config.splits,
                          exercises=config.exercises, ratios=tuple(config.ratios), seed=config.seed,
                          group_regex=config.group_regex, dataset=config.dataset or "qved")
    _finish("qved", config, config.data_root, import_qved(config.data_root, options), seed=config.seed)


# --------------------------------------------------------------------------- import llava


class ImportLlavaConfig(_ImportBase):
    """Import LLaVA-style conversation JSON (video or image + conversations), e.g. seed 002's or QVED's training JSON."""

    annotations: Path = Field(description="the LLaVA JSON (array) or JSONL file")
    data_root: Path = Field(description="folder the records' video/image paths are relative to")
    task: Literal["auto", "aqa", "feedback", "vqa"] = Field(
        "auto", description="auto: seed-002 answers -> aqa (exercise and spans parsed), other videos -> feedback, images -> vqa")


def import_llava_command(config: ImportLlavaConfig) -> None:
    from videotune.prep.importers.llava import LlavaOptions, import_llava

    options = LlavaOptions(task=config.task, dataset=config.dataset)
    _finish("llava", config, config.data_root, import_llava(config.annotations, config.data_root, options))


# --------------------------------------------------------------------------- import vqa


class ImportVqaConfig(_ImportBase):
    """Import image VQA records (image, question, answer, optional stage) for the curriculum task."""

    annotations: Path = Field(description="the records: JSON array or JSONL")
    data_root: Path = Field(description="folder the image paths are relative to")
    stages: list[str] = Field([], description="accepted curriculum stages; others are refused [default: any]")


def import_vqa_command(config: ImportVqaConfig) -> None:
    from videotune.prep.importers.vqa import VqaOptions, import_vqa

    options = VqaOptions(stages=config.stages, dataset=config.dataset)
    _finish("vqa", config, config.data_root, import_vqa(config.annotations, config.data_root, options))


# --------------------------------------------------------------------------- import annotated-errors


class ImportAnnotatedErrorsConfig(_ImportBase):
    """Import seed 000's hand-annotated error set (annotated_errors.json: video, exercise, errors, error_frames,
    ground_truth), error frames converted to seconds at each clip's own frame times."""

    data_root: Path = Field(description="folder the videos are relative to, holding annotated_errors.json")
    annotations: Path | None = Field(None, description="the annotations file [default: DATA_ROOT/annotated_errors.json]")
    task: Literal["auto", "aqa", "feedback"] = Field(
        "auto", description="auto: aqa where the exercise and its errors are in the taxonomy, else feedback "
                            "(the ground truth as the answer)")
    span_gap_s: float | None = Field(
        None, ge=0, description="split an error's span where consecutive marked frames are more than this many "
                                "seconds apart [default: one span from the first marked frame to the last]")
    split: str | None = Field(
        None, description="train, val or test: the split of records without their own (test: an annotated test set) "
                          "[default: left to vt-prep split]")
    group_regex: str | None = Field(
        None, description="regex on the video id (path without extension) whose first group is the leakage unit [default: each video]")

    @model_validator(mode="after")
    def _split(self) -> ImportAnnotatedErrorsConfig:
        if self.split not in (None, "train", "val", "test"):
            raise ValueError(f"split must be train, val or test, not {self.split!r}")
        return self


def import_annotated_errors_command(config: ImportAnnotatedErrorsConfig) -> None:
    from videotune.prep.importers.annotated import AnnotatedOptions, import_annotated

    options = AnnotatedOptions(annotations=config.annotations, task=config.task, span_gap_s=config.span_gap_s,
                               split=config.split or "", group_regex=config.group_regex,
                               dataset=config.dataset or "annotated_errors")
    _finish("annotated-errors", config, config.data_root, import_annotated(config.data_root, options))


# --------------------------------------------------------------------------- export llava


class ExportLlavaConfig(CommandConfig):
    """Write examples as LLaVA conversation JSON (LLaVA-Video, Mobile-VideoGPT and other LLaVA codebases)."""

    out_kind = "file"
    examples: list[Path] = Field(description="examples JSONL file(s), comma-separated (e.g. examples/train.jsonl,examples/val.jsonl)")
    out: Path = Field(description="the LLaVA JSON file to write; its manifest goes beside it as <name>.run.json")
    ids: Literal["example", "sample"] = Field("example", description="record id: the example's or its sample's")
    media_prefix: str = Field("", description="prefix joined before each media path [default: keep them relative]")
    time_instruction: Literal["keep", "strip"] = Field(
        "keep", description="keep the 'The video lasts for ...' sentence, or strip it for codebases that add their own")

    @model_validator(mode="after")
    def _json(self) -> ExportLlavaConfig:
        if self.out.suffix != ".json":
            raise ValueError("out must be a .json file")
        if not self.examples:
            raise ValueError("give at least one examples file")
        return self


def export_llava_command(config: ExportLlavaConfig) -> None:
    from videotune.prep.export import LlavaExportOptions, export_llava

    manifest = RunManifest("prep", "export llava", config.model_dump(mode="json"), config.out.parent)
    sources = []
    for path in config.examples:
        sources.append((path, read_jsonl(path, Example)))
        manifest.add_input(path)
    options = LlavaExportOptions(ids=config.ids, media_prefix=config.media_prefix,
                                 time_instruction=config.time_instruction)
    records = export_llava(sources, options)
    write_json(config.out, records)
    manifest.write(outputs={"llava": config.out.name, "n_records": len(records)}, filename=f"{config.out.stem}.run.json")
    console.print(f"wrote {len(records)} records to {config.out}")


# --------------------------------------------------------------------------- registration


def register(app: typer.Typer) -> None:
    """Add `import <dataset>` and `export llava` to vt-prep."""
    import_app = make_app("Import a dataset in its release layout into samples.parquet.")
    export_app = make_app("Export examples to other codebases' formats.")

    @import_app.callback()
    def _import() -> None:
        """Import a dataset in its release layout into samples.parquet."""

    @export_app.callback()
    def _export() -> None:
        """Export examples to other codebases' formats."""

    add_command(import_app, "fitness-aqa", ImportFitnessAqaConfig, import_fitness_aqa_command,
                example="vt-prep import fitness-aqa --data-root Fitness-AQA_dataset_release --out data/fitness_aqa")
    add_command(import_app, "qved", ImportQvedConfig, import_qved_command,
                example="vt-prep import qved --data-root dataset --out data/qved")
    add_command(import_app, "llava", ImportLlavaConfig, import_llava_command,
                example="vt-prep import llava --annotations seed002/train.json --data-root seed002 --out data/seed002")
    add_command(import_app, "vqa", ImportVqaConfig, import_vqa_command,
                example="vt-prep import vqa --annotations clinic_vqa/vqa.json --data-root clinic_vqa --out data/clinic_vqa "
                        "--stages initial,findings,context")
    add_command(import_app, "annotated-errors", ImportAnnotatedErrorsConfig, import_annotated_errors_command,
                example="vt-prep import annotated-errors --data-root dataset --out data/annotated_errors")
    add_command(export_app, "llava", ExportLlavaConfig, export_llava_command,
                example="vt-prep export llava --examples data/gym/split/examples/train.jsonl --out data/gym/llava/train.json")
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")
