# Helpers for the benchmark scripts: free ports, a private redis-server, a
# Detour server, and cleanup of exactly the processes started here.
set -euo pipefail

PIDS=()
descendants() {  # every descendant PID of $1
  local kid
  for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$kid"; descendants "$kid"; done
}
cleanup() {
  local all=()
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && all+=("$pid" $(descendants "$pid"))
  done
  for pid in "${all[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_redis: sets REDIS_PORT
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server did not start" >&2; exit 1
}

# start_detour MODELS_DIR: sets DETOUR_PORT and DETOUR_PID; with the Redis of
# start_redis when REDIS_PORT is set, else the embedded store; DETOUR_ARGS adds
# flags. WORKERS (default 1)
# is the server's thread count: Redis and the load generator share the two
# cores here, and for single calls a second server thread costs more in
# wake-ups than it adds, while batches lose 13-18% (BENCHMARKS.md, "Threads");
# WORKERS=0 is the default of one per core.
start_detour() {
  DETOUR_PORT=$(free_port)
  "${DETOUR_BIN:-./target/release/detour}" serve --listen "127.0.0.1:$DETOUR_PORT" \
    ${REDIS_PORT:+--redis "redis://127.0.0.1:$REDIS_PORT"} --models "$1" --namespace bench \
    --workers "${WORKERS:-1}" ${DETOUR_ARGS:-} \
    >"$WORK/detour.log" 2>&1 &
  DETOUR_PID=$!
  PIDS+=($DETOUR_PID)
  for _ in $(seq 200); do
    grep -q "serving" "$WORK/detour.log" 2>/dev/null && return
    sleep 0.05
  done
  echo "detour did not start:" >&2; cat "$WORK/detour.log" >&2; exit 1
}

# cpu_mark: remembers the machine's CPU counters (/proc/stat) now.
# cpu_report: prints the share of CPU time stolen by the hypervisor, and the
# share busy, since cpu_mark: a run with steal is a run on a disturbed machine.
cpu_mark() { read -r _ CPU_MARK < <(head -1 /proc/stat); }
cpu_report() {
  local now
  read -r _ now < <(head -1 /proc/stat)
  python3 - "$CPU_MARK" "$now" <<'PY'
import sys
a, b = ([int(x) for x in s.split()] for s in sys.argv[1:3])
d = [y - x for x, y in zip(a, b)]
total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
print(f"  cpu: {100 * d[7] / total:.1f}% stolen, {100 * (total - d[3] - d[4]) / total:.0f}% busy")
PY
}

# settle: waits (at most 5 s) until the machine is idle — under 15% busy over a
# quarter second — so that one cell does not run while the previous cell's
# server is still finishing its work.
settle() {
  python3 - <<'PY'
import time
def sample():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]
deadline = time.time() + 5
while time.time() < deadline:
    t0, i0 = sample(); time.sleep(0.25); t1, i1 = sample()
    if t1 > t0 and 1 - (i1 - i0) / (t1 - t0) < 0.15:
        break
PY
}
