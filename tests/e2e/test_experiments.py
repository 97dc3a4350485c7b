"""experiments/expand.py: specs rendered into DVC pipelines, collected into tables; and a smoke run of
every research-question target on the tiny model (slow: it trains and evaluates for real)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("vt_experiments_expand", REPO / "experiments" / "expand.py")
expand = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = expand
SPEC.loader.exec_module(expand)

# The experiments are the specs in experiments/ (nothing else lists them).
ALL_RQS = expand.specs()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A scratch checkout holding only experiments/: the expander writes there, not into the repo."""
    root = tmp_path / "repo"
    (root / "experiments").mkdir(parents=True)
    for path in (REPO / "experiments").iterdir():
        if path.is_file():
            shutil.copy(path, root / "experiments" / path.name)
    monkeypatch.setattr(expand, "ROOT", root)
    monkeypatch.setattr(expand, "EXP", root / "experiments")
    monkeypatch.setattr(expand, "RUNS", root / "experiments" / "runs")
    monkeypatch.delenv("VT_JUDGE_BASE_URL", raising=False)
    return root


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("rq", ALL_RQS)
def test_every_spec_renders_at_both_sizes(repo, rq):
    for size in ("smoke", "full"):
        path = expand.render(rq, "tiny-smolvlm2", size=size)
        pipeline = load(path)
        assert "summary" in pipeline["stages"]
        variables = load(path.parent / "vars.yaml")
        assert variables["runs"], f"{rq} {size}: no runs"
        # every stage runs from the repository root, where the paths in vars.yaml are relative to
        for stage in pipeline["stages"].values():
            assert stage.get("do", stage)["wdir"] == "../../../.."


def test_render_is_idempotent(repo):
    path = expand.render("rq1_3_3", "tiny-smolvlm2", size="smoke")
    files = sorted(p for p in (repo / "experiments" / "runs").rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    text = {p: p.read_text() for p in files}
    assert expand.render("rq1_3_3", "tiny-smolvlm2", size="smoke") == path
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rewritten: DVC sees no change
    assert {p: p.read_text() for p in files} == text
    # a changed setting rewrites only what depends on it
    expand.render("rq1_3_3", "tiny-smolvlm2", size="full")
    assert (repo / "experiments/runs/_data/gym-full-f8/dvc.yaml").is_file()
    assert (repo / "experiments/runs/_data/gym-smoke-f4/dvc.yaml").stat().st_mtime_ns == stamps[
        repo / "experiments/runs/_data/gym-smoke-f4/dvc.yaml"]


def test_write_if_changed(tmp_path):
    target = tmp_path / "a" / "f.yaml"
    assert expand.write_if_changed(target, "x: 1\n") is True
    assert expand.write_if_changed(target, "x: 1\n") is False
    assert expand.write_if_changed(target, "x: 2\n") is True
    assert target.read_text() == "x: 2\n"
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_rq1_3_3_pipeline_shape(repo):
    path = expand.render("rq1_3_3", "tiny-smolvlm2", size="smoke")
    variables = load(path.parent / "vars.yaml")
    assert list(variables["runs"]) == ["clean", "blur_4", "occlusion_30"]
    assert variables["runs"]["clean"]["root"] == "data/exp/gym-smoke-f4/raw"
    assert variables["runs"]["blur_4"]["root"] == "data/exp/gym-smoke-f4/rq1_3_3/degraded/blur_4"
    stages = load(path)["stages"]
    # inference only: evaluates the shared base checkpoint, no training stage of its own
    assert stages["evaluate"]["foreach"] == "${runs}"
    assert "models/exp/gym-smoke-f4/tiny-smolvlm2/base/model" in stages["evaluate"]["do"]["deps"]
    assert "--data-root ${item.root}" in stages["evaluate"]["do"]["cmd"]  # left for DVC's foreach
    assert not any("sft" in s.get("do", s)["cmd"] for s in stages.values())
    assert variables["paths"]["trained"] == "models/exp/gym-smoke-f4/tiny-smolvlm2/base/model"
    assert stages["summary"]["outs"] == ["results/rq1_3_3/tiny-smolvlm2"]
    assert "results/rq1_3_3/_work/tiny-smolvlm2/blur_4" in stages["summary"]["deps"]
    base = load(repo / "experiments/runs/_base/gym-smoke-f4/tiny-smolvlm2/dvc.yaml")["stages"]
    assert "--family smolvlm2" in base["tiny_model"]["cmd"]
    # the tiny model's tower is pretrained on the synthetic clips' keypoints, and the base fine-tune starts there
    assert base["tiny_model"]["outs"] == ["models/exp/gym-smoke-f4/tiny-smolvlm2/random"]
    assert "--model models/exp/gym-smoke-f4/tiny-smolvlm2/random " in base["pretrain_vision"]["cmd"]
    assert "--frames 4 " in base["pretrain_vision"]["cmd"]
    assert "--model models/exp/gym-smoke-f4/tiny-smolvlm2/pretrain/model " in base["base_train"]["cmd"]
    assert base["base_train"]["outs"] == ["models/exp/gym-smoke-f4/tiny-smolvlm2/base"]
    shared = load(repo / "experiments/runs/rq1_3_3/_shared/gym-smoke-f4/dvc.yaml")["stages"]
    assert shared["degrade"]["outs"] == ["data/exp/gym-smoke-f4/rq1_3_3/degraded"]


@pytest.mark.parametrize("size", ["smoke", "full"])
def test_rq1_3_3_reads_the_sets_vt_prep_degrade_writes(repo, size):
    from videotune.prep.degrade import level_name

    path = expand.render("rq1_3_3", "tiny-smolvlm2", size=size)
    variables = load(path.parent / "vars.yaml")
    shared = variables["paths"]["shared"]
    degraded = {run_id: run for run_id, run in variables["runs"].items() if run["kind"] != "clean"}
    assert degraded
    for run_id, run in degraded.items():
        # the set vt-prep degrade writes for (kind, level) is the folder the run reads
        assert run["root"] == f"{shared}/degraded/{level_name(run['kind'], run['level'])}", run_id
    levels = {kind: sorted(str(r["level"]) for r in degraded.values() if r["kind"] == kind)
              for kind in {r["kind"] for r in degraded.values()}}
    spec_vars = variables["v"]
    for kind, flag in (("blur", "blur"), ("compression", "crf"), ("lighting", "lighting"), ("occlusion", "occlusion")):
        if kind in spec_vars["kinds"].split(","):
            assert sorted(spec_vars[flag].split(",")) == levels[kind], kind


def test_registry_model_and_user_data(repo):
    data = repo / "data" / "qved"
    data.mkdir(parents=True)
    (data / "samples.parquet").write_bytes(b"")
    path = expand.render("rq1_1_1", "smolvlm2-256m", data_dir="data/qved", frames=8, size="smoke",
                         train_cmd="vt-train launch --launcher slurm --")
    variables = load(path.parent / "vars.yaml")
    assert variables["paths"]["init"] == "smolvlm2-256m"
    assert variables["train_cmd"] == "vt-train launch --launcher slurm --"
    # a registry name is no file: it is not a DVC dependency (its name in the command is its identity)
    train = load(path)["stages"]["train"]["do"]
    assert "smolvlm2-256m" not in train["deps"]
    base = load(repo / "experiments/runs/_base/qved-smoke-f8/smolvlm2-256m/dvc.yaml")["stages"]
    assert "tiny_model" not in base
    built = load(repo / "experiments/runs/_data/qved-smoke-f8/dvc.yaml")["stages"]
    assert "synth" not in built and "--data-root data/qved" in built["build"]["cmd"]
    with pytest.raises(expand.SpecError, match="samples.parquet"):
        expand.render("rq1_1_1", "tiny-smolvlm2", data_dir="data/missing", size="smoke")


def test_annotated_test_set_is_imported_and_scored_by_a_model_trained_elsewhere(repo):
    """DATA holding annotated_errors.json: imported (every record a test record), built and split; the base
    model trains on the synthetic clips, or on TRAIN_DATA."""
    (repo / "data" / "ann").mkdir(parents=True)
    (repo / "data" / "ann" / "annotated_errors.json").write_text("[]")
    path = expand.render("rq2_1_1", "tiny-smolvlm2", data_dir="data/ann", size="smoke")
    data = load(repo / "experiments/runs/_data/ann-smoke-f4/dvc.yaml")["stages"]
    assert list(data) == ["import", "build", "split"]
    assert data["import"]["cmd"] == ("vt-prep import annotated-errors --data-root data/ann --out data/exp/ann-smoke-f4/imported "
                                     "--task aqa --split test")
    assert "--samples data/exp/ann-smoke-f4/imported/samples.parquet --data-root data/ann" in data["build"]["cmd"]
    assert "--variant temporal" in data["build"]["cmd"]
    paths = load(path.parent / "vars.yaml")["paths"]
    assert paths["raw"] == "data/ann" and paths["split"] == "data/exp/ann-smoke-f4/split/examples"
    assert paths["trained"] == "models/exp/gym-smoke-f4/tiny-smolvlm2/base/model"
    base = load(repo / "experiments/runs/_base/gym-smoke-f4/tiny-smolvlm2/dvc.yaml")["stages"]
    assert "--train-examples data/exp/gym-smoke-f4/split/examples/train.jsonl" in base["base_train"]["cmd"]
    assert {p.name for p in expand.upstream("rq2_1_1", "data/ann", size="smoke")} == {"dvc.yaml"}
    assert [str(p.parent.name) for p in expand.upstream("rq2_1_1", "data/ann", size="smoke")] == [
        "ann-smoke-f4", "gym-smoke-f4"]
    assert expand.own("rq2_1_1", "tiny-smolvlm2", "data/ann", size="smoke")[2] == \
        "experiments/runs/_base/gym-smoke-f4/tiny-smolvlm2/dvc.yaml:base_train"

    (repo / "data" / "qved").mkdir()
    (repo / "data" / "qved" / "samples.parquet").write_bytes(b"")
    path = expand.render("rq2_1_1", "tiny-smolvlm2", data_dir="data/ann", size="smoke", train_data="data/qved")
    assert load(path.parent / "vars.yaml")["paths"]["trained"] == "models/exp/qved-smoke-f4/tiny-smolvlm2/base/model"
    with pytest.raises(expand.SpecError, match="annotated test set .* rq1_1_1 trains on the data"):
        expand.render("rq1_1_1", "tiny-smolvlm2", data_dir="data/ann", size="smoke")
    with pytest.raises(expand.SpecError, match="TRAIN_DATA=data/ann: an annotated test set has no training split"):
        expand.render("rq2_1_1", "tiny-smolvlm2", data_dir="data/ann", size="smoke", train_data="data/ann")
    with pytest.raises(expand.SpecError, match="TRAIN_DATA=data/ann: only an annotated test set"):
        expand.render("rq2_1_1", "tiny-smolvlm2", data_dir="data/qved", size="smoke", train_data="data/ann")


def test_expand_runs_axes_and_errors(tmp_path):
    spec = {"axes": {"smoke": {"resolution": [32], "frames": [2, 4]}}, "id": "r${item.resolution}_f${item.frames}"}
    runs = expand.expand_runs(spec, "smoke", tmp_path / "s.yaml")
    assert runs == {"r32_f2": {"resolution": 32, "frames": 2}, "r32_f4": {"resolution": 32, "frames": 4}}
    with pytest.raises(expand.SpecError, match="twice"):
        expand.expand_runs({"runs": [{"id": "a"}, {"id": "a"}]}, "smoke", tmp_path / "s.yaml")
    with pytest.raises(expand.SpecError, match="characters"):
        expand.expand_runs({"runs": [{"id": "a b"}]}, "smoke", tmp_path / "s.yaml")
    with pytest.raises(expand.SpecError, match="runs"):
        expand.expand_runs({}, "smoke", tmp_path / "s.yaml")
    with pytest.raises(expand.SpecError, match="size 'full'"):
        expand.by_size({"smoke": 1}, "full")


def _metrics(accuracy: float, n: int = 8) -> dict:
    return {"n": n, "metrics": {"exercise_accuracy": accuracy, "error_macro_f1": accuracy / 2,
                                "span_map_iou0.5": 0.1},
            "ci95": {"exercise_accuracy": [max(0.0, accuracy - 0.1), min(1.0, accuracy + 0.1)]},
            "per_class": {}, "meta": {"task": "aqa", "models": ["models/exp/x/base/model"]}}


def test_summary_stage_collects_with_vt_analyze(repo, monkeypatch):
    from videotune.analyze.collect import collect, experiment_preface, load_plan
    from videotune.analyze.summary import write_one_experiment

    path = expand.render("rq1_3_3", "tiny-smolvlm2", size="smoke")
    summary = load(path)["stages"]["summary"]
    plan_path = "experiments/runs/rq1_3_3/tiny-smolvlm2/collect.yaml"
    assert summary["cmd"].startswith(f"vt-analyze collect --plan {plan_path} --out results/rq1_3_3/tiny-smolvlm2")
    assert summary["cmd"].endswith(f"vt-analyze report --results results/rq1_3_3/tiny-smolvlm2/runs --experiment "
                                   f"rq1_3_3 --out results/rq1_3_3/tiny-smolvlm2 --plan {plan_path}")
    assert plan_path in summary["deps"] and "experiments/expand.py" not in summary["deps"]
    work = repo / "results/rq1_3_3/_work/tiny-smolvlm2"
    for run_id, accuracy in (("clean", 0.8), ("blur_4", 0.6), ("occlusion_30", 0.4)):
        (work / run_id / "analyze").mkdir(parents=True)
        (work / run_id / "analyze" / "metrics.json").write_text(json.dumps(_metrics(accuracy)))
        (work / run_id / "analyze" / "run.json").write_text(json.dumps({"tool": "analyze"}))
    monkeypatch.chdir(repo)  # the plan's paths are relative to the repository root, where the stage runs
    plan = load_plan(repo / plan_path)
    out = repo / "results/rq1_3_3/tiny-smolvlm2"
    collect(plan, out)
    rows = (out / "grid.csv").read_text().splitlines()
    assert rows[0] == "run,model,kind,level,accuracy,error_macro_f1,span_map,robustness"
    robustness = {r.split(",")[0]: r.split(",")[-1] for r in rows[1:]}
    assert float(robustness["clean"]) == 1.0
    assert float(robustness["blur_4"]) == pytest.approx(0.75)
    assert float(robustness["occlusion_30"]) == pytest.approx(0.5)
    assert "\\begin{tabular}" in (out / "grid.tex").read_text()
    normalised = json.loads((out / "runs/blur_4/metrics.json").read_text())
    assert normalised["meta"]["models"] == ["tiny-smolvlm2"]
    assert normalised["meta"]["axes"]["kind"] == "blur"
    assert (out / "runs/blur_4/run.json").is_file()
    write_one_experiment(out / "runs", "rq1_3_3", out, preface=experiment_preface(plan, out))
    text = (out / "summary.md").read_text()
    assert text.startswith("# rq1_3_3: visual degradation")
    assert "| blur_4 | tiny-smolvlm2 | blur | 4 | 0.6000 |" in text
    assert "plots/degradation/degradation.png" in text and "## Per run" in text and "Best run by" in text


def test_collect_refuses_a_run_without_results(repo, monkeypatch):
    from videotune.analyze.collect import collect, load_plan
    from videotune.core.io import InputError

    path = expand.render("rq3_1_2", "tiny-smolvlm2", size="smoke")
    monkeypatch.chdir(repo)
    with pytest.raises(InputError, match="b1"):
        collect(load_plan(path.parent / "collect.yaml"), repo / "results/rq3_1_2/tiny-smolvlm2")


def test_specs_use_one_placeholder_syntax_and_are_found_from_their_files(repo):
    import re

    for spec in (REPO / "experiments").glob("*.yaml"):
        text = spec.read_text()
        assert not re.findall(r"(?<!\$)\{[A-Za-z_]+\}", text), f"{spec.name}: a {{name}} placeholder; write ${{name}}"
    assert "rq1_3_3" in ALL_RQS and "base" not in ALL_RQS and "curriculum" not in ALL_RQS
    assert expand.specs(pipelines=True) == ["clinic_curriculum", "dst"]
    shutil.copy(repo / "experiments/rq1_2.yaml", repo / "experiments/rq9_9.yaml")
    assert "rq9_9" in expand.specs()
    make = (REPO / "Makefile").read_text()
    assert "grep -l -E '^(runs|axes):' experiments/*.yaml" in make and "rq1_1_1 rq1_1_2" not in make


def test_curriculum_and_dst_render_as_dvc_pipelines(repo):
    path = expand.render_pipeline("clinic_curriculum", train_cmd=".venv/bin/vt-train")
    stages = load(path)["stages"]
    assert list(stages) == ["clinic_synth", "clinic_build", "clinic_split", "tiny_model", "exp1", "exp2", "table"]
    # the plan's values, as the Makefile used to read them inline
    assert stages["clinic_split"]["cmd"].endswith("--ratios 0.6,0.2,0.2 --seed 0")
    assert "--n-images 240 --width-px 96 --height-px 72" in stages["clinic_synth"]["cmd"]
    assert stages["exp2"]["cmd"].startswith(".venv/bin/vt-train curriculum --plan experiments/curriculum.yaml "
                                            "--experiment exp2 --model models/tiny-clinic")
    assert all(stage["wdir"] == "../../.." for stage in stages.values())
    mtime = path.stat().st_mtime_ns
    expand.render_pipeline("clinic_curriculum", train_cmd=".venv/bin/vt-train")
    assert path.stat().st_mtime_ns == mtime  # unchanged, so DVC sees nothing new
    dst = load(expand.render_pipeline("dst"))["stages"]
    assert dst["metrics"]["deps"] == ["results/dst/stream/events.jsonl", "data/assembly/stream/test.jsonl"]
    with pytest.raises(expand.SpecError, match="not a plain pipeline"):
        expand.render_pipeline("rq1_2")
    (repo / "experiments/broken.yaml").write_text("pipeline: true\nstages: {a: {cmd: 'echo ${nope}'}}\n")
    with pytest.raises(expand.SpecError, match="nope"):
        expand.render_pipeline("broken")


def test_judge_experiment_is_skipped_without_an_endpoint(repo, monkeypatch):
    path = expand.render("rq5_2_1", "tiny-smolvlm2", size="smoke")
    stages = load(path)["stages"]
    assert list(stages) == ["summary"] and " skip " in stages["summary"]["cmd"]
    expand.skip(path.parent, "VT_JUDGE_BASE_URL")
    assert "Skipped" in (repo / "results/rq5_2_1/tiny-smolvlm2/summary.md").read_text()
    monkeypatch.setenv("VT_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("VT_JUDGE_MODEL", "judge")
    stages = load(expand.render("rq5_2_1", "tiny-smolvlm2", size="smoke"))["stages"]
    assert {"evaluate", "judge", "summary"} <= set(stages)
    assert load(path.parent / "vars.yaml")["env"]["VT_JUDGE_BASE_URL"] == "http://127.0.0.1:9/v1"


def test_render_all(repo):
    before = expand.render("rq1_3_3", "tiny-smolvlm2", size="smoke", train_cmd=".venv/bin/vt-train")
    stamp = before.parent.joinpath("vars.yaml").read_text()
    path = expand.render_all(["rq1_3_3", "rq3_1_2", "rq5_2_1"], ["tiny-smolvlm2", "tiny-qwen2-vl"])
    # the experiments' pipelines stay as their targets rendered them (else their commands change and rerun)
    assert before.parent.joinpath("vars.yaml").read_text() == stamp
    stage = load(path)["stages"]["results_summary"]
    assert stage["deps"] == ["results/rq1_3_3/tiny-smolvlm2", "results/rq1_3_3/tiny-qwen2-vl",
                             "results/rq3_1_2/tiny-smolvlm2", "results/rq3_1_2/tiny-qwen2-vl"]
    assert "results/RESULTS_SUMMARY.md" in stage["outs"] and "results/rq3_1_2/summary.md" in stage["outs"]
    assert "--runs-glob '*/runs/*/metrics.json'" in stage["cmd"]


def test_command_line_reports_bad_input(repo, capsys):
    assert expand.main(["render", "rq_nope", "--size", "smoke"]) == 2
    assert "rq_nope.yaml: file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- smoke run (CI)


def _sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("VT_JUDGE_BASE_URL", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_smoke_every_target_then_a_no_op(tmp_path):
    """Every target at SIZE=smoke on the tiny model in a fresh checkout, RESULTS_SUMMARY.md over them,
    and a second run that runs nothing."""
    root = tmp_path / "clone"
    shutil.copytree(REPO / "experiments", root / "experiments", ignore=shutil.ignore_patterns("runs", "__pycache__"))
    (root / ".gitignore").write_text("/data/\n/results/\n/models/\n")
    _sh(["git", "init", "-q"], root)
    _sh(["dvc", "init", "-q"], root)
    rqs = os.environ.get("VT_SMOKE_RQS", " ".join(ALL_RQS)).split()
    python = str(REPO / ".venv" / "bin" / "python")

    def run_all() -> str:
        log = ""
        for rq in rqs:
            pipeline = _sh([python, "experiments/expand.py", "render", rq, "--size", "smoke"], root).strip()
            log += _sh(["dvc", "repro", pipeline], root)
        pipeline = _sh([python, "experiments/expand.py", "render-all", "--rqs", ",".join(rqs), "--models",
                        "tiny-smolvlm2"], root).strip()
        return log + _sh(["dvc", "repro", pipeline], root)

    first = run_all()
    assert "Running stage" in first
    for rq in rqs:
        out = root / "results" / rq / "tiny-smolvlm2"
        assert (out / "summary.md").is_file(), rq
        if rq != "rq5_2_1":
            assert (out / "grid.csv").is_file() and (out / "grid.tex").is_file(), rq
            assert list((out / "runs").glob("*/metrics.json")), rq
    assert "Skipped" in (root / "results/rq5_2_1/tiny-smolvlm2/summary.md").read_text()
    summary = (root / "results" / "RESULTS_SUMMARY.md").read_text()
    assert "Recommendation matrix" in summary and "tiny-smolvlm2" in summary
    second = run_all()
    assert "Running stage" not in second


def _annotated_set(folder: Path, work: Path) -> None:
    """A seed-000 annotated test set as a user makes one: rendered gym clips under QVED-style names, with
    annotated_errors.json beside them (one record outside the taxonomy, which the import refuses)."""
    _sh(["vt-prep", "synth", "gym", "--out", str(work), "--n-clips", "4", "--n-subjects", "2", "--size-px", "64",
         "--fps", "8", "--seed", "1"], work.parent)
    records = []
    for index, (exercise, errors, frames) in enumerate([
            ("squats", [], []), ("squats", ["knees_inward"], [10, 14, 18]),
            ("overhead-press", ["elbows"], [3, 10, 19]), ("overhead-press", ["forward_lean"], [2, 4])]):
        video = f"{exercise}/{index:05d}.mp4"
        (folder / exercise).mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "videos" / f"gym-{index:05d}.mp4", folder / video)
        records.append({"video": video, "exercise": exercise, "errors": errors, "error_frames": frames,
                        "ground_truth": "Keep the knees over the toes." if errors else "Good form."})
    (folder / "annotated_errors.json").write_text(json.dumps(records, indent=1))


@pytest.mark.slow
def test_rq2_1_1_on_an_annotated_set(tmp_path):
    """`make rq2_1_1 DATA=<annotated set> SIZE=smoke`'s pipeline in a fresh checkout: the set imported and scored
    by the tiny model fine-tuned on the synthetic clips (about 2 minutes on 2 cores)."""
    root = tmp_path / "clone"
    shutil.copytree(REPO / "experiments", root / "experiments", ignore=shutil.ignore_patterns("runs", "__pycache__"))
    (root / ".gitignore").write_text("/data/\n/results/\n/models/\n")
    _sh(["git", "init", "-q"], root)
    _sh(["dvc", "init", "-q"], root)
    _annotated_set(root / "data" / "annotated", tmp_path / "gym")
    python = str(REPO / ".venv" / "bin" / "python")
    pipeline = _sh([python, "experiments/expand.py", "render", "rq2_1_1", "--data", "data/annotated", "--size",
                    "smoke"], root).strip()
    _sh(["dvc", "repro", pipeline], root)
    rejects = (root / "data/exp/annotated-smoke-f4/imported/rejects.jsonl").read_text().splitlines()
    assert len(rejects) == 1 and "forward_lean" in rejects[0]
    test = (root / "data/exp/annotated-smoke-f4/split/examples/test.jsonl").read_text().splitlines()
    assert len(test) == 3 and all(json.loads(line)["meta"]["split"] == "test" for line in test)
    assert {json.loads(line)["meta"]["label"] for line in test} == {"squat", "overhead_press"}
    out = root / "results/rq2_1_1/tiny-smolvlm2"
    metrics = json.loads((out / "runs/base/metrics.json").read_text())
    assert metrics["n"] == 3 and "error_macro_f1" in metrics["metrics"]
    assert (out / "summary.md").is_file() and (out / "plots/confusion").is_dir()
    assert (root / "models/exp/gym-smoke-f4/tiny-smolvlm2/base/model").is_dir()  # trained on the synthetic clips
    assert "Running stage" not in _sh(["dvc", "repro", pipeline], root)


def test_upstream_names_the_pipelines_every_model_shares(repo, capsys):
    assert expand.main(["render", "rq1_3_3", "--model", "tiny-smolvlm2", "--size", "smoke", "--upstream"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == ["experiments/runs/_data/gym-smoke-f4/dvc.yaml",
                       "experiments/runs/rq1_3_3/_shared/gym-smoke-f4/dvc.yaml"]
    assert all((repo / p).is_file() for p in printed)
    # an experiment without shared stages shares only the data; the model's own pipeline is rendered too
    assert expand.main(["render", "rq2_1_1", "--model", "tiny-qwen2-vl", "--size", "smoke", "--upstream"]) == 0
    assert capsys.readouterr().out.split() == ["experiments/runs/_data/gym-smoke-f4/dvc.yaml"]
    assert (repo / "experiments/runs/rq2_1_1/tiny-qwen2-vl/dvc.yaml").is_file()


def test_own_names_the_base_stages_an_experiment_reads_then_its_pipeline(repo, capsys):
    # rq1_3_3 evaluates the base checkpoint: the tiny model and the base fine-tune come first
    assert expand.main(["render", "rq1_3_3", "--model", "tiny-smolvlm2", "--size", "smoke", "--own"]) == 0
    base = "experiments/runs/_base/gym-smoke-f4/tiny-smolvlm2/dvc.yaml"
    assert capsys.readouterr().out.split() == [f"{base}:tiny_model", f"{base}:pretrain_vision", f"{base}:base_train",
                                               "experiments/runs/rq1_3_3/tiny-smolvlm2/dvc.yaml"]
    # rq1_1_1 fine-tunes the initial weights: the tiny model and its pretrained tower only
    assert expand.main(["render", "rq1_1_1", "--model", "tiny-smolvlm2", "--size", "smoke", "--own"]) == 0
    assert capsys.readouterr().out.split() == [f"{base}:tiny_model", f"{base}:pretrain_vision",
                                               "experiments/runs/rq1_1_1/tiny-smolvlm2/dvc.yaml"]
    # aqa_dynamic_step names the base fine-tune only in a run's settings (its baseline row, in vars.yaml)
    assert expand.main(["render", "aqa_dynamic_step", "--model", "tiny-smolvlm2", "--size", "smoke", "--own"]) == 0
    assert capsys.readouterr().out.split() == [f"{base}:tiny_model", f"{base}:pretrain_vision", f"{base}:base_train",
                                               "experiments/runs/aqa_dynamic_step/tiny-smolvlm2/dvc.yaml"]


def test_fine_tunes_from_the_pretrained_tower_keep_the_parts_base_yaml_freezes(repo):
    # full: base.yaml freezes the pretrained tower and projector in the base fine-tune and every training run
    path = expand.render("rq1_1_1", "tiny-smolvlm2", size="full")
    base = load(repo / "experiments/runs/_base/gym-full-f8/tiny-smolvlm2/dvc.yaml")["stages"]
    assert "--token-merge 8" in base["tiny_model"]["cmd"]
    assert "--freeze-vision --freeze-projector --seed 0" in base["base_train"]["cmd"]
    assert "--freeze-vision --freeze-projector" in load(path)["stages"]["train"]["do"]["cmd"]
    # smoke freezes nothing; a model that is not pretrained here (a registry model) neither
    expand.render("rq1_1_1", "tiny-smolvlm2", size="smoke")
    smoke = load(repo / "experiments/runs/_base/gym-smoke-f4/tiny-smolvlm2/dvc.yaml")["stages"]["base_train"]["cmd"]
    assert "--freeze" not in smoke and "  " not in smoke
    path = expand.render("rq1_1_1", "smolvlm2-256m", size="full")
    assert load(path.parent / "vars.yaml")["init_flags"] == ""
    # a part that cannot be frozen is named
    text = (repo / "experiments/base.yaml").read_text()
    (repo / "experiments/base.yaml").write_text(text.replace("frozen_after: [vision, projector]",
                                                             "frozen_after: [vision, decoder]"))
    with pytest.raises(expand.SpecError, match=r"frozen_after names \['decoder'\]"):
        expand.render("rq1_1_1", "tiny-smolvlm2", size="full")


def test_an_experiment_with_synthetic_data_settings_renders_its_own_clips(repo, capsys):
    # rq4_1 renders an imbalanced set of its own; the base pipeline and the weights read it
    path = expand.render("rq4_1", "tiny-smolvlm2", size="full")
    synth = load(repo / "experiments/runs/_data/gym-full-f8-rq4_1/dvc.yaml")["stages"]["synth"]["cmd"]
    assert "--n-clips 360 --n-subjects 45 --size-px 64" in synth
    assert "--error-prevalence knees_forward=0.15,elbows=0.15" in synth
    assert "--error-severity 1.2,1.6" in synth  # base.yaml's fault amplitude, under the spec's settings
    variables = load(path.parent / "vars.yaml")
    assert variables["paths"]["split"] == "data/exp/gym-full-f8-rq4_1/split/examples"
    assert variables["paths"]["init"] == "models/exp/gym-full-f8-rq4_1/tiny-smolvlm2/pretrain/model"
    # the other experiments keep the shared clips, and the grid's upstream run names the variant's data
    expand.render("rq1_3_3", "tiny-smolvlm2", size="full")
    assert "--error-prevalence" not in load(
        repo / "experiments/runs/_data/gym-full-f8/dvc.yaml")["stages"]["synth"]["cmd"]
    assert expand.main(["render", "rq4_1", "--model", "tiny-smolvlm2", "--size", "full", "--upstream"]) == 0
    assert capsys.readouterr().out.split()[0] == "experiments/runs/_data/gym-full-f8-rq4_1/dvc.yaml"
    # a user's data is used as it is
    data = repo / "data" / "qved"
    data.mkdir(parents=True)
    (data / "samples.parquet").write_bytes(b"")
    path = expand.render("rq4_1", "tiny-smolvlm2", data_dir="data/qved", size="full")
    assert load(path.parent / "vars.yaml")["paths"]["raw"] == "data/qved"
    # a setting vt-prep synth gym does not take is refused, naming the spec
    spec = repo / "experiments/rq4_1.yaml"
    spec.write_text(spec.read_text().replace("n_subjects: 45", "subjects: 45"))
    with pytest.raises(expand.SpecError, match=r"rq4_1.yaml: synthetic_data sets \['subjects'\]"):
        expand.render("rq4_1", "tiny-smolvlm2", size="full")
