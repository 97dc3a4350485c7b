# videotune/prep: vt-prep (synthesize datasets, build conversation examples, split), with the [prep] extra only.
# Build from the repository root (docker/README.md has CPU/CUDA builds, runs and mounts):
#   CPU:  docker build -f docker/prep.Dockerfile -t videotune/prep .
#   CUDA: docker build -f docker/prep.Dockerfile -t videotune/prep:cuda \
#           --build-arg BASE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime \
#           --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130 \
#           --build-arg VENV_ARGS=--system-site-packages .
#   or:   make docker-build TOOL=prep [BASE=cpu|cuda]
# The base is an argument: any image with python3 (>= 3.11, with venv) and useradd.
ARG BASE=python:3.11-slim

# ---- builder: a venv with the project and its [prep] extra, every package pinned ----
FROM ${BASE} AS builder
# Where torch and torchvision come from. constraints.txt pins torch==2.14.1, and PyPI's
# 2.14.1 for Linux x86_64 is a CUDA 13 build (several GB with its nvidia-* wheels). The CPU
# default takes the same release from PyTorch's CPU index: 2.14.1+cpu satisfies the ==2.14.1
# pin because PEP 440 ignores the local label. CUDA: see docker/README.md.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# "--system-site-packages" with a pytorch/pytorch base reuses the base's torch when it is the
# pinned release, instead of installing a second copy into the venv.
ARG VENV_ARGS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv ${VENV_ARGS} /opt/venv
ENV PATH=/opt/venv/bin:${PATH}
COPY constraints.txt ./
# torch first and alone from TORCH_INDEX (its dependencies come from PyPI with the project
# below); a base that already has the pinned torch (VENV_ARGS=--system-site-packages) keeps it.
RUN pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX}" -c constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY core/ core/
COPY tools/ tools/
# pip builds a wheel of the project and installs it (not editable) with only the [prep] extra.
RUN pip install --no-cache-dir -c constraints.txt '.[prep]'

# ---- runtime: the base plus the venv, run as a non-root numeric user ----
FROM ${BASE} AS runtime
LABEL org.opencontainers.image.title="videotune-prep" \
      org.opencontainers.image.description="vt-prep: synthesize datasets, build conversation examples, split" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:${PATH} \
    HOME=/home/vt \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# uid/gid 10001; HOME is writable by any uid so that `--user "$(id -u):$(id -g)"` works too.
RUN groupadd --gid 10001 vt \
 && useradd --no-log-init -l --uid 10001 --gid 10001 --home-dir /home/vt --create-home vt \
 && chmod 1777 /home/vt \
 && mkdir -p /workspace /data /results /models \
 && chown 10001:10001 /workspace /data /results /models
COPY --from=builder /opt/venv /opt/venv
WORKDIR /workspace
USER 10001:10001
# Smoke: the console script starts as the image's user (the build fails otherwise).
RUN vt-prep --help > /dev/null
ENTRYPOINT ["vt-prep"]
CMD ["--help"]
