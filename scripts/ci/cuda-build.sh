#!/usr/bin/env bash
# Compiles arbiter with the `cuda` feature on a machine with no GPU and no CUDA install, so the
# GPU path cannot rot (CI runs this; nothing here runs on a GPU).
#
# - nvcc 13.0 and the CUDA runtime headers come from NVIDIA's PyPI wheels (pinned), installed
#   under $ARBITER_CUDA_CACHE (default ~/.cache/arbiter-cuda), never in the clone.
# - candle pins cudarc's dynamic linking, so the link needs libcuda, libcublas, libcublasLt,
#   libcurand and libnvrtc, and no wheel ships libcuda: link-time stub libraries are generated
#   from cudarc's own declarations (every function it declares, returning an error code), with
#   the real sonames, so the binary binds to the real libraries on a GPU machine.
# - CUDA_COMPUTE_CAP=90 (Hopper, sm_90a PTX). Ampere needs 80: rebuild with CUDA_COMPUTE_CAP=80.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arbiter-target}"
CACHE="${ARBITER_CUDA_CACHE:-$HOME/.cache/arbiter-cuda}"
PY="$CACHE/py"
mkdir -p "$CACHE"
if [ ! -x "$PY/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip install -q --disable-pip-version-check --target "$PY" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
fi
export CUDA_HOME="$PY/nvidia/cu13"
export PATH="$CUDA_HOME/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-2}"
ln -sf libcudart.so.13 "$CUDA_HOME/lib/libcudart.so"

cargo fetch --locked -q
CUDARC_VERSION="$(grep -A1 '^name = "cudarc"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
CUDARC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$CUDARC_VERSION" | head -1)"
STUBS="$CACHE/stubs"
mkdir -p "$STUBS"
# module → soname
for pair in driver:libcuda.so.1 cublas:libcublas.so.13 cublaslt:libcublasLt.so.13 curand:libcurand.so.10 nvrtc:libnvrtc.so.13; do
  module="${pair%%:*}"; soname="${pair#*:}"; base="${soname%%.so*}.so"
  grep -ohE '^pub unsafe fn [A-Za-z0-9_]+\(' "$CUDARC/src/$module/sys/"*.rs | sed -E 's/pub unsafe fn ([A-Za-z0-9_]+)\(/int \1(void) { return 999; }/' | sort -u > "$STUBS/$module.c"
  gcc -shared -fPIC -o "$STUBS/$soname" -Wl,-soname,"$soname" "$STUBS/$module.c"
  ln -sf "$soname" "$STUBS/$base"
done
# The linker (cc) searches LIBRARY_PATH for -l libraries: no RUSTFLAGS change, so everything
# that does not depend on candle is shared with the normal build in the same target dir.
export LIBRARY_PATH="$STUBS:$CUDA_HOME/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
cargo build --locked -p arbiter --features cuda
BIN="$CARGO_TARGET_DIR/debug/arbiter"

# Smoke test of the CUDA binary here, with the stubs standing in for the driver: it starts,
# scores on the CPU as usual, and a CUDA request fails cleanly (exit 2, the driver's error).
export LD_LIBRARY_PATH="$STUBS:$CUDA_HOME/lib"
"$BIN" score --model tests/fixtures/tiny-llama-f32 --input examples/score.jsonl > /dev/null
set +e
"$BIN" score --model tests/fixtures/tiny-llama-f32 --input examples/score.jsonl --device cuda > /dev/null 2> "$CACHE/cuda-err.txt"
status=$?
set -e
if [ "$status" != 2 ] || ! grep -q -- '--device cuda:0' "$CACHE/cuda-err.txt"; then
  echo "expected a clean CUDA failure (exit 2), got $status:"; cat "$CACHE/cuda-err.txt"; exit 1
fi
echo "cuda build ok: $BIN (with CUDA; the next plain build relinks the CPU-only one)"
