#!/usr/bin/env bash
# Builds argmax.js twice, with the pinned toolchains from ../../toolchains.sh:
#   js-argmax.wasm     QuickJS (componentize-qjs; `--sync`: the host does not use the async ABI)
#   js-argmax-sm.wasm  SpiderMonkey (componentize-js, default WASI features, no stub flags)
set -euo pipefail
cd "$(dirname "$0")"
source ../../toolchains.sh
need_js
componentize-qjs --sync --wit ../../../../wit --world policy --js argmax.js -o js-argmax.wasm
componentize-js argmax.js --wit ../../../../wit --world-name policy -o js-argmax-sm.wasm
