#!/usr/bin/env bash
# Webhook ingest benchmark (issue: durable webhook ingest). Rerunnable; prints the figures
# docs/benchmarks.md quotes. Needs PostgreSQL on 127.0.0.1:5432 (or SNORQ_BENCH_POSTGRES_URL) and pgbench.
#
#   bash benches/ingest.sh            # both backends
#   bash benches/ingest.sh postgres   # one backend
#
# Per backend: a flat-out run, a run at a fixed 1,000/s, a run with SIGKILL mid-load and a
# restart (the generator retries what got no 200, like a platform), each followed by a check
# that the database holds every acknowledged message exactly once; the server's peak resident
# memory; and on PostgreSQL, pgbench writing the same rows one transaction per webhook.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${1:-"postgres sqlite"}
ADMIN_URL=${SNORQ_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_BASE=${ADMIN_URL%/*}
PORT=${SNORQ_BENCH_PORT:-18090}
COUNT=${SNORQ_BENCH_COUNT:-30000}
SECRET=bench-secret
BIN=target/release/snorq
TOOLS=target/release/snorq-tools
WORK=$(mktemp -d)
SERVER_PID=
SIM_PID=
SIM_PORT=$((PORT + 1))

cargo build --release -q -p snorq -p snorq-tools
KEY=$($BIN keys generate)

cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  [ -n "${SNORQ_BENCH_KEEP_LOG:-}" ] && cp "$WORK/server.log" "$SNORQ_BENCH_KEEP_LOG"
  rm -rf "$WORK"
}
trap cleanup EXIT

# The platform simulator answers the proof that the benchmark's token reaches its number.
start_simulator() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  $TOOLS simulate --rate 0 --listen 127.0.0.1:$SIM_PORT --target "http://127.0.0.1:$PORT" \
    --whatsapp-phone-number-id "$1" --whatsapp-waba-id 100000000000002 >>"$WORK/simulator.log" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$SIM_PORT/_simulator/stats" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "simulator did not start"; cat "$WORK/simulator.log"; exit 1
}

start_server() {
  SNORQ_GRAPH_BASE_URL=http://127.0.0.1:$SIM_PORT \
  SNORQ_WHATSAPP_APP_SECRET=$SECRET SNORQ_ENCRYPTION_KEYS=$KEY SNORQ_LOG=warn \
    SNORQ_LOGIN_FAILURES_PER_PAIR=1000 SNORQ_SIGNUPS_PER_HOUR=100000 SNORQ_DATA_DIR="$WORK" DATABASE_URL="$1" \
    $BIN serve --listen 127.0.0.1:$PORT >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}

peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

load() { # url run-id extra-args...
  local url=$1 run=$2; shift 2
  $TOOLS bench-ingest --target "http://127.0.0.1:$PORT" --secret $SECRET --phone-number-id "$PHONE" \
    --run-id "$run" --check-database "$url" "$@"
}

for backend in $BACKENDS; do
  PHONE=$((100000000000000 + RANDOM))
  if [ "$backend" = postgres ]; then
    DB=snorq_bench_$$
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB" && psql "$ADMIN_URL" -qc "CREATE DATABASE $DB"
    URL=$PG_BASE/$DB
  else
    URL="sqlite://$WORK/bench.db"
  fi
  echo "=== $backend"
  start_simulator "$PHONE"
  start_server "$URL"
  $TOOLS bench-ingest --target "http://127.0.0.1:$PORT" --secret $SECRET --phone-number-id "$PHONE" --setup --count 200 --run-id warmup >/dev/null
  for inflight in 64 256; do
    echo "--- flat out: $COUNT webhooks, $inflight in flight, 5% duplicates"
    load "$URL" "flat$inflight" --count "$COUNT" --concurrency $inflight
  done
  echo "peak resident memory: $(peak_rss_mb) MB"
  echo "--- fixed rate: 1000 webhooks/s for 15 s"
  load "$URL" rate --count 15000 --concurrency 256 --rate 1000
  echo "--- SIGKILL mid-load, restart after 1 s"
  load "$URL" kill --count 12000 --concurrency 64 --rate 2000 > "$WORK/kill.out" 2>&1 &
  LOAD_PID=$!
  sleep 2.5
  kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  echo "server killed"
  sleep 1
  start_server "$URL"
  wait $LOAD_PID && cat "$WORK/kill.out" || { cat "$WORK/kill.out"; exit 1; }
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  if [ "$backend" = postgres ]; then
    ORG=$(psql "$URL" -Atc "SELECT organization_id FROM platform_connections WHERE platform_user_id = '$PHONE'")
    CONN=$(psql "$URL" -Atc "SELECT id FROM platform_connections WHERE platform_user_id = '$PHONE'")
    echo "--- pgbench: the same rows, one transaction per webhook (8 clients, 15 s)"
    pgbench -n -M prepared -c 8 -j 2 -T 15 -D org="$ORG" -D conn="$CONN" -f benches/pgbench_ingest.sql "$URL" \
      | grep -E 'tps|latency average'
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  fi
done
