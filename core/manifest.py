"""run.json: the manifest written beside every output (DESIGN.md, "Artifacts")."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from videotune.core.io import path_sha256, write_json


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the checkout the code runs from (with '-dirty' if it has changes)."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (when installed) so a run repeats."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    import numpy as np

    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


class RunManifest:
    """Collects what a run did and writes run.json into its output folder.

    Usage: `m = RunManifest("prep", "synth gym", config, out_dir)`, then `m.add_input(path)`
    for each input, and `m.write(outputs=..., extra=...)` when done.
    """

    def __init__(self, tool: str, command: str, config: dict[str, Any], out_dir: str | Path, seed: int | None = None):
        from videotune import __version__

        self.out_dir = Path(out_dir)
        self.data: dict[str, Any] = {
            "tool": tool,
            "command": command,
            "version": __version__,
            "git_commit": git_commit(),
            "config": config,
            "seed": seed,
            "inputs": {},
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
            "host": host_info(),
        }

    def add_input(self, path: str | Path, name: str | None = None) -> None:
        path = Path(path)
        self.data["inputs"][name or str(path)] = {"path": str(path), "sha256": path_sha256(path)}

    def write(self, outputs: dict[str, Any] | None = None, *, filename: str = "run.json", **extra: Any) -> Path:
        """Write the manifest; `filename` other than run.json where one folder holds several outputs."""
        self.data["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        started = datetime.fromisoformat(self.data["started_at"])
        self.data["wall_s"] = round((datetime.now(UTC) - started).total_seconds(), 3)
        self.data["outputs"] = outputs or {}
        self.data.update(extra)
        target = self.out_dir / filename
        write_json(target, self.data)
        return target
