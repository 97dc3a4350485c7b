#!/usr/bin/env bash
# Installs the Debian package vt-prep's benchmark reads: the ffmpeg CLI, the decode-everything
# reference of `make bench-prep` (tools/prep/bench.py), and with it the FFmpeg shared libraries that
# torchcodec (one of the benchmark's peer decoders) loads. vt-prep itself decodes and encodes with
# PyAV's bundled FFmpeg libraries and needs no system package; no test needs the CLI.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

if command -v ffmpeg >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends ffmpeg
ffmpeg -version | head -1
