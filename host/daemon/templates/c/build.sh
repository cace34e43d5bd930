#!/usr/bin/env bash
# Builds __NAME__.wasm: wit-bindgen's C bindings, clang with wasi-libc (WASI preview 1,
# reactor: no `main`), then `wasm-tools component new` with the preview1 reactor adapter.
# Needs: wit-bindgen (0.63), clang >= 16 with a wasm32-wasi sysroot (Debian: clang-19 lld-19
# wasi-libc libclang-rt-19-dev-wasm32), wasm-tools, and ADAPTER = the path of wasmtime's
# wasi_snapshot_preview1.reactor.wasm (crate wasi-preview1-component-adapter-provider).
set -euo pipefail
cd "$(dirname "$0")"
: "${ADAPTER:?set ADAPTER to the path of wasi_snapshot_preview1.reactor.wasm}"
CC="${CC:-clang-19}"
SYSROOT="${WASI_SYSROOT:-/usr}"
rm -rf gen && wit-bindgen c wit --world policy --out-dir gen >/dev/null
"$CC" --target=wasm32-wasi --sysroot="$SYSROOT" -mexec-model=reactor -O2 -Wall -Wextra -Igen \
  policy.c gen/policy.c gen/policy_component_type.o -Wl,--strip-debug -o gen/core.wasm
wasm-tools component new gen/core.wasm --adapt "wasi_snapshot_preview1=$ADAPTER" -o __NAME__.wasm
echo "built __NAME__.wasm"
