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

# start_detour MODELS_DIR: sets DETOUR_PORT and DETOUR_PID
start_detour() {
  DETOUR_PORT=$(free_port)
  ./target/release/detour serve --listen "127.0.0.1:$DETOUR_PORT" \
    --redis "redis://127.0.0.1:$REDIS_PORT" --models "$1" --namespace bench \
    >"$WORK/detour.log" 2>&1 &
  DETOUR_PID=$!
  PIDS+=($DETOUR_PID)
  for _ in $(seq 200); do
    grep -q "serving" "$WORK/detour.log" 2>/dev/null && return
    sleep 0.05
  done
  echo "detour did not start:" >&2; cat "$WORK/detour.log" >&2; exit 1
}
