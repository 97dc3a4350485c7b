#!/usr/bin/env bash
# Installs Debian's chromium for the review-page test (tests/judge/test_judge_review.py).
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (or sudo).
# The test drives chromium over the DevTools protocol (--remote-debugging-pipe), so no
# chromedriver and no browser download from outside the distribution are needed.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
