#!/usr/bin/env bash
# Latency of RecommendReroute over 10 carriers and RecommendReallocation over 50
# sites, over gRPC, with features in a private Redis, the load generator on the
# same machine. Usage: bench/recommend.sh [seconds per run, default 10]
# After each run: the share of CPU time the hypervisor stole meanwhile (a
# disturbed run shows it) and the share busy.
cd "$(dirname "$0")/.."
. bench/lib.sh
SECONDS_PER_RUN=${1:-10}
cargo build --release -q --bin detour --bin detour-load -p detour
cargo build --release -q -p detour-training
WORK=$(mktemp -d)
mkdir -p "$WORK/models"
cp -r models/order_fallout models/site_congestion models/carrier_failure "$WORK/models/"
./target/release/detour-train network --sites 50 --carriers 10 --out "$WORK/models/network.toml"
start_redis
start_detour "$WORK/models"
LOAD="./target/release/detour-load --target 127.0.0.1:$DETOUR_PORT --network $WORK/models/network.toml"
# Some history first, so that the features are not all empty.
$LOAD --mode ingest --batch 200 --concurrency 2 --requests 200 --duration 60 --warmup 0
for c in 1 4; do
  for mode in reroute reallocate; do
    cpu_mark
    $LOAD --mode $mode --concurrency $c --duration "$SECONDS_PER_RUN"
    cpu_report
  done
done
