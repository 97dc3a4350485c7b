"""Run a vt-train command locally, on several GPUs with `accelerate launch`, or on a SLURM cluster.

- local: `vt-train <command>` as is.
- accelerate: `accelerate launch --config_file configs/accelerate/<strategy>.yaml --num_processes N
  -m videotune.train.cli <command>`; strategies ddp (torch DDP), zero2 and zero3 (DeepSpeed ZeRO).
- slurm: an sbatch script rendered from configs/slurm/train.sbatch.j2 (jinja2): one task per node,
  each running accelerate launch for its GPUs with its node rank, the first node hosting the
  rendezvous; written to <out>/<job name>.sbatch and submitted with sbatch.

`--dry-run` prints the command (or the script) and runs nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, atomic_write_text
from videotune.core.manifest import RunManifest

STRATEGIES = ("ddp", "zero2", "zero3")


class LaunchConfig(CommandConfig):
    """Launch a vt-train command locally, with accelerate (DDP, DeepSpeed ZeRO-2/3) or as a SLURM job.
    Everything after `--` is the vt-train command: `vt-train launch --launcher slurm --dry-run -- sft --model ...`."""

    command: str = Field(description="the vt-train command and its flags (what follows `--`), e.g. 'sft --model M ...'")
    launcher: Literal["local", "accelerate", "slurm"] = Field("local", description="where the command runs")
    strategy: Literal["ddp", "zero2", "zero3"] = Field(
        "ddp", description="accelerate/slurm: ddp (torch DDP), zero2 or zero3 (DeepSpeed ZeRO; needs deepspeed)")
    accelerate_config: Path | None = Field(
        None, description="accelerate config file [default: configs/accelerate/<strategy>.yaml]")
    gpus: int = Field(1, ge=1, description="GPUs (processes) per node")
    nodes: int = Field(1, ge=1, description="machines (slurm: nodes of the allocation)")
    partition: str | None = Field(None, description="slurm partition")
    account: str | None = Field(None, description="slurm account")
    time: str = Field("24:00:00", pattern=r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$", description="slurm time limit ([D-]HH:MM[:SS])")
    cpus_per_task: int = Field(8, ge=1, description="slurm CPUs per node task")
    mem: str | None = Field(None, description="slurm memory per node (e.g. 64G)")
    job_name: str = Field("vt-train", pattern=r"^[A-Za-z0-9_.-]+$", description="slurm job name (also the script's file name)")
    port: int = Field(29500, ge=1024, le=65535, description="rendezvous port on the first node")
    sbatch_option: list[str] = Field([], description="extra #SBATCH lines, e.g. --constraint=a100,--qos=high")
    template: Path = Field(Path("configs/slurm/train.sbatch.j2"), description="sbatch template (jinja2)")
    venv: Path | None = Field(None, description="virtual environment the job activates [default: this Python's, if any]")
    out: Path = Field(Path("results/launch"), description="slurm: folder of the rendered script and run.json")
    dry_run: bool = Field(False, description="print the command or the sbatch script; run or submit nothing")

    @model_validator(mode="after")
    def _not_empty(self) -> LaunchConfig:
        if not shlex.split(self.command):
            raise ValueError("no vt-train command to launch: give it after `--`")
        return self


def command_args(config: LaunchConfig) -> list[str]:
    args = shlex.split(config.command)
    if args and args[0] in ("vt-train", "launch"):
        raise InputError(f"the command starts with {args[0]!r}: give the vt-train subcommand itself (sft, curriculum, ...)")
    return args


def accelerate_config_path(config: LaunchConfig) -> Path:
    path = config.accelerate_config or Path("configs/accelerate") / f"{config.strategy}.yaml"
    if not path.is_file():
        raise InputError(f"{path}: accelerate config not found (run from the repository root, or give --accelerate-config)")
    return path


def accelerate_command(config: LaunchConfig) -> list[str]:
    """`accelerate launch` of the vt-train command on this machine's GPUs (one machine)."""
    if config.nodes > 1:
        raise InputError("--launcher accelerate runs on this machine only; several nodes go through --launcher slurm")
    args = ["accelerate", "launch", "--config_file", str(accelerate_config_path(config)),
            "--num_processes", str(config.gpus * config.nodes), "--num_machines", str(config.nodes)]
    return args + ["-m", "videotune.train.cli", *command_args(config)]


def _default_venv() -> Path | None:
    prefix = Path(sys.prefix)
    return prefix if prefix != Path(sys.base_prefix) else None


def render_sbatch(config: LaunchConfig, workdir: Path | None = None) -> str:
    """The sbatch script of the job, rendered from the template."""
    import jinja2

    if not config.template.is_file():
        raise InputError(f"{config.template}: sbatch template not found")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    environment.filters["q"] = lambda value: shlex.quote(str(value))
    try:
        template = environment.from_string(config.template.read_text())
    except jinja2.TemplateSyntaxError as err:
        raise InputError(f"{config.template}:{err.lineno}: template error: {err.message}") from err
    venv = config.venv or _default_venv()
    values: dict[str, Any] = {
        "job_name": config.job_name, "nodes": config.nodes, "gpus_per_node": config.gpus,
        "cpus_per_task": config.cpus_per_task, "time": config.time, "partition": config.partition,
        "account": config.account, "mem": config.mem, "log_dir": str(config.out), "extra_sbatch": config.sbatch_option,
        "workdir": str((workdir or Path.cwd()).resolve()), "venv": str(venv) if venv else None,
        "omp_threads": max(1, config.cpus_per_task // config.gpus), "accelerate_config": str(accelerate_config_path(config)),
        "port": config.port, "command": shlex.join(command_args(config)),
    }
    try:
        return template.render(**values)
    except jinja2.UndefinedError as err:
        raise InputError(f"{config.template}: {err}") from err


def run_launch(config: LaunchConfig) -> dict[str, Any]:
    """Dry run: the command or script as text. Otherwise run it (local, accelerate) or submit it (slurm)."""
    if config.launcher == "slurm":
        script = render_sbatch(config)
        if config.dry_run:
            return {"launcher": "slurm", "script": script}
        path = config.out / f"{config.job_name}.sbatch"
        atomic_write_text(path, script)
        manifest = RunManifest("train", "launch", config.model_dump(mode="json"), config.out)
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise InputError(f"sbatch is not on PATH: the script is in {path}; submit it where SLURM runs")
        done = subprocess.run([sbatch, str(path)], capture_output=True, text=True)
        manifest.write(outputs={"script": path.name}, sbatch={"returncode": done.returncode, "stdout": done.stdout.strip(),
                                                               "stderr": done.stderr.strip()})
        if done.returncode:
            raise RuntimeError(f"sbatch {path} failed ({done.returncode}): {done.stderr.strip()}")
        return {"launcher": "slurm", "script_path": str(path), "submitted": done.stdout.strip()}
    args = accelerate_command(config) if config.launcher == "accelerate" else ["vt-train", *command_args(config)]
    if config.dry_run:
        return {"launcher": config.launcher, "command": shlex.join(args)}
    executable = shutil.which(args[0]) or str(Path(sys.executable).parent / args[0])
    returncode = subprocess.run([executable, *args[1:]]).returncode
    if returncode:
        raise RuntimeError(f"{shlex.join(args)} exited with {returncode}")
    return {"launcher": config.launcher, "command": shlex.join(args), "returncode": returncode}
