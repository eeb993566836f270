#!/usr/bin/env bash
# Ingest throughput and ScoreShipment latency of two builds, side by side in
# one run: the `detour` binary at OLD_BIN with its models at OLD_MODELS, and
# this checkout's release build with `models/`, each on a fresh private Redis.
# The two alternate for ROUNDS rounds (default 2), so drift of the machine
# shows as spread between rounds rather than as a difference between builds.
# Each cell: ingest of 500 shipment events per call at c=4, then ScoreShipment
# at c=1 and c=16, DURATION seconds each (default 10).
#
#   bench/before_after.sh /tmp/old/detour /tmp/old/models
cd "$(dirname "$0")/.."
. bench/lib.sh
OLD_BIN=${1:?usage: bench/before_after.sh OLD_BIN OLD_MODELS}
OLD_MODELS=${2:?usage: bench/before_after.sh OLD_BIN OLD_MODELS}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
cargo build --release -q --bin detour --bin detour-load -p detour
WORK=$(mktemp -d)
LOADGEN=./target/release/detour-load

cell() { # build-label binary models round
  local label=$1 bin=$2 models=$3 round=$4
  start_redis
  local redis_pid=${PIDS[-1]}
  DETOUR_BIN=$bin start_detour "$models"
  local target="127.0.0.1:$DETOUR_PORT"
  settle
  local ingest unary1 unary16
  ingest=$($LOADGEN --target "$target" --mode ingest --batch 500 --concurrency 4 \
    --duration "$DURATION" --warmup 1 --json)
  unary1=$($LOADGEN --target "$target" --mode unary --concurrency 1 \
    --duration "$DURATION" --warmup 1 --json)
  unary16=$($LOADGEN --target "$target" --mode unary --concurrency 16 \
    --duration "$DURATION" --warmup 1 --json)
  python3 - "$label" "$round" "$ingest" "$unary1" "$unary16" <<'PY'
import json, sys
label, rnd, ingest, u1, u16 = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
print(f"| {label} | {rnd} | {ingest['items_per_second']:,.0f} | {ingest['p99_us']/1000:.2f} "
      f"| {u1['requests_per_second']:,.0f} | {u1['p99_us']/1000:.3f} "
      f"| {u16['requests_per_second']:,.0f} | {u16['p99_us']/1000:.3f} "
      f"| {ingest['errors'] + u1['errors'] + u16['errors']} |")
PY
  kill "$DETOUR_PID" "$redis_pid" 2>/dev/null || true
  wait "$DETOUR_PID" "$redis_pid" 2>/dev/null || true
}

echo "| build | round | ingest events/s | ingest p99 ms | ScoreShipment c=1 req/s | p99 ms | ScoreShipment c=16 req/s | p99 ms | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  cell before "$OLD_BIN" "$OLD_MODELS" "$round"
  cell after ./target/release/detour models "$round"
done
