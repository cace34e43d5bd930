#!/usr/bin/env bash
# Builds every example plugin (or those of the languages given: python js c), installing the
# pinned toolchains on first use (see toolchains.sh). `cargo test` then checks each against the
# bundled Rust plugin it ports (tests/all/examples).
set -euo pipefail
cd "$(dirname "$0")"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(python js c)
for lang in "${langs[@]}"; do
  for script in "$lang"/*/build.sh; do
    echo "== $script"
    bash "$script"
  done
done
