#!/usr/bin/env bash
# What a Redis crash loses of the events Detour acknowledged, per persistence
# setting: ingest new shipment legs for a few seconds through a server backed by
# a private Redis, kill -9 Redis, start it again on the same data directory, and
# count the legs it still holds (one entity per acknowledged event).
# Usage: bench/durability.sh [seconds of ingest, default 5]
cd "$(dirname "$0")/.."
. bench/lib.sh
SECONDS_OF_INGEST=${1:-5}
cargo build --release -q --bin detour --bin detour-load -p detour
WORK=$(mktemp -d)

# redis_up DIR ARGS...: (re)starts the private Redis on REDIS_PORT in DIR.
redis_up() {
  local dir=$1; shift
  (cd "$dir" && exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 "$@" >/dev/null) &
  REDIS_PID=$!
  PIDS+=($REDIS_PID)
  for _ in $(seq 200); do
    # Up, and done loading its files.
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return
    sleep 0.05
  done
  echo "redis-server did not start" >&2; exit 1
}

held() {  # entities (ingested legs) the Redis holds
  redis-cli -p "$REDIS_PORT" --scan --pattern 'bench:entities:*' |
    while read -r key; do redis-cli -p "$REDIS_PORT" hlen "$key"; done |
    awk '{n += $1} END {print n + 0}'
}

printf "%-44s %12s %8s %6s\n" "redis settings" acknowledged held lost
for setting in "--appendonly yes --appendfsync always" \
               "--appendonly yes --appendfsync everysec" \
               "--appendonly no --save 60 1000" \
               "--appendonly no --save \"\""; do
  eval "args=($setting)"
  dir="$WORK/redis-$RANDOM"; mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  redis_up "$dir" "${args[@]}"
  start_detour models
  report=$(./target/release/detour-load --target "127.0.0.1:$DETOUR_PORT" --mode ingest \
    --batch 100 --concurrency 2 --duration "$SECONDS_OF_INGEST" --requests 1000000 \
    --warmup 0 --json)
  acknowledged=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["requests"] * r["batch"])' "$report")
  kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
  redis_up "$dir" "${args[@]}"
  now=$(held)
  printf "%-44s %12d %8d %6d\n" "$setting" "$acknowledged" "$now" $((acknowledged - now))
  kill "$DETOUR_PID" "$REDIS_PID"; wait "$DETOUR_PID" "$REDIS_PID" 2>/dev/null || true
done
