#!/usr/bin/env bash
# Load figures for the Agents API, against 127.0.0.1 only, each wrk run bounded by DURATION:
# - launch throughput: POST /v0/agents (runs stay queued: no worker), against GET /healthz;
# - GET /v0/agents/{id} latency (p99) with 100,000 agents stored, against GET /healthz.
# Usage: scripts/agents-load.sh [sqlite|postgres|both]   (default both)
# Environment: DURATION (10), CONNECTIONS (64), THREADS (2), AGENTS (100000),
# TESSERA_TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

which_backends=${1:-both}
duration=${DURATION:-10}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
n_agents=${AGENTS:-100000}
pg_admin_url=${TESSERA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

command -v wrk >/dev/null 2>&1 || { (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null 2>&1; }
command -v sqlite3 >/dev/null 2>&1 || { (apt-get install -y sqlite3 || (apt-get update && apt-get install -y sqlite3)) >/dev/null 2>&1; }
cargo build --release --locked -p tessera >&2
bin=$PWD/target/release/tessera
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# "req/s p99_ms" of one wrk run.
measure() {
  local out; out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses: $out" >&2; exit 1; fi
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
value, unit = re.search(r"\s99%\s+([0-9.]+)(us|ms|s)", out).groups()
print(rps, round(float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 3))
PY
}

run_backend() {
  local backend=$1
  local args=(--data-dir "$work/$backend") schema= sql
  if [ "$backend" = postgres ]; then
    schema="agents_load_$$"
    psql "$pg_admin_url" -qc "create schema $schema" >/dev/null
    local sep='?'; [[ $pg_admin_url == *\?* ]] && sep='&'
    args+=(--database-url "${pg_admin_url}${sep}options=-c%20search_path%3D${schema}")
  fi
  local port; port=$(free_port)
  local owner_key
  owner_key=$("$bin" init --team "Load" --admin-email load@example.test --json "${args[@]}" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])')
  "$bin" serve --listen "127.0.0.1:$port" --rate-limit-per-minute 1000000000 --embedded-worker false \
    "${args[@]}" >/dev/null 2>"$work/serve-$backend.log" &
  server_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  TESSERA_URL="http://127.0.0.1:$port" TESSERA_API_KEY="$owner_key" "$bin" integrations add-git --scope team \
    --name Load --repo https://github.com/acme/widgets >/dev/null

  cat > "$work/launch.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"prompt":{"text":"hello"},"source":{"repository":"https://github.com/acme/widgets"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $owner_key"
LUA
  wrk -t1 -c8 -d2s "http://127.0.0.1:$port/healthz" >/dev/null
  read -r trivial_rps trivial_p99 < <(measure "http://127.0.0.1:$port/healthz")
  read -r launch_rps launch_p99 < <(measure -s "$work/launch.lua" "http://127.0.0.1:$port/v0/agents")

  # Store N_AGENTS more agents (with a finished run each) in one bulk insert, then read one.
  local team_id user_id
  team_id=$(curl -sf -H "Authorization: Bearer $owner_key" "http://127.0.0.1:$port/v1/team" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  user_id=$(curl -sf -H "Authorization: Bearer $owner_key" "http://127.0.0.1:$port/v1/users" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["users"][0]["id"])')
  local agent_id run_id series
  if [ "$backend" = postgres ]; then
    agent_id="'bc-' || lpad(to_hex(n), 8, '0') || '-0000-4000-8000-000000000000'"
    run_id="'run-' || lpad(to_hex(n), 8, '0') || '-0000-4000-8000-000000000000'"
    series="generate_series(1, $n_agents) as s(n)"
  else
    agent_id="'bc-' || printf('%08x', n) || '-0000-4000-8000-000000000000'"
    run_id="'run-' || printf('%08x', n) || '-0000-4000-8000-000000000000'"
    series="gs"
  fi
  local recursive=""
  [ "$backend" = sqlite ] && recursive="with recursive gs(n) as (select 1 union all select n + 1 from gs where n < $n_agents)"
  sql="$recursive insert into agents (id, team_id, name, principal_type, principal_id, api_key_id, integration_id,
      repository_url, clone_url, branch_name, model, auto_create_pr, created_at, updated_at)
    select $agent_id, '$team_id', 'bulk', 'user', '$user_id', 'key_bulk', 'int_bulk',
      'https://github.com/acme/widgets', 'x', 'b', 'tessera-scripted', 0, n, n from $series;
    $recursive insert into runs (id, agent_id, team_id, prompt, status, principal_type, principal_id, api_key_id,
      attempts, input_tokens, output_tokens, created_at, updated_at)
    select $run_id, $agent_id, '$team_id', 'p', 'FINISHED', 'user', '$user_id', 'key_bulk', 1, 0, 0, n, n from $series;"
  if [ "$backend" = postgres ]; then
    psql "$pg_admin_url" -q -c "set search_path to $schema; $sql" >/dev/null
  else
    sqlite3 "$work/$backend/tessera.db" "pragma busy_timeout=10000; $sql" >/dev/null
  fi
  local probe="bc-$(printf '%08x' $((n_agents / 2)))-0000-4000-8000-000000000000"
  local stored
  stored=$(curl -sf -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $owner_key" "http://127.0.0.1:$port/v0/agents/$probe")
  [ "$stored" = 200 ] || { echo "bulk agents not readable ($stored)" >&2; exit 1; }
  read -r get_rps get_p99 < <(measure -H "Authorization: Bearer $owner_key" "http://127.0.0.1:$port/v0/agents/$probe")

  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  [ -n "$schema" ] && psql "$pg_admin_url" -qc "drop schema $schema cascade" >/dev/null 2>&1
  printf '%-9s GET /healthz %8.0f req/s p99 %6.2f ms | POST /v0/agents %8.0f req/s (%5.1f%%) p99 %6.2f ms | GET /v0/agents/{id} with %d agents %8.0f req/s p99 %6.2f ms\n' \
    "$backend" "$trivial_rps" "$trivial_p99" "$launch_rps" "$(python3 -c "print($launch_rps / $trivial_rps * 100)")" "$launch_p99" \
    "$n_agents" "$get_rps" "$get_p99"
}

case "$which_backends" in
  sqlite|postgres) run_backend "$which_backends" ;;
  both) run_backend sqlite; run_backend postgres ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
