"""Curriculum training (seed 001): stage k starts from stage k-1's model; a random-order baseline
trains on the same examples shuffled together with the same total step budget.

Reads top to bottom: the plan (stages, budget; optionally from an experiments YAML), the stage
data (one examples set filtered by meta.stage, or one folder per stage; optionally a share of
every earlier stage's examples replayed in each later stage), the runs (`run_sft` once per
stage, chained through each stage's out/model), the evaluation after every stage on
every stage's held-out set (greedy generation, exact and normalized accuracy), and the
cost-benefit table: compute-hours per accuracy point, as seed 001 defines it,

    compute-hours = devices x training wall-clock hours,
    cost per accuracy point = compute-hours / overall accuracy in percent,

(its Exp1: 2 GPUs x 14 h = 28 GPU-hours at ~22.5 % -> ~1.2 GPU-hours per %). Only training
time counts, as in the seed; evaluation time is reported beside it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from videotune.core.cli import CommandConfig
from videotune.core.io import InputError, atomic_write_text, read_jsonl, write_json, write_jsonl
from videotune.core.manifest import RunManifest
from videotune.core.schemas import Example
from videotune.train.evaluate import generate_answers, score, stage_of
from videotune.train.sft import SftConfig, run_sft

log = logging.getLogger("videotune.train")

# Fields an experiments YAML may set (its `train:` block, `stages:`, and the experiment's own block);
# a flag given on the command line wins over the plan.
PLANNABLE = ("stages", "order", "epochs", "batch_size", "grad_accum", "lr", "scheduler", "warmup_ratio", "mode",
             "letterbox", "max_new_tokens", "eval_split", "sft_options", "replay")
DEFAULTS: dict[str, Any] = {"order": "staged", "epochs": [3.0], "batch_size": 8, "grad_accum": 1, "lr": 2e-4,
                            "scheduler": "cosine", "warmup_ratio": 0.0, "mode": "full", "max_new_tokens": 16,
                            "eval_split": "val", "sft_options": None, "replay": 0.0}


class CurriculumConfig(CommandConfig):
    """Curriculum training: stage k fine-tunes stage k-1's model; --order random trains on all stages'
    examples shuffled together with the same step budget. Evaluates every stage after each stage."""

    model: str = Field(description="base model: registry name, hub id or local model directory")
    examples: Path | None = Field(
        None, description="split folder with train.jsonl, val.jsonl (test.jsonl): stages are meta.stage values in it; "
                          "without it every stage is a folder of its own train/val(/test).jsonl")
    data_root: Path = Field(description="folder the examples' media paths are relative to")
    out: Path = Field(description="output folder: stages/<k>_<stage>/ (sft run, eval/), curriculum.json, "
                                  "cost_benefit.{csv,md}, run.json")
    plan: Path | None = Field(None, description="experiments YAML (experiments/curriculum.yaml) giving stages and budget")
    experiment: str | None = Field(None, description="experiment name inside --plan (e.g. exp2)")
    stages: list[str] | None = Field(None, description="stage names (or stage folders), in curriculum order [default: from --plan]")
    order: Literal["staged", "random"] | None = Field(
        None, description="staged: one run per stage, chained; random: one run over all stages' examples, "
                          "shuffled, with the staged runs' total step budget [default: from --plan, else staged]")
    epochs: list[float] | None = Field(None, description="epochs per stage, or one value for every stage [default: from --plan, else 3]")
    batch_size: int | None = Field(None, ge=1, description="examples per device per step [default: from --plan, else 8]")
    grad_accum: int | None = Field(None, ge=1, description="gradient accumulation steps [default: from --plan, else 1]")
    lr: float | None = Field(None, gt=0, description="peak learning rate of every stage [default: from --plan, else 2e-4]")
    scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] | None = Field(
        None, description="learning-rate schedule, restarted at every stage [default: from --plan, else cosine]")
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="warm-up share of each run [default: from --plan, else 0]")
    mode: Literal["full", "lora"] | None = Field(None, description="full fine-tuning or LoRA [default: from --plan, else full]")
    replay: float | None = Field(
        None, ge=0, le=1, description="staged: share of every earlier stage's training examples mixed into each later "
                                      "stage against forgetting (0: none, 1: cumulative) [default: from --plan, else 0]")
    letterbox: int | None = Field(None, ge=16, description="image examples: letterbox to SIZE x SIZE px (seed 001: 768)")
    eval_split: Literal["val", "test"] | None = Field(
        None, description="held-out split evaluated after every stage [default: from --plan, else val]")
    max_new_tokens: int | None = Field(None, ge=1, description="answer length cap in evaluation (tokens) [default: 16]")
    eval_batch_size: int = Field(16, ge=1, description="examples per generate() call in evaluation")
    devices: int | None = Field(
        None, ge=1, description="devices the compute-hours count [default: WORLD_SIZE, else visible GPUs, else 1 (CPU)]")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    seed: int = Field(0, description="seed of every stage's run and of the random order's shuffle")
    sft_options: str | None = Field(
        None, description="further vt-train sft options for every stage, a JSON object such as '{\"freeze_vision\": true}' "
                          "[default: from --plan's train.sft_options]")

    @model_validator(mode="after")
    def _experiment_needs_plan(self) -> CurriculumConfig:
        if self.experiment and not self.plan:
            raise ValueError("--experiment names an experiment inside --plan; give --plan too")
        return self


# --------------------------------------------------------------------------- plan


def load_plan(path: Path, experiment: str | None) -> dict[str, Any]:
    """The plannable values of an experiments YAML: `stages`, `train:` and `experiments.<name>`."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read the experiments plan ({err})") from err
    if not isinstance(doc, dict):
        raise InputError(f"{path}: an experiments plan is a YAML mapping")
    values: dict[str, Any] = {}
    if "stages" in doc:
        values["stages"] = doc["stages"]
    values.update(doc.get("train") or {})
    if experiment is not None:
        experiments = doc.get("experiments") or {}
        if experiment not in experiments:
            raise InputError(f"{path}: no experiment {experiment!r} (has: {', '.join(experiments) or 'none'})")
        values.update(experiments[experiment] or {})
    unknown = sorted(set(values) - set(PLANNABLE))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {unknown} for experiment {experiment!r}; a plan may set {list(PLANNABLE)}")
    return values


def resolve(config: CurriculumConfig) -> CurriculumConfig:
    """Fill every unset plannable field: the command line first, then the plan, then the defaults."""
    plan = load_plan(config.plan, config.experiment) if config.plan else {}
    values = config.model_dump()
    for key in PLANNABLE:
        if values.get(key) is None:
            values[key] = plan.get(key, DEFAULTS.get(key))
    if isinstance(values["epochs"], (int, float)):
        values["epochs"] = [values["epochs"]]
    if isinstance(values["sft_options"], dict):  # a plan writes a mapping; the flag takes JSON text
        values["sft_options"] = json.dumps(values["sft_options"], sort_keys=True)
    try:
        resolved = CurriculumConfig(**values)
    except ValueError as err:
        raise InputError(f"{config.plan or 'curriculum'}: {err}") from err
    if not resolved.stages:
        raise InputError("no stages: give --stages or a --plan with `stages:`")
    if len(resolved.epochs) not in (1, len(resolved.stages)):
        raise InputError(f"--epochs takes one value or one per stage ({len(resolved.stages)}), got {len(resolved.epochs)}")
    return resolved


# --------------------------------------------------------------------------- stage data


def _read(path: Path) -> list[Example]:
    if not path.is_file():
        raise InputError(f"{path}: examples file not found")
    return read_jsonl(path, Example)


def stage_examples(config: CurriculumConfig, split: str) -> dict[str, list[Example]]:
    """Each stage's examples of one split, in stage order; InputError for an empty stage."""
    assert config.stages is not None
    result: dict[str, list[Example]] = {}
    if config.examples is not None:
        path = config.examples / f"{split}.jsonl"
        pool = _read(path)
        for stage in config.stages:
            result[stage] = [e for e in pool if stage_of(e) == stage]
            if not result[stage]:
                found = sorted({stage_of(e) for e in pool})
                raise InputError(f"{path}: no example of stage {stage!r} (meta.stage values: {found})")
    else:
        for stage in config.stages:
            folder = Path(stage)
            if not folder.is_dir():
                raise InputError(f"stage {stage!r}: not a folder; without --examples each stage is a folder of "
                                 "train/val(/test).jsonl (or give --examples and stage names)")
            examples = _read(folder / f"{split}.jsonl")
            if not examples:
                raise InputError(f"{folder / f'{split}.jsonl'}: no examples")
            result[stage] = examples
    return result


def stage_name(stage: str) -> str:
    """A stage's short name (its folder's name when stages are folders)."""
    return Path(stage).name if os.sep in stage or "/" in stage else stage


def replayed(config: CurriculumConfig, train_sets: dict[str, list[Example]]) -> dict[str, list[Example]]:
    """Each stage's training examples plus `replay` x each earlier stage's (a seeded sample, shuffled in)."""
    share = config.replay or 0.0
    result: dict[str, list[Example]] = {}
    stages = list(train_sets)
    for k, stage in enumerate(stages):
        examples = list(train_sets[stage])
        if share > 0 and k > 0:
            rng = random.Random(f"{config.seed}:replay:{k}")
            for earlier in stages[:k]:
                pool = train_sets[earlier]
                examples += rng.sample(pool, round(share * len(pool)))
            rng.shuffle(examples)
        result[stage] = examples
    return result


def steps_for(n_examples: int, epochs: float, batch_size: int, grad_accum: int, devices: int = 1) -> int:
    """Optimizer steps of `epochs` over `n_examples` (transformers' Trainer arithmetic)."""
    per_epoch = max(1, math.ceil(n_examples / (batch_size * devices)) // grad_accum)
    return max(1, math.ceil(epochs * per_epoch))


def count_devices(configured: int | None) -> tuple[int, str]:
    """How many devices the training used (what compute-hours multiply by) and their kind."""
    import torch

    if torch.cuda.is_available():
        visible = int(os.environ.get("WORLD_SIZE", 0)) or torch.cuda.device_count()
        return configured or visible, torch.cuda.get_device_name(0)
    return configured or int(os.environ.get("WORLD_SIZE", 1)), "cpu"


# --------------------------------------------------------------------------- runs


def _sft_config(config: CurriculumConfig, model: str, train: Path, val: Path | None, out: Path, max_steps: int,
                epochs: float) -> SftConfig:
    try:
        options = json.loads(config.sft_options or "{}")
    except json.JSONDecodeError as err:
        raise InputError(f"--sft-options: not JSON ({err})") from err
    if not isinstance(options, dict):
        raise InputError("--sft-options: a JSON object of vt-train sft options is expected")
    clash = sorted(set(options) & {"model", "train_examples", "val_examples", "data_root", "out", "max_steps", "epochs", "seed"})
    if clash:
        raise InputError(f"sft_options may not set {clash}: the curriculum decides them")
    values = dict(model=model, train_examples=train, val_examples=val, data_root=config.data_root, out=out, epochs=epochs,
                  max_steps=max_steps, batch_size=config.batch_size, grad_accum=config.grad_accum, lr=config.lr,
                  scheduler=config.scheduler, warmup_ratio=config.warmup_ratio, mode=config.mode,
                  letterbox=config.letterbox, dtype=config.dtype, seed=config.seed,
                  # one resumable checkpoint at the end of a stage is enough: model/ is the hand-over
                  save_every_epochs=max(1, math.ceil(epochs)))
    values.update(options)
    try:
        return SftConfig(**values)
    except ValueError as err:
        raise InputError(f"the stage's vt-train sft options are invalid: {err}") from err


def stage_of_key(config: CurriculumConfig, stage: str) -> str:
    """The name a stage goes by in outputs: its meta.stage value, or its folder's name."""
    return stage if config.examples is not None else stage_name(stage)


def run_curriculum(config: CurriculumConfig) -> dict[str, Any]:
    config = resolve(config)
    assert config.stages is not None and config.epochs is not None
    manifest = RunManifest("train", "curriculum", config.model_dump(mode="json"), config.out, seed=config.seed)
    if config.plan:
        manifest.add_input(config.plan, name="plan")
    devices, device_kind = count_devices(config.devices)
    epochs = config.epochs * len(config.stages) if len(config.epochs) == 1 else list(config.epochs)
    train_sets = stage_examples(config, "train")
    held_out = stage_examples(config, config.eval_split)
    val_sets = stage_examples(config, "val")
    names = [stage_of_key(config, s) for s in config.stages]
    if len(set(names)) != len(names):
        raise InputError(f"stage names repeat: {names}")

    # The stage files the runs read (inputs hashed into every run.json).
    data_dir = config.out / "data"
    eval_files: dict[str, Path] = {}
    stage_train = replayed(config, train_sets)
    for stage, name in zip(config.stages, names):
        write_jsonl(data_dir / name / "train.jsonl", stage_train[stage])
        write_jsonl(data_dir / name / "val.jsonl", val_sets[stage])
        eval_files[name] = data_dir / name / f"{config.eval_split}.jsonl"
        if config.eval_split != "val":
            write_jsonl(eval_files[name], held_out[stage])
    # The budget is the staged plan's, replayed examples included; the random order spends the same steps.
    steps = [steps_for(len(stage_train[s]), e, config.batch_size, config.grad_accum) for s, e in zip(config.stages, epochs)]
    budget = {"examples_per_stage": {n: len(stage_train[s]) for s, n in zip(config.stages, names)},
              "replayed_per_stage": {n: len(stage_train[s]) - len(train_sets[s]) for s, n in zip(config.stages, names)},
              "epochs_per_stage": dict(zip(names, epochs)), "steps_per_stage": dict(zip(names, steps)),
              "total_steps": sum(steps), "batch_size": config.batch_size, "grad_accum": config.grad_accum}

    if config.order == "staged":
        plan = [(f"{k + 1}_{name}", data_dir / name / "train.jsonl", steps[k], epochs[k]) for k, name in enumerate(names)]
    else:
        # One run over every stage's examples, shuffled together, with the staged runs' total steps.
        pooled = [e for s in config.stages for e in train_sets[s]]
        random.Random(config.seed).shuffle(pooled)
        write_jsonl(data_dir / "random" / "train.jsonl", pooled)
        total_epochs = sum(steps) / steps_for(len(pooled), 1.0, config.batch_size, config.grad_accum)
        plan = [("1_random", data_dir / "random" / "train.jsonl", sum(steps), round(total_epochs, 6))]

    runs = []
    model = config.model
    rank = int(os.environ.get("RANK", "0"))
    for run_name, train_path, max_steps, run_epochs in plan:
        stage_dir = config.out / "stages" / run_name
        log.info("curriculum %s: %d steps from %s", run_name, max_steps, model)
        # no per-epoch validation loss inside a stage: the curriculum's measure is the accuracy below
        summary = run_sft(_sft_config(config, model, train_path, None, stage_dir, max_steps, run_epochs))
        # Under accelerate/torchrun every process trains; rank 0 alone evaluates and writes the results.
        scores = _evaluate_files(config, stage_dir / "model", eval_files, stage_dir / "eval") if rank == 0 else None
        runs.append({"run": run_name, "model_in": str(model), "model_out": str(stage_dir / "model"),
                     "global_step": summary["global_step"], "train_runtime_s": summary["train_runtime_s"],
                     "final_train_loss": summary.get("final_train_loss"), "accuracy": scores})
        model = str(stage_dir / "model")  # the next stage starts from this one's weights

    if rank != 0:
        return {"rank": rank, "runs": runs}
    train_s = sum(r["train_runtime_s"] for r in runs)
    eval_s = sum(r["accuracy"]["eval_runtime_s"] for r in runs)
    final = runs[-1]["accuracy"]
    compute_h = devices * train_s / 3600
    overall_pct = 100 * final["overall"]["normalized"]
    result = {
        "experiment": config.experiment or config.order, "order": config.order, "stages": names, "budget": budget,
        "runs": runs, "final": {k: final[k] for k in ("stages", "overall", "macro", "baseline_majority")},
        "compute": {"devices": devices, "device": device_kind, "train_wall_s": round(train_s, 3),
                    "train_wall_h": train_s / 3600, "compute_hours": compute_h, "eval_wall_s": round(eval_s, 3)},
        # seed 001: compute-hours per accuracy point (normalized overall accuracy, in percent)
        "compute_hours_per_point": compute_h / overall_pct if overall_pct > 0 else None,
        "model": runs[-1]["model_out"],
    }
    write_json(config.out / "curriculum.json", result)
    write_cost_benefit([result], config.out)
    manifest.write(outputs={"curriculum": "curriculum.json", "cost_benefit": "cost_benefit.md",
                            "model": str(Path(result["model"]).relative_to(config.out))},
                   summary={"overall": final["overall"], "compute_hours": compute_h})
    return result


def _evaluate_files(config: CurriculumConfig, model_dir: Path, eval_files: dict[str, Path], out: Path) -> dict[str, Any]:
    """Accuracy of `model_dir` on every stage's held-out file (predictions.jsonl + accuracy.json in `out`)."""
    import time

    started = time.monotonic()
    predictions = []
    for name, path in eval_files.items():
        answered = generate_answers(
            model_dir, path, config.data_root, batch_size=config.eval_batch_size, max_new_tokens=config.max_new_tokens,
            letterbox=config.letterbox, dtype=config.dtype, description=f"evaluate {name}",
        )
        for p in answered:
            p.meta["stage_key"] = name  # the curriculum's name of the file's stage
        predictions += answered
    write_jsonl(out / "predictions.jsonl", predictions)
    scores = score(predictions, list(eval_files))
    scores["eval_runtime_s"] = round(time.monotonic() - started, 3)
    write_json(out / "accuracy.json", scores)
    return scores


# --------------------------------------------------------------------------- cost-benefit table


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def cost_benefit_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per curriculum.json: budget, compute, per-stage and overall accuracy, cost per point."""
    stages = list(dict.fromkeys(s for r in results for s in r["stages"]))
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "experiment": r["experiment"], "order": r["order"], "runs": len(r["runs"]),
            "steps": r["budget"]["total_steps"], "devices": r["compute"]["devices"], "device": r["compute"]["device"],
            "train_wall_h": round(r["compute"]["train_wall_h"], 6), "compute_hours": round(r["compute"]["compute_hours"], 6),
        }
        for stage in stages:
            acc = r["final"]["stages"].get(stage)
            row[f"acc_{stage}_pct"] = None if acc is None else round(100 * acc["normalized"], 2)
        row["acc_overall_pct"] = round(100 * r["final"]["overall"]["normalized"], 2)
        row["acc_overall_exact_pct"] = round(100 * r["final"]["overall"]["exact"], 2)
        cost = r.get("compute_hours_per_point")
        row["compute_hours_per_point"] = None if cost is None else round(cost, 8)
        rows.append(row)
    return rows


def write_cost_benefit(results: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """cost_benefit.csv and cost_benefit.md (seed 001's table) for one or several curriculum runs."""
    import csv
    import io

    rows = cost_benefit_rows(results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "cost_benefit.csv", buffer.getvalue())

    stage_cols = [k for k in rows[0] if k.startswith("acc_") and k not in ("acc_overall_pct", "acc_overall_exact_pct")]
    header = (["experiment", "order", "steps", "devices", "train wall (h)", "compute-hours"]
              + [c[4:-4] + " (%)" for c in stage_cols] + ["overall (%)", "compute-hours per point"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["experiment"], row["order"], str(row["steps"]), f"{row['devices']} {row['device']}",
                 f"{row['train_wall_h']:.4f}", f"{row['compute_hours']:.4f}"]
        cells += ["" if row[c] is None else f"{row[c]:.1f}" for c in stage_cols]
        cells += [f"{row['acc_overall_pct']:.1f}",
                  "" if row["compute_hours_per_point"] is None else f"{row['compute_hours_per_point']:.2e}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "Accuracy: normalized match (VQA normal form) on each stage's held-out questions after the last run; "
        "overall pools every question. Compute-hours = devices x training wall-clock hours (evaluation excluded); "
        "compute-hours per point = compute-hours / overall accuracy in percent (seed 001).",
    ]
    majority = results[0]["final"].get("baseline_majority")
    if majority:
        notes.append("Constant-answer baseline (each stage's most frequent answer): "
                     + ", ".join(f"{k} {100 * v:.1f} %" for k, v in majority.items()) + ".")
    if len(rows) > 1:
        base = rows[0]
        for row in rows[1:]:
            gain = row["acc_overall_pct"] - base["acc_overall_pct"]
            extra = row["compute_hours"] - base["compute_hours"]
            marginal = f"{extra / gain:.2e} compute-hours per extra point" if gain > 0 else "no accuracy gain"
            notes.append(f"{row['experiment']} vs {base['experiment']}: {gain:+.1f} points overall for "
                         f"{extra:+.4f} compute-hours ({marginal}).")
    atomic_write_text(out / "cost_benefit.md", "\n".join(lines + notes) + "\n")
    return rows


class CurriculumTableConfig(CommandConfig):
    """Seed 001's cost-benefit table over several curriculum runs (the first is the baseline)."""

    runs: list[Path] = Field(description="curriculum.json files (or their folders), baseline first")
    out: Path = Field(description="output folder: cost_benefit.{csv,md}, run.json")


def run_curriculum_table(config: CurriculumTableConfig) -> list[dict[str, Any]]:
    from videotune.core.io import read_json

    manifest = RunManifest("train", "curriculum-table", config.model_dump(mode="json"), config.out)
    results = []
    for path in config.runs:
        path = path / "curriculum.json" if path.is_dir() else path
        if not path.is_file():
            raise InputError(f"{path}: no curriculum.json (run `vt-train curriculum` first)")
        manifest.add_input(path)
        result = read_json(path)
        missing = [k for k in ("experiment", "order", "stages", "budget", "runs", "final", "compute") if k not in result]
        if missing:
            raise InputError(f"{path}: not a curriculum.json (missing {missing})")
        results.append(result)
    config.out.mkdir(parents=True, exist_ok=True)
    rows = write_cost_benefit(results, config.out)
    manifest.write(outputs={"csv": "cost_benefit.csv", "markdown": "cost_benefit.md"})
    return rows
