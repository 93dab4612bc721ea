#!/usr/bin/env bash
# Every test: unit, wire fuzzing, and real calls over loopback QUIC.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export LOWBAND_DATA="${LOWBAND_DATA:-$(cd .. && pwd)/shared}"
[ -d "$LOWBAND_DATA/speech" ] || { echo "test material not found at $LOWBAND_DATA (set LOWBAND_DATA)" >&2; exit 1; }
cargo build --workspace --all-targets --quiet
# Real-time call tests are paced by the wall clock: two at a time fit 2 cores.
cargo test --workspace --quiet -- --test-threads=2
