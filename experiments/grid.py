"""Run the experiment grid: every experiment for every model, up to JOBS models side by side (make rq_all).

    python experiments/grid.py --models "a b" --rqs "rq1_1_1 rq1_2" --jobs 2 --lock results/.grid.lock \
        -- make --no-print-directory

Each model is one worker that runs `<make> <rq> MODEL=<model>` for each experiment in order (the make
command passes on DATA, SIZE, FRAMES, OUT and LAUNCHER). With more than one job:
- first, one at a time, the pipelines every model shares (the data and each experiment's shared_stages):
  `<make> <rq> MODEL=<first model> UPSTREAM=1`; then each worker reproduces only its model's own stages,
  `<make> <rq> MODEL=<model> OWN=1` (dvc repro --single-item). DVC write-locks a stage's outputs even to
  find it unchanged, and refuses a stage whose outputs another DVC process is reading or writing, so the
  workers must never visit the shared stages.
- each worker's commands get the thread budget (OMP_NUM_THREADS, else the CPU count) divided by the
  jobs: a tiny model's training step takes as long on one thread as on two (80 steps: 15.8 s on one,
  16.0 s on two, 2-core machine), so two models side by side take about half the wall time of one after
  the other.
- an experiment whose spec says `exclusive: true` (the latency and memory profiles) runs alone, on the
  whole thread budget: it takes the grid lock exclusively, every other experiment takes it shared, so
  its figures are not measured on cores that another model's training is using.
The first failure stops the grid: the other workers finish the experiment they are in, start no other,
and the exit status is 1 (2 for a bad argument). This is the pipeline layer, not a tool.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

EXP = Path(__file__).resolve().parent


def split_words(text: str) -> list[str]:
    return [w for w in re.split(r"[,\s]+", text) if w]


def is_exclusive(rq: str, exp_dir: Path = EXP) -> bool:
    """Whether the experiment measures time or memory and so must run with nothing else of the grid."""
    path = exp_dir / f"{rq}.yaml"
    if not path.is_file():
        raise ValueError(f"{path}: no such experiment spec (RQS names experiments/<rq>.yaml)")
    spec = yaml.safe_load(path.read_text()) or {}
    value = spec.get("exclusive", False)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: exclusive must be true or false, got {value!r}")
    return value


class GridLock:
    """A readers-writer lock over processes and threads (flock on a file): experiments hold it shared,
    an exclusive one alone. A turnstile file makes a waiting exclusive holder block new shared ones, so it
    is not starved by workers that go straight from one experiment to the next."""

    def __init__(self, path: Path):
        self.path = path
        self.gate = path.with_name(path.name + ".gate")

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one open file description per holder: flock then treats two threads as two holders
        with open(self.gate, "a") as gate, open(self.path, "a") as lock:
            fcntl.flock(gate, fcntl.LOCK_EX)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class Grid:
    def __init__(self, make: Sequence[str], models: list[str], rqs: list[str], jobs: int, lock: Path,
                 exp_dir: Path = EXP, cpus: int | None = None):
        if not models:
            raise ValueError("MODELS is empty: name at least one model")
        if not rqs:
            raise ValueError("RQS_ALL is empty: name at least one experiment")
        if jobs < 1:
            raise ValueError(f"JOBS={jobs}: use 1 or more")
        if not make:
            raise ValueError("no make command after --")
        self.make, self.models, self.rqs = list(make), models, rqs
        self.jobs = min(jobs, len(models))
        self.exclusive = {rq: is_exclusive(rq, exp_dir) for rq in rqs}
        self.lock = GridLock(lock)
        budget = os.environ.get("OMP_NUM_THREADS", "")
        budget_threads = int(budget) if budget.isdigit() and int(budget) > 0 else (cpus or os.cpu_count() or 1)
        self.threads = max(1, budget_threads // self.jobs)
        self.failed: list[str] = []
        self.stop = threading.Event()
        self._print = threading.Lock()

    def env(self, rq: str) -> dict[str, str]:
        env = dict(os.environ)
        if self.jobs > 1 and not self.exclusive[rq]:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def run(self, label: str, args: list[str], env: dict[str, str]) -> int:
        if self.jobs == 1:
            return subprocess.call(args, env=env)  # the terminal as it is: DVC's own progress output
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:  # whole lines, each marked with its model, so that two never interleave
            with self._print:
                sys.stdout.write(f"[{label}] {line}")
                sys.stdout.flush()
        return proc.wait()

    def fail(self, what: str, code: int) -> None:
        with self._print:
            self.failed.append(f"{what} (exit {code})")
            print(f"grid: {what} failed (exit {code}); starting no other experiment", file=sys.stderr, flush=True)
        self.stop.set()

    def upstream(self) -> None:
        """The data and shared stages, once, before models run side by side."""
        for rq in self.rqs:
            if self.stop.is_set():
                return
            code = self.run("shared", [*self.make, rq, f"MODEL={self.models[0]}", "UPSTREAM=1"], self.env(rq))
            if code:
                self.fail(f"{rq} (shared stages)", code)

    def worker(self, queue: list[str]) -> None:
        while not self.stop.is_set():
            with self._print:
                if not queue:
                    return
                model = queue.pop(0)
            for rq in self.rqs:
                if self.stop.is_set():
                    return
                with self.lock.hold(self.exclusive[rq]):
                    if self.stop.is_set():
                        return
                    own = ["OWN=1"] if self.jobs > 1 else []
                    code = self.run(model, [*self.make, rq, f"MODEL={model}", *own], self.env(rq))
                if code:
                    self.fail(f"{rq} on {model}", code)
                    return

    def __call__(self) -> int:
        if self.jobs > 1:
            self.upstream()
        queue = list(self.models)
        workers = [threading.Thread(target=self.worker, args=(queue,), daemon=True) for _ in range(self.jobs)]
        for w in workers:
            w.start()
        try:
            for w in workers:
                while w.is_alive():
                    w.join(timeout=0.5)
        except KeyboardInterrupt:  # the children got the same SIGINT from the terminal and stop themselves
            self.stop.set()
            for w in workers:
                w.join()
            return 130
        return 1 if self.failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    make = argv[argv.index("--") + 1:] if "--" in argv else []
    ours = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", required=True, help="comma- or space-separated models")
    parser.add_argument("--rqs", required=True, help="comma- or space-separated experiments, run in this order")
    parser.add_argument("--jobs", type=int, default=1, help="models run side by side")
    parser.add_argument("--lock", type=Path, required=True, help="the grid's lock file (under the results root)")
    args = parser.parse_args(ours)
    try:
        grid = Grid(make, split_words(args.models), split_words(args.rqs), args.jobs, args.lock)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    code = grid()
    if grid.failed:
        print("grid: failed: " + "; ".join(grid.failed), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
