#!/usr/bin/env bash
# A soak: mixed ingest, scoring (unary, batch, stream) and recommendations at a
# moderate, paced rate against a server backed by a private Redis, for MINUTES
# minutes (30 by default). Each minute it samples the server's resident memory
# and open file descriptors, Redis's memory and keys, and each load's p99 and
# errors, and prints one line. It fails (exit 1) if any RPC fails, or if the
# server's memory or descriptors, or Redis's memory, grow without bound: the
# mean of the last third of the samples may exceed the mean of the middle third
# by at most 10 % plus a small allowance (8 MB, 8 descriptors).
#
# Ingest cycles through a pool of 100,000 event and shipment ids (about six
# minutes of it), so after the first pass every event is a re-delivery and
# Redis must stop growing; before that it grows as ids are first seen, as it
# should. Usage: bench/soak.sh [minutes, default 30]
cd "$(dirname "$0")/.."
. bench/lib.sh
MINUTES=${1:-30}
[ "$MINUTES" -ge 3 ] || { echo "at least 3 minutes" >&2; exit 2; }
cargo build --release -q --bin detour --bin detour-load -p detour
WORK=$(mktemp -d)
start_redis
WORKERS=0 start_detour models
LOAD="./target/release/detour-load --target 127.0.0.1:$DETOUR_PORT --warmup 0 --json --requests 100000000"
# mode, rate per second (one worker), batch: about 400 calls and 1,900 events or items a second.
LOADS=(
  "ingest 3 100 --id-pool 100000 --id-offset OFFSET"
  "unary 300 1"
  "batch 20 50"
  "stream 10 20"
  "reroute 50 1"
  "reallocate 20 1"
)
sample() {
  local rss fds redis_mb keys
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$DETOUR_PID/status")
  fds=$(ls "/proc/$DETOUR_PID/fd" | wc -l)
  redis_mb=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {printf "%.1f", $2 / 1048576}')
  keys=$(redis-cli -p "$REDIS_PORT" dbsize)
  echo "$rss $fds $redis_mb $keys"
}
printf "%6s %8s %5s %9s %8s  %s\n" minute rss_mb fds redis_mb keys \
  "p99 ms: ingest unary batch stream reroute reallocate | errors"
SAMPLES="$WORK/samples"
: >"$SAMPLES"
failed=0
for minute in $(seq 1 "$MINUTES"); do
  pids=()
  for i in "${!LOADS[@]}"; do
    read -r mode rate batch extra <<<"${LOADS[$i]}"
    # Ingest continues the pool's cycle where the last minute left it.
    extra=${extra//OFFSET/$(((minute - 1) * 3 * 100 * 55))}
    $LOAD --mode "$mode" --concurrency 1 --rate "$rate" --batch "$batch" $extra \
      --duration 55 >"$WORK/load-$i.json" 2>"$WORK/load-$i.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  read -r rss fds redis_mb keys < <(sample)
  p99s="" errors=0
  for i in "${!LOADS[@]}"; do
    # A load that answered nothing (or did not run) counts as failed.
    read -r p99 errs < <(python3 -c 'import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print("nan 1"); print(sys.argv[1], "unreadable:", e, file=sys.stderr); sys.exit()
calls = r["requests"]
p99 = r["p99_us"] / 1000 if calls and r["p99_us"] is not None else float("nan")
print("%.2f %d" % (p99, r["errors"] + (0 if calls else 1)))
if r["errors"] or not calls:
    print(r["mode"], r["first_error"] or "no call answered", file=sys.stderr)' \
      "$WORK/load-$i.json" 2>>"$WORK/errors" || echo "nan 1")
    p99s="$p99s $p99"
    errors=$((errors + errs))
  done
  printf "%6d %8s %5s %9s %8s  %s | %d\n" "$minute" "$rss" "$fds" "$redis_mb" "$keys" "$p99s" "$errors"
  echo "$minute $rss $fds $redis_mb $errors" >>"$SAMPLES"
  [ "$errors" -eq 0 ] || failed=1
done
if [ -s "$WORK/errors" ]; then echo "errors:"; sort "$WORK/errors" | uniq -c | head; fi
for f in "$WORK"/load-*.err; do if [ -s "$f" ]; then echo "$f:"; head -5 "$f"; fi; done
python3 - "$SAMPLES" <<'PY' || failed=1
import sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
n = len(rows)
middle, last = rows[n // 3 : 2 * n // 3], rows[2 * n // 3 :]
ok = True
for column, name, allowance in [(1, "server RSS (MB)", 8), (2, "open descriptors", 8), (3, "Redis memory (MB)", 8)]:
    m = sum(r[column] for r in middle) / len(middle)
    l = sum(r[column] for r in last) / len(last)
    bounded = l <= m * 1.10 + allowance
    ok &= bounded
    print(f"{name}: middle third {m:.1f}, last third {l:.1f}: {'bounded' if bounded else 'GROWING'}")
sys.exit(0 if ok else 1)
PY
[ "$failed" -eq 0 ] && echo "soak passed" || { echo "soak FAILED"; exit 1; }
