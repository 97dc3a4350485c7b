#!/usr/bin/env bash
# Installs the Debian packages vt-analyze's text metrics read at run and test time:
# - wordnet-base: WordNet 3.0 in /usr/share/wordnet, read by NLTK's METEOR (never nltk.download);
# - a Java runtime (default-jre-headless): pycocoevalcap's PTB tokenizer for CIDEr. Without
#   Java, CIDEr is left out of metrics.json with the reason recorded; every other metric works.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

missing=()
[ -f /usr/share/wordnet/data.noun ] || missing+=(wordnet-base)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
test -f /usr/share/wordnet/data.noun
command -v java >/dev/null 2>&1 && java -version 2>&1 | head -1
