#!/usr/bin/env bash
# Builds py-max-length.wasm (the `rule` world) with the pinned componentize-py from ../../toolchains.sh.
# No stub flags: the host serves the WASI randomness and clocks Python's runtime reads, deterministically.
set -euo pipefail
cd "$(dirname "$0")"
source ../../toolchains.sh
need_python
componentize-py -d ../../../../wit -w rule componentize app -o py-max-length.wasm
