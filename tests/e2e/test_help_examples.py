"""Every command's --help example runs as written, in a scratch folder laid out as the README's.

The commands are found by walking the typer apps of every console script (pyproject's
[project.scripts]), so a new command is covered, and refused until it has an example and a place
in ORDER. The examples run in ORDER, one shared scratch folder for all, each step reading what the
earlier ones wrote (synth -> build -> split -> tiny model -> train -> infer -> analyze ...). What
no example writes is prepared beforehand: release-layout folders for the importers, the collect
plan an experiment render would write, the second annotator's file, experiments/thresholds.yaml.
The judge's server is the judge tests' fake OpenAI-compatible one (only its URL is substituted);
the two page servers (annotate, review) run until a page answers and an item is saved.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests" / "prep"))
sys.path.insert(0, str(ROOT / "tests" / "judge"))

# Every command, in the order its example runs; (name, slow). The fast ones come first: a test runs
# every example before its own, so everything after the first slow one is slow too.
ORDER: list[tuple[str, bool]] = [
    ("vt-prep synth gym", False), ("vt-prep build", False), ("vt-prep split", False),
    ("vt-prep export llava", False), ("vt-prep subset", False), ("vt-prep frames", False),
    ("vt-prep import fitness-aqa", False), ("vt-prep import qved", False), ("vt-prep import llava", False),
    ("vt-prep import vqa", False), ("vt-prep import annotated-errors", False),
    ("vt-prep annotate", False), ("vt-prep agreement", False),
    ("vt-prep synth clinic", False), ("vt-prep synth assembly", False), ("vt-prep dst", False),
    ("vt-train tiny-model", False), ("vt-train params", False), ("vt-train launch", False),
    ("vt-prep augment", True), ("vt-prep balance", True), ("vt-prep degrade", True), ("vt-prep resize", True),
    ("vt-train pretrain-vision", True), ("vt-train sft", True), ("vt-infer generate", True),
    ("vt-analyze metrics", True), ("vt-analyze report", True),
    ("vt-analyze plot", True), ("vt-quantize", True), ("vt-infer profile", True), ("vt-analyze compare", True),
    ("vt-analyze headroom", True), ("vt-analyze collect", True),
    ("vt-judge score", True), ("vt-judge pairwise", True), ("vt-judge review", True), ("vt-judge agreement", True),
    ("vt-train curriculum", True), ("vt-train curriculum-table", True),
    ("vt-train dst", True), ("vt-infer stream", True),
]
SERVERS = {"vt-prep annotate", "vt-judge review"}  # pages that run until Ctrl-C


# --------------------------------------------------------------------------- finding the commands and examples


def _scripts() -> dict[str, str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: target.split(":")[0] for name, target in scripts.items() if name.startswith("vt-")}


def _leaves(command, path: list[str]):
    if getattr(command, "commands", None):  # a group (typer's own click)
        for name, sub in sorted(command.commands.items()):
            yield from _leaves(sub, [*path, name])
    else:
        yield path


def all_commands() -> dict[str, tuple[typer.Typer, list[str]]]:
    """'vt-prep synth gym' -> (the app, the arguments before --help)."""
    found = {}
    for script, module in _scripts().items():
        app = importlib.import_module(module).app
        for path in _leaves(typer.main.get_command(app), []):
            found[" ".join([script, *path])] = (app, path)
    return found


def help_examples(app: typer.Typer, path: list[str]) -> list[str]:
    """The command lines of the Example block that --help prints (`\\` continuations joined)."""
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = result.output.split("Example:", 1)[1] if "Example:" in result.output else ""
    commands, current = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        current += line.removesuffix("\\").strip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def _out(line: str) -> str | None:
    """The --out of a command line (its own, not that of a command it launches after `--`)."""
    words = shlex.split(line)
    words = words[:words.index("--")] if "--" in words else words
    return words[words.index("--out") + 1] if "--out" in words else None


COMMANDS = all_commands()


def test_every_command_has_an_example_and_a_place_in_the_order():
    ordered = [name for name, _ in ORDER]
    assert sorted(ordered) == sorted(COMMANDS), "add the new command to ORDER (and its example to its --help)"
    for name, (app, path) in COMMANDS.items():
        examples = help_examples(app, path)
        assert examples, f"{name} --help has no example"
        assert examples[-1].split("=...", 1)[-1].strip().startswith(name), (name, examples)


def test_no_two_examples_write_the_same_out():
    outs: dict[str, str] = {}
    for app, path in COMMANDS.values():
        for line in help_examples(app, path):
            out = _out(line)
            if out is not None:
                assert outs.setdefault(out, line) == line, f"two examples write {out}:\n{outs[out]}\n{line}"


# --------------------------------------------------------------------------- the scratch folder


def _prepare(name: str, work: Path) -> None:
    """Inputs the example names that no earlier example writes."""
    from release_fixtures import annotated_release, fitness_aqa_release, llava_release, qved_release, vqa_release

    builders = {"vt-prep import fitness-aqa": lambda: fitness_aqa_release(work / "Fitness-AQA_dataset_release"),
                "vt-prep import qved": lambda: qved_release(work / "dataset"),
                "vt-prep import llava": lambda: llava_release(work / "seed002"),
                "vt-prep import vqa": lambda: vqa_release(work / "clinic_vqa"),
                "vt-prep import annotated-errors": lambda: annotated_release(work / "dataset")}
    if name in builders:
        builders[name]()
    elif name == "vt-prep agreement":  # a second annotator's file: pt-1's records with other marks
        first = json.loads((work / "data/qved/annotations/pt-1.json").read_text())
        second = [{**r, "annotator": "pt-2", "error_frames": r["error_frames"][1:]} for r in first]
        (work / "data/qved/annotations/pt-2.json").write_text(json.dumps(second))
    elif name == "vt-train launch":  # the shipped sbatch template, as in a clone
        shutil.copytree(ROOT / "configs", work / "configs", dirs_exist_ok=True)
    elif name == "vt-analyze headroom":
        (work / "experiments").mkdir(exist_ok=True)
        shutil.copy(ROOT / "experiments" / "thresholds.yaml", work / "experiments" / "thresholds.yaml")
    elif name == "vt-analyze collect":  # what `experiments/expand.py render` writes, over the demo run
        plan = work / "experiments/runs/rq1_3_3/tiny-smolvlm2/collect.yaml"
        plan.parent.mkdir(parents=True, exist_ok=True)
        plan.write_text(json.dumps({"experiment": "rq1_3_3", "model": "tiny-smolvlm2", "title": "help example",
                                    "runs": [{"id": "demo", "dir": "results/demo", "settings": {"epochs": 1}}],
                                    "table": {"accuracy": "exercise_accuracy"}}))


def _request(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def _serve(words: list[str], work: Path, env: dict[str, str], name: str) -> None:
    """Run a page server until its page answers and one item is saved, then stop it as Ctrl-C does."""
    port = words.index("--port") + 1 if "--port" in words else None
    words = [*words[:port], "0", *words[port + 1:]] if port else [*words, "--port", "0"]  # any free port
    launcher = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.argv[1], sys.argv[1:])"]
    proc = subprocess.Popen([*launcher, str(BIN / words[0]), *words[1:]], cwd=work, text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        base = "http://127.0.0.1:" + line.split("http://127.0.0.1:")[1].split("/")[0]
        state = _request(base + "/api/state")
        if name == "vt-prep annotate":
            for clip in range(2):
                _request(base + "/api/save", {"clip": clip, "errors": ["knees_inward"], "ground_truth": "Knees out.",
                                              "spans": [{"start": 1, "end": 3, "error": "knees_inward"}]})
        else:
            scores = {d["name"]: 3 for d in state["rubric"]["dimensions"]}
            for item in state["items"]:
                _request(base + "/api/rate", {"id": item["id"], "scores": scores})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()


class Workspace:
    def __init__(self, work: Path):
        self.work = work
        self.done: dict[str, bool] = {}
        self.server = None

    def run_through(self, target: str) -> None:
        for name, _ in ORDER:
            if name not in self.done:
                self.done[name] = False
                self._run(name)
                self.done[name] = True
            assert self.done[name], f"{name}'s example failed earlier"
            if name == target:
                return

    def _run(self, name: str) -> None:
        from judge_fakes import FakeChatServer

        _prepare(name, self.work)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        app, path = COMMANDS[name]
        for line in help_examples(app, path):
            if "http://127.0.0.1:8000/v1" in line:
                self.server = self.server or FakeChatServer()
                line = line.replace("http://127.0.0.1:8000/v1", self.server.url)
            words = shlex.split(line)
            while "=" in words[0] and not words[0].startswith("-"):  # NAME=value before the command
                key, value = words.pop(0).split("=", 1)
                env[key] = value
            if name in SERVERS and words[:len(name.split())] == name.split():
                _serve(words, self.work, env, name)
                continue
            result = subprocess.run([str(BIN / words[0]), *words[1:]], cwd=self.work, env=env, capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    space = Workspace(tmp_path_factory.mktemp("help-examples"))
    yield space
    space.close()


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if slow else []) for n, slow in ORDER])
def test_help_example_runs_as_written(name, workspace):
    workspace.run_through(name)
    app, path = COMMANDS[name]
    for line in help_examples(app, path):
        out = _out(line)
        if out is not None:  # what the example says it writes is there
            assert (workspace.work / out).exists(), line
