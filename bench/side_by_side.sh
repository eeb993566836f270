#!/usr/bin/env bash
# Detour and the MLServer peer, side by side, in one run on this machine: both
# driven by the same load generator (detour-load; it speaks the peer's V2
# inference protocol) with the same shape — 1 and 100 rows per request at
# concurrency 1, 8, 16 and 32 — plus the floors (a Redis PING round trip and an
# almost empty tonic call) at the same concurrency. Prints every figure, the
# ratios, Detour's start-up time and peak memory. Detour serves on WORKERS
# threads (default 1; see bench/lib.sh); the load generator runs on one thread
# (its default) for both servers. Before each cell the script waits for the
# machine to go idle (`settle`), so a cell never starts while the previous
# cell's server is still finishing its work.
#
#   bench/side_by_side.sh                 # 10 s per cell
#   DURATION=5 CONC="1 8" bench/side_by_side.sh
#
# The peer is set up from ../shared/peers/mlserver at run time (its setup.sh
# makes a virtualenv outside the repository); nothing of it is copied here.
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10}
CONC=${CONC:-"1 8 16 32"}
PEER_DIR=${PEER_DIR:-../shared/peers/mlserver}
PEER_WORKERS=${PEER_WORKERS:-1}
VENV=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/detour-peers/mlserver-venv}
[ -x "$VENV/bin/mlserver" ] || (cd "$PEER_DIR" && ./setup.sh)
cargo build --release -q --bin detour --bin detour-load -p detour
WORK=$(mktemp -d)
LOADGEN=./target/release/detour-load

# Detour, with Redis, the shipped models, timed to SERVING.
start_redis
began=$(date +%s%N)
start_detour models
until $LOADGEN --target "127.0.0.1:$DETOUR_PORT" --mode health --concurrency 1 \
      --requests 1 --duration 1 --warmup 0 --json 2>/dev/null | grep -q '"errors":0'; do sleep 0.01; done
startup_ms=$(( ($(date +%s%N) - began) / 1000000 ))
DETOUR="$LOADGEN --target 127.0.0.1:$DETOUR_PORT --json --duration $DURATION --warmup 1"
# Features to read: 20,000 shipment events.
$LOADGEN --target "127.0.0.1:$DETOUR_PORT" --mode ingest --batch 500 --concurrency 2 \
  --requests 40 --duration 60 --warmup 0 >/dev/null

# The peer: MLServer serving its gradient-boosted model over V2 gRPC.
mkdir -p "$WORK/repo/gbc" "$WORK/run"
cp "$PEER_DIR/model/model-settings.json" "$PEER_DIR/model/model.joblib" "$WORK/repo/gbc/"
PEER_PORT=$(free_port)
(
  cd "$WORK/run"
  export MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT=$(free_port) MLSERVER_GRPC_PORT=$PEER_PORT \
         MLSERVER_METRICS_PORT=$(free_port) MLSERVER_PARALLEL_WORKERS=$PEER_WORKERS \
         MLSERVER_DEBUG=false MLSERVER_METRICS_DIR="$WORK/run/.metrics" \
         MLSERVER_ENVIRONMENTS_DIR="$WORK/run/.envs"
  exec "$VENV/bin/mlserver" start "$WORK/repo"
) >"$WORK/peer.log" 2>&1 &
PEER_PID=$!
PIDS+=($PEER_PID)
PEER="$LOADGEN --target 127.0.0.1:$PEER_PORT --mode v2 --json --duration $DURATION --warmup 1"
for _ in $(seq 600); do
  $LOADGEN --target "127.0.0.1:$PEER_PORT" --mode v2 --batch 1 --concurrency 1 --requests 1 \
    --duration 1 --warmup 0 --json 2>/dev/null | grep -q '"errors":0' && break
  sleep 0.2
done

results="$WORK/results.jsonl"
cpu_mark
for c in $CONC; do
  echo "{\"server\":\"floor-redis\",\"rows\":1,\"concurrency\":$c,\"p50_ms\":$(redis-benchmark -p "$REDIS_PORT" -c "$c" -n 20000 -q PING 2>/dev/null | sed -n 's/.*p50=\([0-9.]*\) msec.*/\1/p')}" >>"$results"
  settle
  echo "{\"server\":\"floor-grpc\",\"rows\":1,$($LOADGEN --target "127.0.0.1:$DETOUR_PORT" --json --duration "$DURATION" --warmup 1 --mode health --concurrency "$c" | cut -c2-)" >>"$results"
  for rows in 1 100; do
    if [ "$rows" = 1 ]; then mode="--mode unary"; else mode="--mode batch --batch $rows"; fi
    settle
    echo "{\"server\":\"detour\",\"rows\":$rows,$($DETOUR $mode --concurrency "$c" | cut -c2-)" >>"$results"
    settle
    echo "{\"server\":\"mlserver\",\"rows\":$rows,$($PEER --batch "$rows" --concurrency "$c" | cut -c2-)" >>"$results"
  done
done
# Detour alone: streaming, and events applied to Redis per second.
settle
echo "{\"server\":\"detour-stream\",\"rows\":100,$($DETOUR --mode stream --batch 100 --concurrency 8 | cut -c2-)" >>"$results"
settle
echo "{\"server\":\"detour-stream500\",\"rows\":500,$($DETOUR --mode stream --batch 500 --concurrency 8 | cut -c2-)" >>"$results"
settle
echo "{\"server\":\"detour-batch500\",\"rows\":500,$($DETOUR --mode batch --batch 500 --concurrency 8 | cut -c2-)" >>"$results"
settle
echo "{\"server\":\"detour-ingest\",\"rows\":500,$($DETOUR --mode ingest --batch 500 --concurrency 4 | cut -c2-)" >>"$results"
# Redis round trips per scoring request, counted by Redis itself.
roundtrips() {  # MODE BATCH: Redis commands per request over 2,000 requests
  redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
  $LOADGEN --target "127.0.0.1:$DETOUR_PORT" --mode "$1" --batch "$2" --concurrency 4 \
    --requests 2000 --duration 60 --warmup 0 --json >/dev/null
  redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' |
    awk -F'[=,:]' '/^cmdstat_/ && $1 != "cmdstat_config" && $1 != "cmdstat_info" {n += $3} END {print n / 2000}'
}
echo "{\"server\":\"redis-roundtrips\",\"unary\":$(roundtrips unary 1),\"batch100\":$(roundtrips batch 100),\"stream100\":$(roundtrips stream 100)}" >>"$results"
peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$DETOUR_PID/status")
steal=$(cpu_report)

python3 - "$results" "$startup_ms" "$peak_kb" "$PEER_WORKERS" "$steal" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
startup, peak_kb, workers, steal = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].strip()
extra = {r["server"]: r for r in rows if r["server"].startswith(("detour-", "redis-"))}
rows = [r for r in rows if r["server"] not in extra]
cell = {(r["server"], r["rows"], r["concurrency"]): r for r in rows}
print(f"Detour: SERVING {startup} ms after launch (models loaded); peak RSS {peak_kb/1024:.0f} MB")
print(f"Peer: MLServer, parallel_workers={workers}")
print(f"Machine over the measured runs: {steal.removeprefix('cpu: ')}\n")
print("| rows/req | conc | server | req/s | rows/s | p50 ms | p90 ms | p99 ms | errors |")
print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for (server, n, c), r in sorted(cell.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
    if server == "floor-redis":
        print(f"| {n} | {c} | Redis PING (floor) | | | {r['p50_ms']} | | | |")
        continue
    name = {"floor-grpc": "tonic health (floor)"}.get(server, server)
    print(f"| {n} | {c} | {name} | {r['requests_per_second']:.0f} | {r['items_per_second']:.0f} | "
          f"{r['p50_us']/1000:.3f} | {r['p90_us']/1000:.3f} | {r['p99_us']/1000:.3f} | {r['errors']} |")
print("\n| rows/req | conc | Detour/peer rows/s | Detour p50 / gRPC floor p50 |")
print("|---:|---:|---:|---:|")
for (server, n, c), r in sorted(cell.items(), key=lambda kv: (kv[0][1], kv[0][2])):
    if server != "detour":
        continue
    peer = cell.get(("mlserver", n, c))
    floor = cell.get(("floor-grpc", 1, c))
    ratio = r["items_per_second"] / peer["items_per_second"] if peer and peer["items_per_second"] else float("nan")
    mult = r["p50_us"] / floor["p50_us"] if floor else float("nan")
    print(f"| {n} | {c} | {ratio:.1f}× | {mult:.1f}× |")
stream, ingest, trips = extra["detour-stream"], extra["detour-ingest"], extra["redis-roundtrips"]
print()
for name, label in [("detour-stream", "ScoreStream, 100 items per request slot"),
                    ("detour-stream500", "ScoreStream, 500 items per request slot"),
                    ("detour-batch500", "ScoreBatch, 500 items per request")]:
    r = extra[name]
    print(f"{label}, concurrency 8: {r['items_per_second']:.0f} scored/s "
          f"(p99 {r['p99_us']/1000:.1f} ms, {r['errors']} errors)")
print(f"IngestEvents, 500 events per call, concurrency 4: {ingest['items_per_second']:.0f} events/s applied "
      f"(p99 {ingest['p99_us']/1000:.1f} ms, {ingest['errors']} errors)")
print(f"Redis commands per request, counted by Redis (INFO commandstats over 2,000 requests): "
      f"ScoreShipment {trips['unary']:.2f}, ScoreBatch of 100 {trips['batch100']:.2f}, "
      f"ScoreStream of 100 {trips['stream100']:.2f} (per stream request slot)")
EOF
