"""vt-train curriculum: stage k starts from stage k-1's weights, the random order's budget, scoring, the plan,
the cost-benefit table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from videotune.core import models
from videotune.core.io import InputError, read_jsonl, write_jsonl
from videotune.core.schemas import Example, Prediction
from videotune.prep.build import BuildOptions, build_examples
from videotune.prep.split import split_examples
from videotune.prep.synth_clinic import STAGES, ClinicSynthConfig, synth_clinic
from videotune.train import curriculum as cur
from videotune.train.evaluate import normalize_answer, score

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """8 scans (48 questions) split by image, and a tiny model whose tokenizer knows their text."""
    root = tmp_path_factory.mktemp("clinic")
    samples = synth_clinic(root / "raw", ClinicSynthConfig(n_images=8, seed=0))
    examples, _ = build_examples(samples, root / "raw", BuildOptions("vqa", "plain", 8, 1, 0))
    for name, items in split_examples(examples, (0.5, 0.25, 0.25), seed=0).items():
        write_jsonl(root / "split" / f"{name}.jsonl", items)
    models.build_tiny("smolvlm2", root / "tiny", [m.content for e in examples for m in e.messages],
                      spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400))
    return root


def _config(clinic, out, **overrides):
    values = dict(model=str(clinic / "tiny"), examples=clinic / "split", data_root=clinic / "raw", out=out,
                  stages=list(STAGES), epochs=[1.0], batch_size=4, lr=5e-3, letterbox=64, max_new_tokens=4)
    values.update(overrides)
    return cur.CurriculumConfig(**values)


def _weights(model_dir):
    return load_file(str(Path(model_dir) / "model.safetensors"))


@pytest.mark.slow  # trains the tiny model (about 10-30 s of CPU each)
def test_each_stage_starts_from_the_previous_stage_weights(clinic, tmp_path, monkeypatch):
    """Acceptance: stage 2 (and 3) train from exactly the weights stage 1 (2) saved, bit for bit."""
    events = []
    real_load, real_sft = models.load, cur.run_sft

    def spy_load(ref, *args, **kwargs):
        model, processor = real_load(ref, *args, **kwargs)
        events.append(("load", ref.source, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return model, processor

    def spy_sft(config):
        events.append(("sft", config.model, None))
        return real_sft(config)

    monkeypatch.setattr(models, "load", spy_load)
    monkeypatch.setattr(cur, "run_sft", spy_sft)
    result = cur.run_curriculum(_config(clinic, tmp_path / "staged"))

    stage_dirs = [tmp_path / "staged" / "stages" / f"{k + 1}_{s}" for k, s in enumerate(STAGES)]
    starts = [e[1] for e in events if e[0] == "sft"]
    assert starts == [str(clinic / "tiny"), str(stage_dirs[0] / "model"), str(stage_dirs[1] / "model")]
    for k in (1, 2):
        # the first model the k-th stage's training loaded is the previous stage's saved model, bit for bit
        begun = events.index(("sft", str(stage_dirs[k - 1] / "model"), None))
        loaded = next(e for e in events[begun:] if e[0] == "load")
        assert loaded[1] == str(stage_dirs[k - 1] / "model")
        saved = _weights(stage_dirs[k - 1] / "model")
        assert saved.keys() <= loaded[2].keys()
        for name, tensor in saved.items():
            assert torch.equal(loaded[2][name], tensor), name
    # and every stage trained: each saved model differs from the one it started from
    chain = [_weights(clinic / "tiny")] + [_weights(d / "model") for d in stage_dirs]
    for before, after in zip(chain, chain[1:]):
        assert any(not torch.equal(before[k], after[k]) for k in before)

    assert [r["model_in"] for r in result["runs"]] == starts
    assert result["stages"] == list(STAGES) and len(result["runs"]) == 3
    for run in result["runs"]:  # every stage's model answered every stage's held-out questions
        assert set(run["accuracy"]["stages"]) == set(STAGES)
        predictions = read_jsonl(Path(run["model_out"]).parent / "eval" / "predictions.jsonl", Prediction)
        assert {p.meta["stage"] for p in predictions} == set(STAGES)
    on_disk = json.loads((tmp_path / "staged" / "curriculum.json").read_text())
    assert on_disk["budget"]["total_steps"] == sum(on_disk["budget"]["steps_per_stage"].values())
    assert on_disk["compute"]["compute_hours"] > 0
    assert (tmp_path / "staged" / "cost_benefit.md").read_text().startswith("| experiment |")
    manifest = json.loads((tmp_path / "staged" / "run.json").read_text())
    assert manifest["config"]["order"] == "staged" and manifest["command"] == "curriculum"


@pytest.mark.slow  # trains the tiny model (about 10-30 s of CPU each)
def test_random_order_has_the_staged_budget(clinic, tmp_path):
    result = cur.run_curriculum(_config(clinic, tmp_path / "random", order="random", epochs=[1.0, 2.0, 1.0]))
    staged_steps = result["budget"]["steps_per_stage"]
    n = {s: len([e for e in read_jsonl(clinic / "split" / "train.jsonl", Example) if e.meta["stage"] == s]) for s in STAGES}
    assert staged_steps == {s: cur.steps_for(n[s], e, 4, 1) for s, e in zip(STAGES, (1.0, 2.0, 1.0))}
    assert len(result["runs"]) == 1 and result["runs"][0]["global_step"] == sum(staged_steps.values())
    pooled = read_jsonl(tmp_path / "random" / "data" / "random" / "train.jsonl", Example)
    staged = [e for s in STAGES for e in read_jsonl(tmp_path / "random" / "data" / s / "train.jsonl", Example)]
    assert sorted(e.id for e in pooled) == sorted(e.id for e in staged)
    assert [e.id for e in pooled] != [e.id for e in staged]  # shuffled together, not stage after stage
    assert set(result["final"]["stages"]) == set(STAGES)


def test_scoring_matches_vt_analyze():
    # one normal form for both tools (core.answers): NFKC, case, punctuation, number words, articles
    expected = {"  The Biopsy. ": "biopsy", "Three": "3", "upper-left": "upper left", "3.5 cm": "3.5 cm",
                "An ABNORMAL scan!": "abnormal scan", "follow-up imaging": "follow up imaging"}
    assert {text: normalize_answer(text) for text in expected} == expected

    def p(i, stage, prediction, reference, status="ok"):
        return Prediction(id=str(i), model="m", prompt="q", prediction=prediction, reference=reference, status=status,
                          meta={"stage_key": stage})

    scores = score([p(1, "a", "Normal.", "normal"), p(2, "a", "normal", "normal"), p(3, "b", "two", "2"),
                    p(4, "b", "1", "2"), p(5, "b", "2", "2", status="error")], ["a", "b", "c"])
    assert scores["stages"]["a"] == {"n": 2, "exact": 0.5, "normalized": 1.0}
    assert scores["stages"]["b"] == {"n": 3, "exact": 0.0, "normalized": round(1 / 3, 6)}
    assert scores["stages"]["c"]["n"] == 0
    assert scores["overall"] == {"n": 5, "exact": 0.2, "normalized": 0.6}
    assert scores["macro"]["normalized"] == round((1.0 + 1 / 3) / 2, 6)
    assert scores["baseline_majority"] == {"a": 1.0, "b": 1.0, "overall": 1.0}
    mixed = score([p(1, "a", "x", "normal"), p(2, "a", "x", "abnormal"), p(3, "a", "x", "abnormal")], ["a"])
    assert mixed["baseline_majority"] == {"a": round(2 / 3, 6), "overall": round(2 / 3, 6)}


def test_plan_fills_what_the_command_line_leaves_open(clinic, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"stages": list(STAGES), "train": {"lr": 1e-3, "batch_size": 16, "letterbox": 64,
                                                                      "sft_options": {"logging_steps": 2}},
                                    "experiments": {"exp1": {"order": "random", "epochs": 5},
                                                    "exp2": {"order": "staged", "epochs": [5, 5, 6]}}}))
    base = dict(model="m", examples=clinic / "split", data_root=clinic, out=tmp_path / "o", plan=plan)
    exp2 = cur.resolve(cur.CurriculumConfig(**base, experiment="exp2"))
    assert (exp2.order, exp2.epochs, exp2.lr, exp2.batch_size, exp2.stages) == ("staged", [5, 5, 6], 1e-3, 16, list(STAGES))
    assert json.loads(exp2.sft_options) == {"logging_steps": 2}
    exp1 = cur.resolve(cur.CurriculumConfig(**base, experiment="exp1", lr=3e-4))
    assert (exp1.order, exp1.epochs, exp1.lr, exp1.scheduler) == ("random", [5.0], 3e-4, "cosine")  # the flag wins
    with pytest.raises(InputError, match="no experiment 'exp9'"):
        cur.resolve(cur.CurriculumConfig(**base, experiment="exp9"))
    plan.write_text(yaml.safe_dump({"stages": ["a"], "train": {"learning_rate": 1}}))
    with pytest.raises(InputError, match="unknown key"):
        cur.resolve(cur.CurriculumConfig(**base))
    with pytest.raises(InputError, match="one value or one per stage"):
        cur.resolve(cur.CurriculumConfig(**{**base, "plan": None}, stages=["a", "b"], epochs=[1, 2, 3]))
    with pytest.raises(InputError, match="no example of stage 'nope'"):
        cur.stage_examples(cur.resolve(cur.CurriculumConfig(**{**base, "plan": None}, stages=["nope"])), "train")


def test_the_shipped_plan_resolves(clinic, tmp_path):
    shipped = Path(__file__).resolve().parents[2] / "experiments" / "curriculum.yaml"
    for name in ("exp1", "exp2"):
        config = cur.resolve(cur.CurriculumConfig(model="m", examples=clinic / "split", data_root=clinic, out=tmp_path,
                                                  plan=shipped, experiment=name))
        assert config.stages == list(STAGES)
    exp1, exp2 = (yaml.safe_load(shipped.read_text())["experiments"][n] for n in ("exp1", "exp2"))
    assert (exp1["order"], exp2["order"]) == ("random", "staged") and exp1["epochs"] == exp2["epochs"]


def _result(name, order, acc, hours):
    return {"experiment": name, "order": order, "stages": ["s1", "s2"], "budget": {"total_steps": 10},
            "runs": [{}], "compute": {"devices": 2, "device": "gpu", "train_wall_h": hours / 2, "compute_hours": hours},
            "final": {"stages": {"s1": {"normalized": acc + 0.1}, "s2": {"normalized": acc - 0.1}},
                      "overall": {"normalized": acc, "exact": acc}},
            "compute_hours_per_point": hours / (100 * acc)}


def test_cost_benefit_table_reproduces_seed_001_arithmetic(tmp_path):
    # seed 001: Exp1 28 GPU-hours at 22.5 % (~1.2 per point), Exp2 84 GPU-hours at 25 % (~3.4 per point)
    rows = cur.write_cost_benefit([_result("exp1", "random", 0.225, 28.0), _result("exp2", "staged", 0.25, 84.0)], tmp_path)
    assert round(rows[0]["compute_hours_per_point"], 2) == 1.24 and round(rows[1]["compute_hours_per_point"], 2) == 3.36
    markdown = (tmp_path / "cost_benefit.md").read_text()
    assert "| exp1 | random |" in markdown and "exp2 vs exp1: +2.5 points overall for +56.0000 compute-hours" in markdown
    csv_lines = (tmp_path / "cost_benefit.csv").read_text().splitlines()
    assert csv_lines[0].startswith("experiment,order,") and len(csv_lines) == 3


@pytest.mark.slow  # trains the tiny model (about 10-30 s of CPU each)
def test_cli_curriculum_and_table(clinic, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "exp1"
    done = subprocess.run([str(BIN / "vt-train"), "curriculum", "--model", str(clinic / "tiny"), "--examples",
                           str(clinic / "split"), "--data-root", str(clinic / "raw"), "--out", str(out), "--stages",
                           ",".join(STAGES), "--order", "random", "--epochs", "1", "--batch-size", "8", "--letterbox", "64",
                           "--max-new-tokens", "3"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "overall" in done.stderr and (out / "curriculum.json").is_file()
    table = subprocess.run([str(BIN / "vt-train"), "curriculum-table", "--runs", f"{out},{out / 'curriculum.json'}",
                            "--out", str(tmp_path / "table")], capture_output=True, text=True, env=env)
    assert table.returncode == 0, table.stderr[-2000:]
    assert len((tmp_path / "table" / "cost_benefit.csv").read_text().splitlines()) == 3
    bad = subprocess.run([str(BIN / "vt-train"), "curriculum-table", "--runs", str(tmp_path / "missing"), "--out",
                          str(tmp_path / "t2")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no curriculum.json" in " ".join(bad.stderr.split())


def test_replay_mixes_a_share_of_earlier_stages(clinic, tmp_path):
    def ex(stage, i):
        return Example(id=f"{stage}{i}", sample_id=f"{stage}{i}", media="x.png",
                       messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], target="a",
                       meta={"stage": stage})

    sets = {s: [ex(s, i) for i in range(10)] for s in ("a", "b", "c")}
    config = _config(clinic, tmp_path, stages=["a", "b", "c"], replay=0.5)
    mixed = cur.replayed(config, sets)
    assert [e.id for e in mixed["a"]] == [e.id for e in sets["a"]]
    assert len(mixed["b"]) == 15 and len(mixed["c"]) == 20
    assert sum(e.id.startswith("a") for e in mixed["c"]) == 5 and sum(e.id.startswith("b") for e in mixed["c"]) == 5
    assert {e.id for e in sets["c"]} <= {e.id for e in mixed["c"]}
    assert [e.id for e in cur.replayed(config, sets)["c"]] == [e.id for e in mixed["c"]]  # seeded
    assert cur.replayed(config.model_copy(update={"replay": 0.0}), sets)["c"] == sets["c"]


def test_only_rank_zero_evaluates_and_writes(clinic, tmp_path, monkeypatch):
    trained = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(cur, "run_sft", lambda config: trained.append(config.model) or {"global_step": 1, "train_runtime_s": 0.1})
    monkeypatch.setattr(cur, "generate_answers", lambda *a, **k: pytest.fail("rank 1 evaluated"))
    result = cur.run_curriculum(_config(clinic, tmp_path / "rank1"))
    assert result["rank"] == 1 and len(trained) == 3  # it trains every stage, chained like rank 0
    assert trained[1].endswith("1_initial_assessment/model")
    assert not (tmp_path / "rank1" / "curriculum.json").exists()


def test_stages_as_folders(clinic, tmp_path):
    pool = read_jsonl(clinic / "split" / "train.jsonl", Example)
    for stage in ("s1", "s2"):
        for split in ("train", "val"):
            write_jsonl(tmp_path / stage / f"{split}.jsonl", pool[:3] if stage == "s1" else pool[3:5])
    config = cur.resolve(cur.CurriculumConfig(model="m", data_root=clinic, out=tmp_path / "o",
                                              stages=[str(tmp_path / "s1"), str(tmp_path / "s2")]))
    sets = cur.stage_examples(config, "train")
    assert [len(v) for v in sets.values()] == [3, 2]
    assert [cur.stage_of_key(config, s) for s in config.stages] == ["s1", "s2"]
    with pytest.raises(InputError, match="not a folder"):
        cur.stage_examples(config.model_copy(update={"stages": ["nowhere"]}), "train")
    with pytest.raises(InputError, match="examples file not found"):
        cur.stage_examples(config, "test")
