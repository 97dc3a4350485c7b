"""vt-prep annotate (the error-annotation page) and vt-prep agreement: typed configs and calls (logic in annotate.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import Field, model_validator
from rich.console import Console
from rich.markup import escape

from videotune.core.cli import CommandConfig, add_command
from videotune.core.io import atomic_write_text, write_json
from videotune.core.manifest import RunManifest

console = Console(stderr=True)


class AnnotateConfig(CommandConfig):
    """Serve the error-annotation page on loopback: step through each clip frame by frame, mark the frames that show
    an error, name the errors, write the corrective feedback (seed 000's annotated_errors.json, RQ2.1.1)."""

    out_kind = "file"  # the annotations file itself

    data_root: Path = Field(description="folder the clips are relative to (videos or frames folders)")
    clips: Path | None = Field(
        None, description="which clips: samples.parquet, or JSON/JSONL records naming video, video_path or media "
                          "(QVED's ground truth, a LLaVA JSON, another annotator's file) [default: every clip under DATA_ROOT]")
    out: Path | None = Field(None, description="the annotations file, rewritten on every save [default: DATA_ROOT/annotated_errors.json]")
    annotator: str = Field("annotator", min_length=1, description="who annotates: stored in each record; one file per annotator")
    taxonomy: Path | None = Field(None, description="{exercise: [error names]} (JSON or YAML) offered beside the built-in taxonomy")
    port: int = Field(8766, ge=0, le=65535, description="port on 127.0.0.1 (0: any free port)")
    frame_size: int = Field(640, ge=0, description="longer side of the frames shown, px (0: the clip's own size)")

    @model_validator(mode="after")
    def _inside(self) -> AnnotateConfig:
        if self.out is not None and self.out.suffix != ".json":
            raise ValueError("out must be a .json file")
        return self


def annotate_command(config: AnnotateConfig) -> None:
    from videotune.core.localweb import serve
    from videotune.prep.annotate import AnnotateApp, AnnotationStore, load_clips, load_taxonomy, make_server

    out = config.out or config.data_root / "annotated_errors.json"
    clips, refused = load_clips(config.data_root, config.clips)
    for reject in refused[:5]:
        console.print(escape(f"refused {reject.record}: {reject.reason}"))
    store = AnnotationStore(out, config.annotator)
    app = AnnotateApp(clips, store, load_taxonomy(config.taxonomy), frame_size=config.frame_size or None, refused=refused)
    server = make_server(app, port=config.port)
    manifest = RunManifest("prep", "annotate", config.model_dump(mode="json"), out.parent)
    if config.clips is not None:
        manifest.add_input(config.clips)
    host, port = server.server_address[:2]
    start = store.first_unannotated(app.videos)
    print(f"annotation page: http://{host}:{port}/  ({len(clips)} clips, {len(store.records)} annotated; "
          f"saving to {out}; Ctrl-C to stop)", flush=True)
    if start is None:
        console.print("every clip already has an annotation: the page opens at the first")
    serve(server)
    done = sum(1 for video in app.videos if store.get(video) is not None)
    manifest.write(outputs={"annotations": out.name, "n_clips": len(clips), "annotated": done, "refused": len(refused)},
                   filename=f"{out.stem}.run.json")
    console.print(f"{done} of {len(clips)} clips annotated in {out}")


class AgreementConfig(CommandConfig):
    """Inter-annotator agreement on annotated_errors.json files: Cohen's kappa per error and IoU of the marked frames."""

    annotations: list[Path] = Field(description="one annotations file per annotator, comma-separated")
    out: Path = Field(description="output folder: agreement.json, agreement.md, run.json")


def agreement_command(config: AgreementConfig) -> None:
    from videotune.prep.annotate import agreement, agreement_markdown

    manifest = RunManifest("prep", "agreement", config.model_dump(mode="json"), config.out)
    for path in config.annotations:
        manifest.add_input(path)
    result = agreement(config.annotations)
    write_json(config.out / "agreement.json", result)
    text = agreement_markdown(result)
    atomic_write_text(config.out / "agreement.md", text)
    manifest.write(outputs={"agreement": "agreement.json", "report": "agreement.md"})
    print(text)


def register(app: typer.Typer) -> None:
    add_command(app, "annotate", AnnotateConfig, annotate_command,
                example="vt-prep annotate --data-root dataset --clips data/qved/samples.parquet --annotator pt-1 "
                        "--out data/qved/annotations/pt-1.json")
    add_command(app, "agreement", AgreementConfig, agreement_command,
                example="vt-prep agreement --annotations data/qved/annotations/pt-1.json,data/qved/annotations/pt-2.json "
                        "--out results/annotation_agreement")
