"""A new user's bad input, over every command: exit 2, one line naming the file or the record, no
traceback, and nothing half-written (an output that was there is unchanged, a new one is not left
behind empty; the only file a refusal may add is rejects.jsonl, listing every refused record).

Each command runs in this process through its typer app, as its console script would run it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from videotune.core.io import read_jsonl, write_jsonl
from videotune.core.schemas import Example, Prediction, Reject

APPS = {
    "vt-prep": "videotune.prep.cli", "vt-train": "videotune.train.cli", "vt-infer": "videotune.infer.cli",
    "vt-quantize": "videotune.quantize.cli", "vt-judge": "videotune.judge.cli", "vt-analyze": "videotune.analyze.cli",
}

# Every command, with the flags it needs besides --out: {file} is an existing file, {dir} a folder.
# The values only have to pass the config's own validation: the --out check comes before any input is read.
REQUIRED = {
    "vt-prep build": ["--samples", "{file}"],
    "vt-prep split": ["--examples", "{file}"],
    "vt-prep dst": ["--annotations", "{file}"],
    "vt-prep augment": ["--samples", "{file}"],
    "vt-prep balance": ["--samples", "{file}"],
    "vt-prep subset": ["--examples", "{file}"],
    "vt-prep degrade": ["--samples", "{file}"],
    "vt-prep frames": ["--examples", "{file}", "--data-root", "{dir}"],
    "vt-prep resize": ["--samples", "{file}"],
    "vt-prep synth gym": [],
    "vt-prep synth clinic": [],
    "vt-prep synth assembly": [],
    "vt-prep import fitness-aqa": ["--data-root", "{dir}"],
    "vt-prep import qved": ["--data-root", "{dir}"],
    "vt-prep import llava": ["--annotations", "{file}", "--data-root", "{dir}"],
    "vt-prep import vqa": ["--annotations", "{file}", "--data-root", "{dir}"],
    "vt-prep export llava": ["--examples", "{file}"],
    "vt-prep import annotated-errors": ["--data-root", "{dir}"],
    "vt-prep annotate": ["--data-root", "{dir}"],
    "vt-prep agreement": ["--annotations", "{file}"],
    "vt-train sft": ["--model", "m", "--train-examples", "{file}", "--data-root", "{dir}"],
    "vt-train params": ["--model", "m"],
    "vt-train tiny-model": ["--corpus", "{file}"],
    "vt-train pretrain-vision": ["--model", "m", "--train-examples", "{file}", "--data-root", "{dir}"],
    "vt-train curriculum": ["--model", "m", "--data-root", "{dir}"],
    "vt-train curriculum-table": ["--runs", "{file}"],
    "vt-train launch": ["--command", "sft"],
    "vt-train dst": ["--model", "m", "--train-examples", "{file}", "--data-root", "{dir}"],
    "vt-infer generate": ["--model", "m", "--examples", "{file}", "--data-root", "{dir}"],
    "vt-infer profile": ["--model", "m", "--examples", "{file}", "--data-root", "{dir}"],
    "vt-infer stream": ["--model", "m", "--examples", "{file}", "--data-root", "{dir}"],
    "vt-quantize": ["--method", "fp32", "--model", "{dir}"],
    "vt-judge score": ["--predictions", "{file}"],
    "vt-judge pairwise": ["--predictions-a", "{file}", "--predictions-b", "{file}"],
    "vt-judge agreement": ["--verdicts", "{file}", "--ratings", "{file}"],
    "vt-judge review": ["--predictions", "{file}", "--data-root", "{dir}"],
    "vt-analyze metrics": ["--predictions", "{file}"],
    "vt-analyze collect": ["--plan", "{file}"],
    "vt-analyze compare": ["--per-example", "{file}"],
    "vt-analyze plot": ["--kind", "confusion", "--tables", "{file}"],
    "vt-analyze report": [],
    "vt-analyze headroom": ["--metrics", "{file}", "--thresholds", "{file}"],
}


def _commands() -> list[str]:
    found = []

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found.append(" ".join(path))

    for script, module in APPS.items():
        walk(get_command(importlib.import_module(module).app), [script])
    return sorted(found)


def invoke(argv: list[str]):
    """`argv` as its console script runs it: result.exit_code, .stdout, .stderr."""
    script, *args = argv
    app = importlib.import_module(APPS[script]).app
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, str] | None:
    """Relative path -> sha256 of every file under `folder` (None when it does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(result, caplog, fragments: list[str]) -> None:
    """Exit 2, one line naming what is wrong, no traceback (on the terminal or in the log)."""
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.stderr + result.stdout
    assert not [r for r in caplog.records if r.exc_info], "an exception was logged"


def assert_nothing_half_written(out: Path, before: dict[str, str] | None, rejects: int = 0) -> None:
    after = snapshot(out)
    if before is None:  # a new --out: gone again, or holding only the refused records
        assert after is None or set(after) == ({"rejects.jsonl"} if rejects else set()), after
        if after is None:
            assert not rejects
            return
    else:
        extra = {k: v for k, v in after.items() if k not in before}
        assert {k: after[k] for k in before} == before, "an existing output changed"
        assert set(extra) <= {"rejects.jsonl"}, extra
    assert not [p for p in out.rglob("*.tmp")], "a temp file was left"
    if rejects:
        assert len(read_jsonl(out / "rejects.jsonl", Reject)) == rejects


# --------------------------------------------------------------------------- --out an existing file


# Commands whose --out is a file, not a folder.
FILE_OUT = {"vt-prep export llava", "vt-prep annotate"}


def test_the_table_covers_every_command():
    assert sorted(REQUIRED) == _commands()


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_out_that_is_an_existing_file_is_refused(command, tmp_path, caplog):
    (tmp_path / "dir").mkdir()
    (tmp_path / "input.jsonl").write_text("{}\n")
    values = {"file": tmp_path / "input.jsonl", "dir": tmp_path / "dir"}
    flags = [v.format(**values) for v in REQUIRED[command]]
    if command in FILE_OUT:  # its --out is a file: an existing folder is what is refused
        target = tmp_path / "taken.json"
        target.mkdir()
        expected = f"--out {target}: an existing folder"
    else:
        target = tmp_path / "taken"
        target.write_text("keep me\n")
        expected = f"--out {target}: an existing file"
    before = snapshot(tmp_path)
    result = invoke([*command.split(), *flags, "--out", target])
    assert_refused(result, caplog, [expected])
    assert snapshot(tmp_path) == before  # nothing written anywhere


# --------------------------------------------------------------------------- each bad input


class _NotFound(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = b'{"error": "model not found"}'
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server_404():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


class Inputs:
    """The scratch data of one case: a data root with clips, valid examples, a tiny model, all copies."""

    def __init__(self, tmp: Path, gym_raw: Path, gym_examples: Path, tiny_model: Path):
        import shutil

        self.tmp = tmp
        self.root = tmp / "root"
        shutil.copytree(gym_raw / "videos", self.root / "videos")
        self.examples = read_jsonl(gym_examples, Example)[:4]
        self.model = tmp / "model"
        shutil.copytree(tiny_model, self.model)
        self.out = tmp / "out"

    def write_examples(self, name: str, examples: list[Example]) -> Path:
        path = self.tmp / name
        write_jsonl(path, examples)
        return path

    def with_media(self, name: str, bad: dict[str, str]) -> Path:
        """The four examples, the ones named in `bad` (id -> media) pointing elsewhere; raw JSON, unvalidated."""
        path = self.tmp / name
        rows = [e.model_dump(mode="json") for e in self.examples]
        for row in rows:
            row["media"] = bad.get(row["id"], row["media"])
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    def generate(self, examples: Path, *extra) -> list[str]:
        return ["vt-infer", "generate", "--model", self.model, "--examples", examples, "--data-root", self.root,
                "--out", self.out, "--max-new-tokens", "2", "--device", "cpu", *extra]

    def sft(self, train: Path, *extra) -> list[str]:
        return ["vt-train", "sft", "--model", self.model, "--train-examples", train, "--data-root", self.root, "--out", self.out,
                "--epochs", "1", "--batch-size", "2", "--logging-steps", "1", *extra]


# A case: (inputs) -> (argv, fragments the message must name, rejects.jsonl rows expected).
Case = Callable[[Inputs], tuple[list[str], list[str], int]]


def _escape(kind: str, tool: str) -> Case:
    def case(inputs: Inputs):
        first, second = inputs.examples[1].id, inputs.examples[2].id
        outside = inputs.tmp / "outside.mp4"
        outside.write_bytes((inputs.root / inputs.examples[0].media).read_bytes())
        media = {"climbs": "../../etc/passwd", "absolute": str(outside)}.get(kind)
        if kind == "symlink":
            (inputs.root / "links").mkdir()
            os.symlink(outside, inputs.root / "links" / "out.mp4")
            media = "links/out.mp4"
        path = inputs.with_media("escape.jsonl", {first: media, second: media})
        argv = inputs.generate(path) if tool == "generate" else inputs.sft(path)
        return argv, [f"{path}: line 2 (id {first!r})", f"line 3 (id {second!r})", repr(media)], 2
    return case


def _profile_symlink(inputs: Inputs):
    outside = inputs.tmp / "outside.mp4"
    outside.write_bytes((inputs.root / inputs.examples[0].media).read_bytes())
    (inputs.root / "links").mkdir()
    os.symlink(outside, inputs.root / "links" / "out.mp4")
    path = inputs.with_media("escape.jsonl", {inputs.examples[3].id: "links/out.mp4"})
    return (["vt-infer", "profile", "--model", inputs.model, "--examples", path, "--data-root", inputs.root,
             "--out", inputs.out], [f"{path}: 1 records", f"line 4 (id {inputs.examples[3].id!r})", "symlink"], 0)


def _corrupt_clip(inputs: Inputs):
    """A clip cut to a third and a missing one: both named, by line and id, before the model loads."""
    source = inputs.root / inputs.examples[0].media
    (inputs.root / "videos" / "cut.mp4").write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    ids = inputs.examples[1].id, inputs.examples[3].id
    path = inputs.with_media("clips.jsonl", {ids[0]: "videos/cut.mp4", ids[1]: "videos/gone.mp4"})
    return inputs.sft(path), [f"line 2 (id {ids[0]!r})", "cut.mp4", f"line 4 (id {ids[1]!r})", "gone.mp4"], 2


def _empty(tool: str) -> Case:
    def case(inputs: Inputs):
        path = inputs.tmp / "empty.jsonl"
        path.write_text("")
        return (inputs.generate(path) if tool == "generate" else inputs.sft(path)), [f"{path}: no examples"], 0
    return case


def _damaged_model(damage: str, tool: str) -> Case:
    def case(inputs: Inputs):
        if damage == "config":
            broken = inputs.model / "config.json"
            broken.write_text(broken.read_text()[:40])
        else:
            broken = inputs.model / "model.safetensors"
            os.truncate(broken, broken.stat().st_size // 2)
        examples = inputs.write_examples("examples.jsonl", inputs.examples)
        argv = {"generate": inputs.generate(examples), "sft": inputs.sft(examples),
                "quantize": ["vt-quantize", "--method", "int8-dynamic", "--model", inputs.model, "--out", inputs.out]}[tool]
        return argv, [str(broken)], 0
    return case


def _judge_404(inputs: Inputs, url: str):
    path = inputs.tmp / "predictions.jsonl"
    write_jsonl(path, [Prediction(id=f"p{i}", model="m", prompt="q", prediction="a", reference="r", status="ok")
                       for i in range(3)])
    return (["vt-judge", "score", "--predictions", path, "--base-url", url, "--model", "m", "--out", inputs.out,
             "--no-answer-cache", "--concurrency", "1"], ["HTTP 404", url], 0)


def _judge_empty(inputs: Inputs, url: str):
    path = inputs.tmp / "predictions.jsonl"
    path.write_text("")
    return (["vt-judge", "score", "--predictions", path, "--base-url", url, "--model", "m", "--out", inputs.out],
            ["no predictions"], 0)


def _generate_resume_other_model(inputs: Inputs):
    examples = inputs.write_examples("examples.jsonl", inputs.examples)
    assert invoke(inputs.generate(examples, "--limit", "2")).exit_code == 0  # two predictions of `model`
    other = inputs.tmp / "other"
    os.rename(inputs.model, other)
    inputs.model = other
    return inputs.generate(examples), [f"{inputs.out / 'predictions.jsonl'}", f"model {inputs.tmp / 'model'}",
                                       f"not {other}"], 0


def _generate_resume_other_settings(inputs: Inputs):
    examples = inputs.write_examples("examples.jsonl", inputs.examples)
    assert invoke(inputs.generate(examples, "--limit", "2")).exit_code == 0
    return [*inputs.generate(examples), "--max-new-tokens", "3"], ["max_new_tokens 2 -> 3"], 0


def _sft_resume_other_settings(inputs: Inputs):
    train = inputs.write_examples("train.jsonl", inputs.examples)
    assert invoke(inputs.sft(train)).exit_code == 0  # one epoch, its checkpoint in OUT/checkpoints
    argv = [*inputs.sft(train, "--resume"), "--batch-size", "4", "--lr", "0.001"]
    return argv, ["--resume", "checkpoint-2", "batch_size 2 -> 4", "lr 0.0002 -> 0.001"], 0


def _sft_no_steps(inputs: Inputs):
    return inputs.sft(inputs.write_examples("train.jsonl", inputs.examples), "--max-steps", "0"), ["--max-steps"], 0


def _split_bad_ratios(inputs: Inputs):
    examples = inputs.write_examples("examples.jsonl", inputs.examples)
    return (["vt-prep", "split", "--examples", examples, "--out", inputs.out, "--ratios", "0.5,0.6,0.1"],
            ["--ratios", "sum to 1"], 0)


CASES: dict[str, Case] = {
    "generate: media climbs out of the data root": _escape("climbs", "generate"),
    "generate: media is an absolute path outside it": _escape("absolute", "generate"),
    "generate: media is a symlink that leads out": _escape("symlink", "generate"),
    "sft: media is a symlink that leads out": _escape("symlink", "sft"),
    "profile: media is a symlink that leads out": _profile_symlink,
    "sft: a cut-off clip and a missing one": _corrupt_clip,
    "generate: empty examples": _empty("generate"),
    "sft: empty training file": _empty("sft"),
    "generate: corrupt config.json": _damaged_model("config", "generate"),
    "generate: cut-off safetensors": _damaged_model("safetensors", "generate"),
    "sft: cut-off safetensors": _damaged_model("safetensors", "sft"),
    "quantize: corrupt config.json": _damaged_model("config", "quantize"),
    "quantize: cut-off safetensors": _damaged_model("safetensors", "quantize"),
    "judge: the server answers 404": lambda inputs: _judge_404(inputs, inputs.url),
    "judge: empty predictions": lambda inputs: _judge_empty(inputs, inputs.url),
    "generate: --out holds another model's predictions": _generate_resume_other_model,
    "generate: --out holds predictions made with other settings": _generate_resume_other_settings,
    "sft: --resume with another batch size and learning rate": _sft_resume_other_settings,
    "sft: --max-steps 0": _sft_no_steps,
    "split: ratios that do not sum to 1": _split_bad_ratios,
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_in_one_line(name, tmp_path, gym_raw, gym_examples, tiny_model, server_404, caplog):
    inputs = Inputs(tmp_path, gym_raw, gym_examples, tiny_model)
    inputs.url = server_404  # type: ignore[attr-defined]
    argv, fragments, rejects = CASES[name](inputs)
    before = snapshot(inputs.out)
    caplog.clear()
    result = invoke(argv)
    assert_refused(result, caplog, [str(f) for f in fragments])
    assert_nothing_half_written(inputs.out, before, rejects)
