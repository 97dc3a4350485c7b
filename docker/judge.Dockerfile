# videotune/judge: vt-judge (score predictions with an LLM judge over an OpenAI-compatible server), with the [judge] extra only.
# Build from the repository root (docker/README.md has CPU/CUDA builds, runs and mounts):
#   CPU:  docker build -f docker/judge.Dockerfile -t videotune/judge .
#   or:   make docker-build TOOL=judge [BASE=cpu|cuda]
# The base is an argument: any image with python3 (>= 3.11, with venv) and useradd.
ARG BASE=python:3.11-slim

# ---- builder: a venv with the project and its [judge] extra, every package pinned ----
FROM ${BASE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}
COPY constraints.txt ./
COPY pyproject.toml README.md ./
COPY core/ core/
COPY tools/ tools/
# pip builds a wheel of the project and installs it (not editable) with only the [judge] extra.
RUN pip install --no-cache-dir -c constraints.txt '.[judge]'

# ---- runtime: the base plus the venv, run as a non-root numeric user ----
FROM ${BASE} AS runtime
LABEL org.opencontainers.image.title="videotune-judge" \
      org.opencontainers.image.description="vt-judge: score predictions with an LLM judge over an OpenAI-compatible server" \
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
RUN vt-judge --help > /dev/null
ENTRYPOINT ["vt-judge"]
CMD ["--help"]
