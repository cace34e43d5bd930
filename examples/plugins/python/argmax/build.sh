#!/usr/bin/env bash
# Builds py-argmax.wasm with a pinned componentize-py (no stub flags: the host serves the WASI
# randomness and clocks Python's runtime reads, deterministically).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --quiet componentize-py==0.25.1 2>/dev/null \
  || python3 -m pip install --quiet --break-system-packages componentize-py==0.25.1
componentize-py -d ../../../../wit -w policy componentize app -o py-argmax.wasm
