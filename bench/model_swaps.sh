#!/usr/bin/env bash
# Model swaps under load: ScoreShipment at concurrency 16 against a server on a
# private Redis, first with no swaps, then while a freshly trained carrier
# model is deployed in shadow, made a 10 % canary, promoted, rolled back,
# cleared and unloaded, over and over (a cycle every few seconds), in one run.
# ROUNDS (default 2) alternates the two phases, so drift of the machine shows
# as spread between rounds; DURATION (default 15) seconds each.
#
# Prints a row per phase: requests/s, p50/p99/max latency, failed requests,
# and swap cycles completed; and the ratio of the p99s.
#
#   bench/model_swaps.sh
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
cargo build --release -q --bin detour --bin detour-load -p detour
cargo build --release -q --bin detour-train -p detour-training
WORK=$(mktemp -d)
LOADGEN=./target/release/detour-load
DETOUR=./target/release/detour
export DETOUR_ADMIN_TOKEN="bench-admin-token-$RANDOM$RANDOM"

# The repository the server starts from, and a candidate retrained on a
# fresh simulation (written beside the active version, not active).
cp -r models "$WORK/models"
./target/release/detour-train simulate --out "$WORK/sim" --days 21 --orders-per-day 1500 --seed 11 >/dev/null
./target/release/detour-train train --data "$WORK/sim" --out "$WORK/models" >/dev/null 2>&1
CANDIDATE=$(ls -d "$WORK"/models/carrier_failure/*/ | grep -v "$(python3 -c "import json;print(json.load(open('$WORK/models/carrier_failure/state.json'))['active'])")" | head -1)
VERSION=$(basename "$CANDIDATE")
ACTIVE=$(python3 -c "import json;print(json.load(open('$WORK/models/carrier_failure/state.json'))['active'])")

start_redis
start_detour "$WORK/models"
TARGET="127.0.0.1:$DETOUR_PORT"
admin() { $DETOUR admin --server "$TARGET" --as bench "$@" >>"$WORK/admin.log" 2>&1; }

# One cycle: deploy → shadow → canary → promote → rollback → clear → unload.
swaps() { # until-file
  local cycles=0
  while [ ! -e "$1" ]; do
    admin deploy "$CANDIDATE" --shadow --force || { echo "deploy failed" >&2; cat "$WORK/admin.log" >&2; return 1; }
    sleep 0.4; admin canary carrier_failure "$VERSION" 10
    sleep 0.4; admin promote carrier_failure "$VERSION"
    sleep 0.4; admin rollback carrier_failure
    sleep 0.4; admin shadow carrier_failure
    sleep 0.2; admin unload carrier_failure "$VERSION"
    sleep 0.2
    cycles=$((cycles + 1))
  done
  echo "$cycles" >"$1.cycles"
}

phase() { # label round
  local label=$1 round=$2 result cycles=0
  settle
  if [ "$label" = swaps ]; then
    rm -f "$WORK/stop" "$WORK/stop.cycles"
    swaps "$WORK/stop" &
    local swapper=$!
    result=$($LOADGEN --target "$TARGET" --mode unary --concurrency 16 \
      --duration "$DURATION" --warmup 1 --requests 100000000 --json)
    touch "$WORK/stop"
    wait "$swapper"
    cycles=$(cat "$WORK/stop.cycles")
  else
    result=$($LOADGEN --target "$TARGET" --mode unary --concurrency 16 \
      --duration "$DURATION" --warmup 1 --requests 100000000 --json)
  fi
  echo "$label $round $cycles $result" >>"$WORK/results"
  python3 - "$label" "$round" "$cycles" "$result" <<'PY'
import json, sys
label, rnd, cycles, r = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
print(f"| {label} | {rnd} | {r['requests_per_second']:,.0f} | {r['p50_us']/1000:.3f} | "
      f"{r['p99_us']/1000:.3f} | {r['max_us']/1000:.2f} | {r['errors']} | {cycles} |")
PY
}

echo "candidate $VERSION (retrained on a 21-day simulation) against the active $ACTIVE"
echo
echo "| phase | round | req/s | p50 ms | p99 ms | max ms | failed | swap cycles |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  phase steady "$round"
  phase swaps "$round"
done
python3 - "$WORK/results" <<'PY'
import json, sys
rows = [l.split(" ", 3) for l in open(sys.argv[1])]
p99 = {"steady": [], "swaps": []}
failed = 0
for label, _, _, r in rows:
    r = json.loads(r)
    p99[label].append(r["p99_us"])
    failed += r["errors"]
s, w = max(p99["steady"]), max(p99["swaps"])
print(f"\nworst p99 with swaps / worst p99 steady: {w/1000:.3f} / {s/1000:.3f} ms = {w/s:.2f}x; "
      f"failed requests in all phases: {failed}")
PY
grep -c '"' "$WORK/admin.log" >/dev/null 2>&1 || true
echo "admin actions: $(grep -c . "$WORK/admin.log") lines of CLI output; refusals: $(grep -ci '^error' "$WORK/admin.log" || true)"
