#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), growing the committed corpora in
# fuzz/corpus/. cargo-fuzz passes nightly-only sanitizer flags; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take them. A crash leaves its input in fuzz/artifacts/ and fails.
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
for t in addr payload cli dns capture framing; do
  mkdir -p "corpus/$t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=256 2>&1 \
    | grep -E "^Done|ERROR|SUMMARY|panicked" || true
  if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
    echo "fuzz target $t crashed; reproducers in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
