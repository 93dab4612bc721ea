#!/usr/bin/env bash
# The demo call: a gateway and three headless clients on loopback, each
# speaking a turn of ../shared/speech; prints who heard whom and the bytes on
# the wire, and leaves the recordings in demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export LOWBAND_DATA="${LOWBAND_DATA:-$(cd .. && pwd)/shared}"
cargo build --release --quiet --bin lowband-gateway --bin lowband --bin lowband-tools
exec target/release/lowband-tools demo --out "${1:-demo-out}"
