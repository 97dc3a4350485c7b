"""experiments/grid.py (make rq_all): models side by side, the shared pipelines first, exclusive
experiments alone, the first failure stops the grid. A stand-in for make records what it was asked."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("vt_experiments_grid", REPO / "experiments" / "grid.py")
grid = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = grid
SPEC.loader.exec_module(grid)

# records {rq, model, upstream, omp, start, end} per call; fails where $FAIL names "rq:model[:upstream]"
FAKE_MAKE = textwrap.dedent("""
    import json, os, sys, time
    rq, model = sys.argv[1], sys.argv[2].split("=", 1)[1]
    upstream = "UPSTREAM=1" in sys.argv[3:]
    own = "OWN=1" in sys.argv[3:]
    start = time.monotonic()
    time.sleep(float(os.environ.get("HOLD_S", "0.4")))
    record = {"rq": rq, "model": model, "upstream": upstream, "own": own, "omp": os.environ.get("OMP_NUM_THREADS"),
              "start": start, "end": time.monotonic()}
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps(record) + "\\n")
    print(f"ran {rq} {model}")
    sys.exit(3 if os.environ.get("FAIL") == f"{rq}:{model}" + (":upstream" if upstream else "") else 0)
""")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    exp = tmp_path / "experiments"
    exp.mkdir()
    (exp / "a.yaml").write_text("title: a\n")
    (exp / "b.yaml").write_text("title: b\nexclusive: true\n")
    (exp / "c.yaml").write_text("title: c\nexclusive: false\n")
    fake = tmp_path / "fake_make.py"
    fake.write_text(FAKE_MAKE)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CALLS", str(calls))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FAIL", raising=False)

    def make_grid(models, rqs=("a", "b", "c"), jobs=2):
        return grid.Grid([sys.executable, str(fake)], list(models), list(rqs), jobs, tmp_path / "out" / ".grid.lock",
                         exp_dir=exp, cpus=2)

    def read():
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return make_grid, read


def overlaps(x, y) -> bool:
    return x["start"] < y["end"] and y["start"] < x["end"]


def test_two_models_side_by_side(setup, capsys):
    make_grid, read = setup
    assert make_grid(["m1", "m2"])() == 0
    calls = read()
    shared = [c for c in calls if c["upstream"]]
    runs = [c for c in calls if not c["upstream"]]
    # the shared pipelines of every experiment first, one at a time, named by the first model
    assert [c["rq"] for c in shared] == ["a", "b", "c"] and {c["model"] for c in shared} == {"m1"}
    assert max(c["end"] for c in shared) <= min(c["start"] for c in runs)
    # every experiment for every model, each model's in order
    for model in ("m1", "m2"):
        assert [c["rq"] for c in sorted(runs, key=lambda c: c["start"]) if c["model"] == model] == ["a", "b", "c"]
    # the exclusive experiment overlaps nothing; the others did run side by side
    for c in runs:
        if c["rq"] == "b":
            assert not any(overlaps(c, o) for o in runs if o is not c), (c, runs)
    assert any(overlaps(x, y) for x in runs for y in runs if x["model"] != y["model"])
    # beside another model, only the model's own stages (the shared ones are done), on one thread each;
    # the exclusive experiment on the machine's default threads
    assert all(c["own"] for c in runs) and not any(c["own"] for c in shared)
    assert {c["omp"] for c in runs if c["rq"] != "b"} == {"1"}
    assert {c["omp"] for c in runs if c["rq"] == "b"} == {None}
    out = capsys.readouterr().out
    assert "[m1] ran a m1" in out and "[m2] ran c m2" in out and "[shared] ran a m1" in out


def test_one_job_runs_models_one_after_the_other(setup):
    make_grid, read = setup
    assert make_grid(["m1", "m2"], jobs=1)() == 0
    calls = read()
    assert [(c["rq"], c["model"]) for c in calls] == [("a", "m1"), ("b", "m1"), ("c", "m1"),
                                                       ("a", "m2"), ("b", "m2"), ("c", "m2")]
    assert not any(c["upstream"] or c["own"] for c in calls) and {c["omp"] for c in calls} == {None}


def test_jobs_beyond_the_models_and_a_thread_budget(setup, monkeypatch):
    make_grid, read = setup
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    g = make_grid(["m1"], jobs=4)
    assert g.jobs == 1
    assert g() == 0 and {c["omp"] for c in read()} == {"4"}


def test_the_thread_budget_is_divided_between_the_jobs(setup, monkeypatch):
    make_grid, read = setup
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the Makefile exports its default, 2
    assert make_grid(["m1", "m2"], rqs=("a", "b"))() == 0
    runs = [c for c in read() if not c["upstream"]]
    assert {c["omp"] for c in runs if c["rq"] == "a"} == {"2"}
    assert {c["omp"] for c in runs if c["rq"] == "b"} == {"4"}


def test_first_failure_stops_the_grid(setup, monkeypatch, capsys):
    make_grid, read = setup
    monkeypatch.setenv("FAIL", "a:m1")
    monkeypatch.setenv("HOLD_S", "0.2")
    assert make_grid(["m1", "m2"], rqs=("a", "c"))() == 1
    runs = [c for c in read() if not c["upstream"]]
    assert ("c", "m1") not in [(c["rq"], c["model"]) for c in runs]
    assert len(runs) <= 3  # m2 may finish the experiment it was in, and start none after m1 failed
    assert "a on m1 failed (exit 3)" in capsys.readouterr().err


def test_failed_shared_stage_runs_no_model(setup, monkeypatch):
    make_grid, read = setup
    monkeypatch.setenv("FAIL", "a:m1:upstream")
    assert make_grid(["m1", "m2"])() == 1
    assert [(c["rq"], c["upstream"]) for c in read()] == [("a", True)]


def test_bad_arguments(setup, tmp_path, capsys):
    make_grid, _ = setup
    with pytest.raises(ValueError, match="no such experiment spec"):
        make_grid(["m1"], rqs=("a", "nope"))
    with pytest.raises(ValueError, match="MODELS is empty"):
        make_grid([])
    with pytest.raises(ValueError, match="JOBS=0"):
        make_grid(["m1"], jobs=0)
    (tmp_path / "experiments" / "d.yaml").write_text("exclusive: maybe\n")
    with pytest.raises(ValueError, match="exclusive must be true or false"):
        make_grid(["m1"], rqs=("d",))
    assert grid.main(["--models", "m1", "--rqs", "nope", "--jobs", "1", "--lock", str(tmp_path / "l"), "--", "make"]) == 2
    assert "no such experiment spec" in capsys.readouterr().err


def test_every_real_spec_declares_its_exclusivity():
    rqs = [p.stem for p in (REPO / "experiments").glob("*.yaml")
           if p.stem not in {"base", "curriculum", "thresholds"}]
    flags = {rq: grid.is_exclusive(rq) for rq in rqs}
    assert {rq for rq, ex in flags.items() if ex} == {"rq3_1_1", "rq3_1_2", "rq3_1_3", "rq3_2_2"}


def test_lock_lets_a_waiting_exclusive_holder_in_before_later_shared_ones(tmp_path):
    import threading
    import time
    lock = grid.GridLock(tmp_path / "g.lock")
    order, release = [], threading.Event()

    def holder(name, exclusive):
        with lock.hold(exclusive):
            order.append(name)
            release.wait(10)

    with lock.hold(exclusive=False):
        ex = threading.Thread(target=holder, args=("exclusive", True), daemon=True)
        ex.start()
        time.sleep(0.3)  # the exclusive holder now waits for the first shared one to leave
        sh = threading.Thread(target=holder, args=("shared", False), daemon=True)
        sh.start()
        time.sleep(0.3)
        assert order == []  # neither is in while the first shared holder is
    time.sleep(0.3)
    assert order == ["exclusive"]  # it goes first; the later shared holder waits for it to leave
    release.set()
    ex.join(5)
    sh.join(5)
    assert order == ["exclusive", "shared"]
