#!/usr/bin/env bash
# The benchmark, from a clean clone: builds dgram (release, and a static build for the
# start-up case where the target allows), the C reference programs, installs the peers
# (nc, socat, ncat) when root on Debian, runs every case and saves the table under
# bench/results/. All traffic on 127.0.0.1; every process is bounded and killed by PID.
#   bench/run.sh [--quick] [--no-install] [--cases listen,send,lines,startup,echo,idle]
set -euo pipefail
cd "$(dirname "$0")/.."
install=1
args=()
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    --quick) args+=(--count 100000 --runs 15) ;;
    *) args+=("$a") ;;
  esac
done

if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  command -v nc.openbsd >/dev/null 2>&1 || need+=(netcat-openbsd)
  command -v socat >/dev/null 2>&1 || need+=(socat)
  command -v ncat >/dev/null 2>&1 || need+=(ncat)
  if [ ${#need[@]} -gt 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } \
      || echo "note: could not install ${need[*]}; their rows are skipped"
  fi
fi

cargo build --release --quiet
cargo build --release --quiet --example framing_speed
dgram="$PWD/target/release/dgram"
static=()
host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$host" = x86_64-unknown-linux-gnu ]; then
  # crt-static needs an explicit --target (proc macros cannot be built with it).
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --target "$host" \
    && static=(--dgram-static "$PWD/target/$host/release/dgram")
fi

ref="$PWD/target/bench-ref"
mkdir -p "$ref" bench/results
for p in flood sink count oneshot startup echo rtt rtts relay; do
  cc -O2 -Wall -o "$ref/$p" "bench/ref/$p.c"
done
# The start-up reference in Rust, with dgram's release profile.
rustc --edition 2021 -C opt-level=3 -C lto -C codegen-units=1 -C panic=abort -C strip=symbols \
  -o "$ref/oneshot-rust" bench/ref/oneshot.rs

out="bench/results/$(date +%Y-%m-%d).txt"
python3 bench/bench.py --ref "$ref" --dgram "$dgram" --framing "$PWD/target/release/examples/framing_speed" "${static[@]}" "${args[@]}" | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "saved: $out"
