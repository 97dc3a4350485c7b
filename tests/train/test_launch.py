"""vt-train launch: accelerate configs parse, the sbatch script renders and runs its command, dry runs print."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videotune.core.io import InputError
from videotune.train.cli import _launch_argv
from videotune.train.launch import LaunchConfig, accelerate_command, render_sbatch, run_launch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # configs/ paths are relative to the repository root


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DistributedType

    path = ROOT / "configs" / "accelerate" / f"{name}.yaml"
    config = ClusterConfig.from_yaml_file(str(path))
    if name == "ddp":
        assert config.distributed_type == DistributedType.MULTI_GPU
        return
    assert config.distributed_type == DistributedType.DEEPSPEED
    ds_file = ROOT / config.deepspeed_config["deepspeed_config_file"]
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == int(name[-1])
    # batch sizes, precision and clipping come from the Trainer (vt-train sft flags), never fixed here
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert ds[key] == "auto"
    assert config.deepspeed_config["zero3_init_flag"] == (name == "zero3")
    if name == "zero3":
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert yaml.safe_load(path.read_text())["num_machines"] == 1


def test_accelerate_command_and_dry_run():
    config = LaunchConfig(command="sft --model m --lr 1e-3", launcher="accelerate", strategy="zero3", gpus=4, dry_run=True)
    assert accelerate_command(config) == [
        "accelerate", "launch", "--config_file", "configs/accelerate/zero3.yaml", "--num_processes", "4",
        "--num_machines", "1", "-m", "videotune.train.cli", "sft", "--model", "m", "--lr", "1e-3"]
    assert run_launch(config)["command"].startswith("accelerate launch --config_file configs/accelerate/zero3.yaml")
    with pytest.raises(InputError, match="slurm"):
        accelerate_command(config.model_copy(update={"nodes": 2}))
    with pytest.raises(InputError, match="subcommand"):
        accelerate_command(config.model_copy(update={"command": "vt-train sft"}))
    with pytest.raises(InputError, match="not found"):
        accelerate_command(config.model_copy(update={"accelerate_config": Path("configs/accelerate/nope.yaml")}))


def test_dash_dash_becomes_one_quoted_command():
    argv = ["vt-train", "launch", "--launcher", "slurm", "--", "sft", "--model", "a model", "--lr", "1e-3"]
    assert _launch_argv(argv) == ["vt-train", "launch", "--launcher", "slurm", "--command", "sft --model 'a model' --lr 1e-3"]
    assert _launch_argv(["vt-train", "sft", "--", "x"]) == ["vt-train", "sft", "--", "x"]


def test_sbatch_renders_every_setting(tmp_path):
    config = LaunchConfig(command="curriculum --plan experiments/curriculum.yaml --experiment exp2", launcher="slurm",
                          gpus=2, nodes=3, partition="gpu", account="lab", time="1-02:00:00", mem="64G", job_name="exp2",
                          sbatch_option=["--constraint=a100"], venv=tmp_path / "venv", out=tmp_path / "logs")
    script = render_sbatch(config, workdir=tmp_path)
    for line in ("#SBATCH --job-name=exp2", "#SBATCH --nodes=3", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                 "#SBATCH --account=lab", "#SBATCH --time=1-02:00:00", "#SBATCH --mem=64G", "#SBATCH --constraint=a100",
                 f"#SBATCH --output={tmp_path / 'logs'}/%x-%j.out", f"source {tmp_path / 'venv'}/bin/activate"):
        assert line in script, line
    assert "--num_machines 3 --num_processes 6" in script
    assert script.rstrip().endswith("vt-train curriculum --plan experiments/curriculum.yaml --experiment exp2")
    bare = render_sbatch(config.model_copy(update={"partition": None, "account": None, "mem": None, "sbatch_option": []}))
    assert "--partition" not in bare and "--account" not in bare and "--mem" not in bare
    with pytest.raises(ValueError):
        LaunchConfig(command="sft", time="forever")


def test_sbatch_script_runs_the_command_on_every_node(tmp_path):
    """Run the rendered script with stand-ins for srun, scontrol and accelerate: every node's task gets
    its rank, the first node's address and the vt-train arguments exactly (quoting included)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    scripts = {
        "scontrol": 'printf "node-a\\nnode-b\\n"',
        # srun: run the task once per node, as SLURM would, with its SLURM_NODEID
        "srun": 'shift; for n in 0 1; do SLURM_NODEID=$n "$@"; done',
        "accelerate": 'printf "%s\\n" "$MAIN_PROCESS_IP" "$@" >> "$CALLS"; echo --- >> "$CALLS"',
    }
    for name, body in scripts.items():
        path = fake / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    config = LaunchConfig(command="sft --model 'a model' --lr 1e-3", launcher="slurm", gpus=2, nodes=2, venv=None,
                          out=tmp_path / "logs")
    script = render_sbatch(config, workdir=ROOT)
    script = "\n".join(line for line in script.splitlines() if not line.startswith("source "))  # no venv to enter
    (tmp_path / "job.sbatch").write_text(script)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node-[a-b]", "CALLS": str(calls)}
    subprocess.run(["bash", str(tmp_path / "job.sbatch")], check=True, env=env)
    runs = [block.strip().split("\n") for block in calls.read_text().split("---") if block.strip()]
    assert len(runs) == 2
    for rank, args in enumerate(runs):
        assert args[0] == "node-a"
        assert args[1:] == ["launch", "--config_file", "configs/accelerate/ddp.yaml", "--num_machines", "2",
                            "--num_processes", "4", "--machine_rank", str(rank), "--main_process_ip", "node-a",
                            "--main_process_port", "29500", "-m", "videotune.train.cli", "sft", "--model", "a model",
                            "--lr", "1e-3"]


def test_cli_dry_run_prints_the_script(tmp_path):
    done = subprocess.run([str(BIN / "vt-train"), "launch", "--launcher", "slurm", "--gpus", "2", "--partition", "gpu",
                           "--out", str(tmp_path / "jobs"), "--dry-run", "--", "sft", "--model", "m"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("#!/bin/bash") and "#SBATCH --partition=gpu" in done.stdout
    assert done.stdout.rstrip().endswith("vt-train sft --model m")
    assert not (tmp_path / "jobs").exists()  # a dry run writes nothing
    missing = subprocess.run([str(BIN / "vt-train"), "launch", "--launcher", "slurm", "--dry-run"],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2


def test_slurm_without_sbatch_keeps_the_script(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    config = LaunchConfig(command="sft --model m", launcher="slurm", out=tmp_path / "jobs", job_name="j1")
    with pytest.raises(InputError, match="sbatch is not on PATH"):
        run_launch(config)
    assert (tmp_path / "jobs" / "j1.sbatch").read_text().startswith("#!/bin/bash")


def test_local_launcher_runs_vt_train(tmp_path):
    ok = run_launch(LaunchConfig(command="curriculum-table --help"))
    assert ok == {"launcher": "local", "command": "vt-train curriculum-table --help", "returncode": 0}
    with pytest.raises(RuntimeError, match="exited with 2"):
        run_launch(LaunchConfig(command=f"curriculum-table --runs {tmp_path / 'missing'} --out {tmp_path / 'o'}"))
