#!/usr/bin/env bash
# Builds c-argmax.wasm with the pinned toolchains from ../../toolchains.sh: wit-bindgen's C
# bindings, Debian's clang-19 + wasi-libc (WASI preview 1, reactor: no `main`), then
# `wasm-tools component new` with the preview1 reactor adapter to make a component.
set -euo pipefail
cd "$(dirname "$0")"
source ../../toolchains.sh
need_c
rm -rf gen && wit-bindgen c ../../../../wit --world policy --out-dir gen >/dev/null
clang-19 --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Wextra -Werror -Igen \
  argmax.c gen/policy.c gen/policy_component_type.o -Wl,--strip-debug -o gen/c-argmax.core.wasm
wasm-tools component new gen/c-argmax.core.wasm --adapt "wasi_snapshot_preview1=$ADAPTER" -o c-argmax.wasm
