#!/usr/bin/env bash
# The GPU check of the CUDA engine, for a machine with NVIDIA GPUs and no Rust toolchain.
#
#   scripts/gpu-check.sh ARBITER_BINARY        (a binary built with --features cuda; run from the repo root)
#
# (a) scores the committed fixtures on the GPU in f32, bf16 and f16 and compares them with the CPU
#     f32 goldens (f32 within 1e-3; bf16/f16 ranked as the goldens wherever their margin is clear);
# (b) writes an 8B-shaped random checkpoint to the local disk and measures prefill tokens/s and
#     MFU for N = 16 candidates of ~1k tokens sharing a ~4k prompt, against PyTorch's model-card
#     loop in bf16 on the same GPU when torch and transformers are importable;
# (c) reports the peak GPU memory over the run (nvidia-smi, sampled every 0.5 s);
# (d) with 2+ GPUs, checks that the layer split (small batches, pipelined over the GPUs) gives the
#     scores of one GPU.
# Prints BENCHMARKS.md-ready table rows; takes a few minutes (the 8B checkpoint write dominates).
# Needs python3 with numpy (the checkpoint writer); torch + transformers for the reference.
# LLAMA3_DIR: the Llama-3 tokenizer and template (default ../shared/llama3; else the fixture's).
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU (to check the script without a GPU;
# GPU_CHECK_SMALL=1 then uses a small checkpoint instead of the 8B one).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: scripts/gpu-check.sh ARBITER_BINARY}
OUT=${GPU_CHECK_OUT:-/tmp/arbiter-gpu-check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PEAK_TFLOPS=${GPU_CHECK_PEAK_TFLOPS:-989}   # dense bf16 of an H100/H200 SXM; set it for other GPUs
mkdir -p "$OUT"
export ARBITER_CACHE_DIR="$OUT/cache"
FAILED=0

row() { echo "$1" | tee -a "$OUT/rows.md"; }
: > "$OUT/rows.md"

if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpus.txt"
  NGPU=$(wc -l < "$OUT/gpus.txt")
  ( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >> "$OUT/memory.txt" 2>/dev/null; sleep 0.5; done ) &
  SAMPLER=$!
  trap 'kill $SAMPLER 2>/dev/null || true' EXIT
else
  NGPU=2   # CPU stand-ins: the split path is the same code
fi
dev() { if [ "$DEVICE" = cuda ]; then echo "$1"; else echo cpu; fi; }

echo "== (a) fixtures on $(dev cuda) vs the CPU f32 goldens"
python3 scripts/gpu_check.py cases tiny-llama-f32 "$OUT/fixtures.jsonl"
for dtype in f32 bf16 f16; do
  "$BIN" score --model tests/fixtures/tiny-llama-f32 --device "$(dev cuda)" --dtype "$dtype" \
    --input "$OUT/fixtures.jsonl" --output "$OUT/fixtures-$dtype.jsonl" 2> "$OUT/fixtures-$dtype.log"
  python3 scripts/gpu_check.py compare tiny-llama-f32 "$OUT/fixtures-$dtype.jsonl" "$dtype" "$(dev cuda) fixtures" \
    | tee -a "$OUT/rows.md" || FAILED=1
done

echo "== (d) the layer split over GPUs 0 and 1 vs one GPU"
if [ "$NGPU" -ge 2 ]; then
  split=$(dev cuda:0,1)
  # Small batches: several per case, so they run pipelined over the two GPUs.
  "$BIN" score --model tests/fixtures/tiny-llama-f32 --device "$split" --dtype f32 --max-batch-tokens 64 \
    --input "$OUT/fixtures.jsonl" --output "$OUT/fixtures-split.jsonl" 2> "$OUT/fixtures-split.log"
  python3 scripts/gpu_check.py same "$OUT/fixtures-f32.jsonl" "$OUT/fixtures-split.jsonl" "split over $split vs one device" \
    | tee -a "$OUT/rows.md" || FAILED=1
else
  row "| layer split | one GPU only: not checked | SKIP |"
fi

echo "== (b) 8B-shaped prefill: N = 16 × ~1k tokens sharing a ~4k prompt"
MODEL="$OUT/bench/model"
if [ "${GPU_CHECK_SMALL:-0}" = 1 ]; then
  PROMPT_WORDS=300; RESPONSE_WORDS=75
  python3 -c "import sys; sys.path.insert(0, 'scripts/reference'); import bench_reference as b; b.make_checkpoint('$OUT/bench', 'tests/fixtures/tiny-llama-f32')" 2>/dev/null || true
else
  TOKENIZER=${LLAMA3_DIR:-../shared/llama3}
  if [ -f "$TOKENIZER/tokenizer.json" ]; then
    PROMPT_WORDS=3600; RESPONSE_WORDS=900          # ~1.1 Llama-3 tokens per word
  else
    # No Llama-3 tokenizer on this machine: the fixture's small vocabulary (~4 tokens per word).
    TOKENIZER=tests/fixtures/tiny-llama-f32; PROMPT_WORDS=1000; RESPONSE_WORDS=250
  fi
  [ -f "$MODEL/config.json" ] || python3 scripts/bench/make_8b.py --out "$MODEL" --tokenizer "$TOKENIZER"
fi
python3 -c "import sys; sys.path.insert(0, 'scripts/reference'); import bench_reference as b; b.make_cases('$OUT/bench', 'prefill', 1, 16, $PROMPT_WORDS, $RESPONSE_WORDS)"
REF=()
if python3 -c "import torch, transformers" 2>/dev/null; then
  python3 scripts/reference/bench_reference.py --dir "$OUT/bench" --set prefill --cases 1 --n 16 \
    --prompt-words "$PROMPT_WORDS" --response-words "$RESPONSE_WORDS" --dtype bfloat16 --device "$(dev cuda)" \
    --threads "$(nproc)" --out ref-prefill.json && REF=(--reference "$OUT/bench/ref-prefill.json")
fi
"$BIN" bench engine --model "$MODEL" --input "$OUT/bench/prefill.jsonl" --device "$(dev cuda)" --dtype bf16 \
  --repeat 3 "${REF[@]}" | tee "$OUT/bench.txt"
python3 scripts/gpu_check.py mfu "$OUT/bench.txt" "$PEAK_TFLOPS" | tee -a "$OUT/rows.md" || FAILED=1

echo "== (c) peak GPU memory"
if [ -s "$OUT/memory.txt" ]; then
  row "| peak GPU memory over the run (nvidia-smi, MiB per GPU) | $(sort -n "$OUT/memory.txt" | tail -1) |"
else
  row "| peak GPU memory | not sampled (no nvidia-smi) |"
fi

echo "== rows for BENCHMARKS.md ($OUT/rows.md)"
cat "$OUT/rows.md"
exit $FAILED
