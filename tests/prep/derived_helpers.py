"""Helpers of the derived-set tests: small samples files over the gym_raw clips, running vt-prep, hashing outputs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from videotune.core.io import read_samples, write_samples
from videotune.core.schemas import Sample

BIN = Path(sys.executable).parent


def samples_file(gym_raw: Path, out_dir: Path, n: int | None = None, update=None) -> Path:
    """A samples.parquet in `out_dir` holding the first `n` gym_raw clips (media still under gym_raw)."""
    samples = read_samples(gym_raw / "samples.parquet")[: n or None]
    if update is not None:
        samples = [update(i, s) for i, s in enumerate(samples)]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_samples(out_dir / "samples.parquet", samples)
    return out_dir / "samples.parquet"


def vt_prep(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "vt-prep"), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"vt-prep {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` but run.json (which records times)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "run.json"}


def with_errors(sample: Sample, label: str, names: list[str]) -> Sample:
    from videotune.core.schemas import ErrorSpan

    return sample.model_copy(update={"label": label, "errors": [ErrorSpan(name=n, start_s=0.0, end_s=0.5) for n in names]})
