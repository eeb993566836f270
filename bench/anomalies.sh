#!/usr/bin/env bash
# What anomaly detection costs and how fast its alerts travel, on a private
# Redis (the production store), ROUNDS rounds (default 2) so drift shows as
# spread between rounds:
#   1. IngestEvents throughput (500 finished legs per call, c=4) with the
#      detectors on and off (anomalies = false), side by side;
#   2. alert latency: from the answer of the ingest call that opens an alert
#      to the alert's arrival on a WatchAnomalies stream — on the same
#      replica, and on a second replica sharing the Redis (through the
#      Redis Stream);
#   3. ScoreShipment at c=16 with 0 and with WATCHERS (default 1000) idle
#      subscribers held open.
# DURATION seconds per cell (default 10); ALERT_ROUNDS alert rounds (200).
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
WATCHERS=${WATCHERS:-1000}
ALERT_ROUNDS=${ALERT_ROUNDS:-200}
cargo build --release -q --bin detour --bin detour-load -p detour
WORK=$(mktemp -d)
LOADGEN=./target/release/detour-load

fresh() { # a new Redis and one server on it
  start_redis
  REDIS_PID=${PIDS[-1]}
  start_detour models
  settle
}
stop() {
  kill "$DETOUR_PID" "$REDIS_PID" ${SECOND_PID:-} 2>/dev/null || true
  wait "$DETOUR_PID" "$REDIS_PID" ${SECOND_PID:-} 2>/dev/null || true
  SECOND_PID=
}
row() { # label json
  python3 - "$1" "$2" <<'PY'
import json, sys
label, r = sys.argv[1], json.loads(sys.argv[2])
print(f"| {label} | {r['requests_per_second']:,.0f} | {r['items_per_second']:,.0f} | "
      f"{r['p50_us']/1000:.3f} | {r['p99_us']/1000:.3f} | {r['max_us']/1000:.3f} | {r['errors']} |")
PY
}

echo "| cell | calls/s | items/s | p50 ms | p99 ms | max ms | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  for setting in true false; do
    export DETOUR_ANOMALIES=$setting
    fresh
    row "ingest, detectors $([ "$setting" = true ] && echo on || echo off), round $round" \
      "$($LOADGEN --target "127.0.0.1:$DETOUR_PORT" --mode ingest --batch 500 --concurrency 4 \
        --duration "$DURATION" --warmup 1 --json)"
    stop
  done
  unset DETOUR_ANOMALIES
  fresh
  row "alert latency, same replica, round $round" \
    "$($LOADGEN --target "127.0.0.1:$DETOUR_PORT" --mode alerts --requests "$ALERT_ROUNDS" \
      --duration 60 --json)"
  FIRST_PORT=$DETOUR_PORT
  FIRST_PID=$DETOUR_PID
  start_detour models
  SECOND_PID=$DETOUR_PID
  SECOND_PORT=$DETOUR_PORT
  DETOUR_PID=$FIRST_PID
  settle
  row "alert latency, other replica, round $round" \
    "$($LOADGEN --target "127.0.0.1:$FIRST_PORT" --watch-target "127.0.0.1:$SECOND_PORT" \
      --mode alerts --requests "$ALERT_ROUNDS" --duration 60 --json)"
  stop
  for watchers in 0 "$WATCHERS"; do
    fresh
    row "ScoreShipment c=16, $watchers subscribers, round $round" \
      "$($LOADGEN --target "127.0.0.1:$DETOUR_PORT" --mode unary --concurrency 16 \
        --watchers "$watchers" --duration "$DURATION" --warmup 1 --json)"
    stop
  done
done
