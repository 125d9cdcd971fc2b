#!/usr/bin/env bash
# Load test: authenticated GET /v0/me against unauthenticated GET /healthz, on one server, in
# one run, with wrk at 64 connections. Targets 127.0.0.1 only; every wrk run is bounded
# (DURATION seconds). Usage:
#
#   scripts/load.sh [sqlite|postgres|both]     (default: both)
#
# Environment: DURATION (default 10), CONNECTIONS (64), THREADS (2),
# TESSERA_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Pass criteria (from the core issue): /v0/me throughput >= 70% of /healthz, and /v0/me p99 <= 10 ms.
set -euo pipefail
cd "$(dirname "$0")/.."

which_backends=${1:-both}
duration=${DURATION:-10}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
pg_admin_url=${TESSERA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk from Debian's packages" >&2
  (apt-get install -y wrk >/dev/null 2>&1) || (apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null)
fi

echo "building release binary" >&2
cargo build --release --locked -p tessera >&2
bin=$PWD/target/release/tessera

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Prints "requests_per_second p99_ms" for one wrk run.
measure() {
  local url=$1; shift
  local out
  out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" "$url")
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  local non2xx
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  if [ -n "$non2xx" ]; then
    echo "wrk saw $non2xx non-2xx responses for $url" >&2
    exit 1
  fi
  # wrk prints 1.23ms, 456.00us or 1.02s; normalise to ms.
  p99_ms=$(python3 -c "
import re,sys
v=sys.argv[1]; n=float(re.match(r'[0-9.]+', v).group()); u=v[len(re.match(r'[0-9.]+', v).group()):]
print(round(n*{'us':0.001,'ms':1,'s':1000}[u], 3))" "$p99")
  echo "$rps $p99_ms"
}

run_backend() {
  local backend=$1
  local args=(--data-dir "$work/$backend")
  local schema=
  if [ "$backend" = postgres ]; then
    schema="load_$(date +%s)_$$"
    psql "$pg_admin_url" -qc "create schema $schema" >/dev/null
    local sep='?'; [[ $pg_admin_url == *\?* ]] && sep='&'
    args+=(--database-url "${pg_admin_url}${sep}options=-c%20search_path%3D${schema}")
  fi
  local port; port=$(free_port)
  local owner_key
  owner_key=$("$bin" init --team "Load $backend" --admin-email load@example.test --json "${args[@]}" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])')
  # No rate limit or worker in the way: this measures the request path itself.
  "$bin" serve --listen "127.0.0.1:$port" --rate-limit-per-minute 1000000000 --embedded-worker false \
    "${args[@]}" >/dev/null 2>"$work/serve-$backend.log" &
  server_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local sa_key
  sa_key=$(TESSERA_URL="http://127.0.0.1:$port" TESSERA_API_KEY="$owner_key" \
    "$bin" service-accounts create "Load Bot" --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])')

  # Warm up both routes briefly, then measure each in turn.
  wrk -t1 -c8 -d2s "http://127.0.0.1:$port/healthz" >/dev/null
  wrk -t1 -c8 -d2s -H "Authorization: Bearer $sa_key" "http://127.0.0.1:$port/v0/me" >/dev/null
  read -r trivial_rps trivial_p99 < <(measure "http://127.0.0.1:$port/healthz")
  read -r auth_rps auth_p99 < <(measure "http://127.0.0.1:$port/v0/me" -H "Authorization: Bearer $sa_key")

  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  if [ -n "$schema" ]; then psql "$pg_admin_url" -qc "drop schema $schema cascade" >/dev/null 2>&1; fi

  python3 - "$backend" "$trivial_rps" "$trivial_p99" "$auth_rps" "$auth_p99" "$connections" "$duration" <<'PY'
import sys
backend, t_rps, t_p99, a_rps, a_p99, conns, dur = sys.argv[1:]
t_rps, t_p99, a_rps, a_p99 = map(float, (t_rps, t_p99, a_rps, a_p99))
ratio = a_rps / t_rps
ok = ratio >= 0.70 and a_p99 <= 10.0
print(f"{backend:9} GET /healthz {t_rps:10.0f} req/s  p99 {t_p99:6.2f} ms | "
      f"GET /v0/me {a_rps:10.0f} req/s  p99 {a_p99:6.2f} ms | ratio {ratio:5.1%} "
      f"({conns} connections, {dur}s each) {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 3)
PY
}

status=0
case "$which_backends" in
  sqlite|postgres) run_backend "$which_backends" || status=$? ;;
  both) run_backend sqlite || status=$?; run_backend postgres || status=$? ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
exit "$status"
