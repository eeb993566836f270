#!/usr/bin/env bash
# The long fuzz run, outside CI: every target of detour-fuzz (request decoders
# and validation, ingest and the aggregate arithmetic, the trainer's CSV reader,
# the artifact loader) for CASES cases each — 2,500,000 by default, 10 million in
# all — each target bounded by SECONDS. Prints cases, rates, how the cases ended
# and the first failure, shrunk; exits 1 on a failure. CI runs a few thousand
# cases per target (fuzz/tests/smoke.rs).
# Usage: bench/fuzz.sh [cases per target, default 2500000] [seconds per target, default 1800] [seed, default 1]
cd "$(dirname "$0")/.."
set -euo pipefail
CASES=${1:-2500000}
SECONDS_PER_TARGET=${2:-1800}
SEED=${3:-1}
cargo build --release -q -p detour-fuzz
exec ./target/release/detour-fuzz --cases "$CASES" --seconds "$SECONDS_PER_TARGET" --seed "$SEED" --models models
