#!/usr/bin/env bash
# Webhook ingest benchmark (issue: durable webhook ingest). Rerunnable; prints the figures
# docs/benchmarks.md quotes. Needs PostgreSQL on 127.0.0.1:5432 (or SNORQ_BENCH_POSTGRES_URL) and pgbench.
#
#   bash benches/ingest.sh            # both backends
#   bash benches/ingest.sh postgres   # one backend
#
# Per backend, all for ONE organization over 5,000 conversations: flat-out runs at 32 and 256
# in flight; a run at a fixed 1,000/s while a second server process on the same database serves
# the live events (latency from each webhook's 200 to the client); a run with SIGKILL mid-load
# and a restart (the generator retries what got no 200, like a platform); each followed by a
# check that the database holds every acknowledged message exactly once; the server's peak
# resident memory. On PostgreSQL also: the backlog run (1,000/s offered for 60 s with 1,024
# connections, SIGKILL at 15 s, restart 1 s later; deadlocks counted, recovery timed) and pgbench
# writing the same rows one transaction per webhook (16 clients), with Snorq's ratio to it.
set -euo pipefail
# The backlog run holds 1,024 connections open on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
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
READER_PID=
SIM_PID=
SIM_PORT=$((PORT + 1))
READER_PORT=$((PORT + 2))

cargo build --release -q -p snorq -p snorq-tools
KEY=$($BIN keys generate)

cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
  [ -n "$READER_PID" ] && kill -9 "$READER_PID" 2>/dev/null || true
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

run_server() { # url port extra-args...
  local url=$1 port=$2; shift 2
  SNORQ_GRAPH_BASE_URL=http://127.0.0.1:$SIM_PORT \
  SNORQ_WHATSAPP_APP_SECRET=$SECRET SNORQ_ENCRYPTION_KEYS=$KEY SNORQ_LOG=warn \
    SNORQ_LOGIN_FAILURES_PER_PAIR=1000 SNORQ_SIGNUPS_PER_HOUR=100000 SNORQ_DATA_DIR="$WORK" DATABASE_URL="$url" \
    $BIN serve --listen 127.0.0.1:$port "$@" >>"$WORK/server.log" 2>&1 &
}

wait_ready() { # port
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}

start_server() {
  run_server "$1" $PORT
  SERVER_PID=$!
  wait_ready $PORT
}

# A second process on the same database that only serves API calls (live events here).
start_reader() {
  run_server "$1" $READER_PORT --no-workers
  READER_PID=$!
  wait_ready $READER_PORT
}

deadlocks() { psql "$1" -Atc "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"; }

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
  for inflight in 32 256; do
    echo "--- flat out: $COUNT webhooks, $inflight in flight, 5% duplicates"
    load "$URL" "flat$inflight" --count "$COUNT" --concurrency $inflight | tee "$WORK/flat$inflight.out"
  done
  echo "peak resident memory: $(peak_rss_mb) MB"
  echo "--- fixed rate: 1000 webhooks/s for 15 s, live events followed on a second process"
  start_reader "$URL"
  LIVE_PHONE=$((PHONE + 1))
  start_simulator "$LIVE_PHONE"
  $TOOLS bench-ingest --target "http://127.0.0.1:$PORT" --secret $SECRET --phone-number-id "$LIVE_PHONE" \
    --setup --live-from "http://127.0.0.1:$READER_PORT" --run-id rate --check-database "$URL" \
    --count 15000 --concurrency 256 --rate 1000 --duplicates 0
  kill "$READER_PID"; wait "$READER_PID" 2>/dev/null || true
  READER_PID=
  echo "--- SIGKILL mid-load, restart after 1 s"
  load "$URL" kill --count 12000 --concurrency 64 --rate 2000 > "$WORK/kill.out" 2>&1 &
  LOAD_PID=$!
  sleep 2.5
  kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  echo "server killed"
  sleep 1
  start_server "$URL"
  wait $LOAD_PID && cat "$WORK/kill.out" || { cat "$WORK/kill.out"; exit 1; }
  if [ "$backend" = postgres ]; then
    echo "--- backlog: 1000 webhooks/s offered for 60 s, 1024 connections, SIGKILL at 15 s, restart 1 s later"
    BEFORE=$(deadlocks "$URL")
    load "$URL" backlog --count 60000 --concurrency 1024 --rate 1000 --duplicates 0 --timeline > "$WORK/backlog.out" 2>&1 &
    LOAD_PID=$!
    sleep 15
    kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    echo "server killed"
    sleep 1
    start_server "$URL"
    wait $LOAD_PID && cat "$WORK/backlog.out" || { cat "$WORK/backlog.out"; exit 1; }
    echo "deadlocks detected during the backlog run: $(( $(deadlocks "$URL") - BEFORE ))"
  fi
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  if [ "$backend" = postgres ]; then
    ORG=$(psql "$URL" -Atc "SELECT organization_id FROM platform_connections WHERE platform_user_id = '$PHONE'")
    CONN=$(psql "$URL" -Atc "SELECT id FROM platform_connections WHERE platform_user_id = '$PHONE'")
    echo "--- pgbench: the same rows, one transaction per webhook (16 clients, 15 s)"
    pgbench -n -M prepared -c 16 -j 2 -T 15 -D org="$ORG" -D conn="$CONN" -f benches/pgbench_ingest.sql "$URL" \
      | tee "$WORK/pgbench.out" | grep -E 'tps|latency average'
    TPS=$(awk '/^tps/ {print $3; exit}' "$WORK/pgbench.out")
    for inflight in 32 256; do
      RATE=$(awk '/^throughput/ {print $2; exit}' "$WORK/flat$inflight.out")
      echo "snorq at $inflight in flight: $RATE webhooks/s = $(awk -v a="$RATE" -v b="$TPS" 'BEGIN {printf "%.2f", a / b}')x pgbench's one-transaction-per-webhook $TPS tps"
    done
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  fi
done
