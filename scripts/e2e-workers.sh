#!/usr/bin/env bash
# End to end: RUNS runs (default 100) of the built-in backend on a local git repository,
# through 2 `tessera worker` processes on PostgreSQL. Checks that every run finishes, every
# branch is pushed, and no run is lost or done twice. Local only (127.0.0.1 and file:// git);
# bounded by TIMEOUT seconds (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-100}
timeout_s=${TIMEOUT:-300}
pg_admin_url=${TESSERA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

cargo build --release --locked -p tessera >&2
bin=$PWD/target/release/tessera
work=$(mktemp -d)
pids=()
schema="e2e_$$"
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$pg_admin_url" -qc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$pg_admin_url" -qc "create schema $schema" >/dev/null
sep='?'; [[ $pg_admin_url == *\?* ]] && sep='&'
db=(--database-url "${pg_admin_url}${sep}options=-c%20search_path%3D${schema}" --secret-file "$work/secret" --data-dir "$work/data")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
url="http://127.0.0.1:$port"

git init --quiet --bare "$work/origin.git"
git clone --quiet "$work/origin.git" "$work/seed" 2>/dev/null
echo "# e2e" > "$work/seed/README.md"
git -C "$work/seed" add README.md
git -C "$work/seed" -c user.name=e2e -c user.email=e2e@example.test commit --quiet -m init
git -C "$work/seed" push --quiet origin HEAD:main

owner=$("$bin" init --team E2E --admin-email e2e@example.test --json "${db[@]}" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])')
"$bin" serve --listen "127.0.0.1:$port" --embedded-worker false --rate-limit-per-minute 1000000 "${db[@]}" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
export TESSERA_URL=$url TESSERA_API_KEY=$owner
created=$("$bin" service-accounts create "E2E Bot" --json 2>/dev/null)
sa_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["serviceAccount"]["id"])' <<<"$created")
sa_key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])' <<<"$created")
worker_key=$("$bin" service-accounts keys add "$sa_id" --worker --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])')
"$bin" integrations add-git --scope team --name E2E --repo "https://github.com/acme/e2e=file://$work/origin.git" >/dev/null

for n in 1 2; do
  TESSERA_API_KEY=$worker_key "$bin" worker "${db[@]}" --work-dir "$work/work-$n" 2>"$work/worker-$n.log" &
  pids+=($!)
done

started=$(date +%s.%N)
ids=()
for i in $(seq 1 "$runs"); do
  body=$(printf '{"prompt":{"text":"Run %d\\n@write run-%d.txt\\nrun %d\\n@end\\nWrote run-%d.txt"},"source":{"repository":"https://github.com/acme/e2e","ref":"main"}}' "$i" "$i" "$i" "$i")
  ids+=("$(curl -sf -u "$sa_key:" -H 'Content-Type: application/json' -d "$body" "$url/v0/agents" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
done
launched=$(date +%s.%N)

deadline=$(( $(date +%s) + timeout_s ))
while :; do
  pending=$(psql "$pg_admin_url" -tAc "select count(*) from $schema.runs where status in ('CREATING', 'RUNNING')")
  [ "$pending" = 0 ] && break
  [ "$(date +%s)" -gt "$deadline" ] && { echo "timed out with $pending runs pending" >&2; exit 1; }
  sleep 0.2
done
finished=$(date +%s.%N)

by_status=$(psql "$pg_admin_url" -tAc "select status || '=' || count(*) from $schema.runs group by status order by status" | tr '\n' ' ')
retried=$(psql "$pg_admin_url" -tAc "select count(*) from $schema.runs where attempts <> 1")
branches=$(git --git-dir "$work/origin.git" for-each-ref refs/heads/tessera --format='%(refname)' | wc -l)
run_trailers=$(for ref in $(git --git-dir "$work/origin.git" for-each-ref refs/heads/tessera --format='%(refname)'); do
  git --git-dir "$work/origin.git" log -1 --format=%B "$ref" | grep '^Tessera-Run:'; done | sort -u | wc -l)
files_ok=0
for ref in $(git --git-dir "$work/origin.git" for-each-ref refs/heads/tessera --format='%(refname:short)'); do
  n=$(git --git-dir "$work/origin.git" ls-tree --name-only "$ref" | grep -c '^run-.*\.txt$' || true)
  [ "$n" = 1 ] && files_ok=$((files_ok + 1))
done
per_worker=$(for n in 1 2; do printf 'worker-%d=%d ' "$n" "$(grep -c 'ended FINISHED' "$work/worker-$n.log" || true)"; done)
python3 - "$runs" "$started" "$launched" "$finished" <<PY
import sys
runs, started, launched, finished = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"{runs} runs: launched in {launched - started:.1f}s, all ended {finished - started:.1f}s after the first launch "
      f"({runs / (finished - started):.1f} runs/s)")
PY
echo "statuses: $by_status| runs claimed more than once: $retried | branches pushed: $branches | distinct Tessera-Run trailers: $run_trailers | branches with exactly their file: $files_ok | $per_worker"
[ "$by_status" = "FINISHED=$runs " ] && [ "$retried" = 0 ] && [ "$branches" = "$runs" ] && [ "$run_trailers" = "$runs" ] && [ "$files_ok" = "$runs" ]
echo PASS
