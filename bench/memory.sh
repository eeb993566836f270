#!/usr/bin/env bash
# Memory of the embedded store (no Redis): the server's resident set as unique
# shipment events arrive — each a new leg, so a new event id and a new entity,
# over the network's carriers and lanes — under each ceiling (memory_max_entries)
# of CEILINGS (default: 250000, the default, and 1000000); past its ceiling the
# curve must level off. Usage: bench/memory.sh [events, default 1500000]
# [step, default 100000]
cd "$(dirname "$0")/.."
. bench/lib.sh
EVENTS=${1:-1500000}
STEP=${2:-100000}
BATCH=1000
cargo build --release -q --bin detour --bin detour-load -p detour
WORK=$(mktemp -d)
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$DETOUR_PID/status"; }
for ceiling in ${CEILINGS:-250000 1000000}; do
  export DETOUR_MEMORY_MAX_ENTRIES=$ceiling
  start_detour models
  echo "memory_max_entries = $ceiling"
  printf "%10s %8s\n" events rss_mb
  printf "%10d %8s\n" 0 "$(rss_mb)"
  sent=0
  while [ "$sent" -lt "$EVENTS" ]; do
    ./target/release/detour-load --target "127.0.0.1:$DETOUR_PORT" --mode ingest \
      --batch $BATCH --concurrency 2 --requests $((STEP / BATCH)) --duration 600 \
      --warmup 0 --json >/dev/null
    sent=$((sent + STEP))
    printf "%10d %8s\n" "$sent" "$(rss_mb)"
  done
  echo "  eviction warnings logged: $(grep -c "at its ceiling" "$WORK/detour.log" || true)"
  kill "$DETOUR_PID"; wait "$DETOUR_PID" 2>/dev/null || true
done
