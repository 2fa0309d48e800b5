#!/usr/bin/env bash
# Outbound send benchmark (issue: outbound replies through the job queue). Rerunnable; prints
# the figures docs/benchmarks.md quotes. Needs PostgreSQL on 127.0.0.1:5432 (or SNORQ_BENCH_POSTGRES_URL).
#
#   bash benches/send.sh            # both backends
#   bash benches/send.sh sqlite     # one backend
#
# Per backend, with `snorq-tools bench-send` (the platform simulator's send API in-process, the real reply
# use case, queue and workers on a fresh database):
#   - 0 ms platform, 32 in flight: a 20,000-reply backlog drained (sends/s), then a steady
#     300 replies/s for 10 s (enqueue -> sent p50/p99);
#   - 50 ms platform: the same backlog at 32 and at 128 in flight (throughput follows the
#     configured concurrency), then a steady 300 replies/s at 128 in flight.
# On PostgreSQL, side by side in the same run: Snorq, graphile-worker and pg-boss (from npm,
# benches/peers) each drain a backlog of 5,000 sends, 32 at a time, unpaced, to a 0 ms platform
# (the simulator; in-process for Snorq, its own process for the peers), each on a fresh database.
#   bash benches/send.sh peers     # only that comparison
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${1:-"postgres sqlite"}
ADMIN_URL=${SNORQ_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_BASE=${ADMIN_URL%/*}
COUNT=${SNORQ_BENCH_COUNT:-20000}
BIN=target/release/snorq
TOOLS=target/release/snorq-tools
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --release -q -p snorq -p snorq-tools
export SNORQ_ENCRYPTION_KEYS=$($BIN keys generate)
export SNORQ_LOG=warn

fresh_database() {
  case "$1" in
    postgres)
      psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS snorq_bench_send WITH (FORCE)" -c "CREATE DATABASE snorq_bench_send"
      echo "$PG_BASE/snorq_bench_send" ;;
    sqlite)
      rm -rf "$WORK/sqlite" && mkdir -p "$WORK/sqlite"
      echo "sqlite://$WORK/sqlite/snorq.db" ;;
  esac
}

run() {
  local backend=$1; shift
  local url
  url=$(fresh_database "$backend")
  echo "-- $backend: $*"
  $TOOLS bench-send --data-dir "$WORK" --database-url "$url" "$@" 2>&1 | grep -E "^(backlog|steady|queued)"
}

peers() {
  local sim_port=${SNORQ_BENCH_PORT:-18190} url queue
  echo "=== side by side on PostgreSQL: 5,000 queued sends, 32 at a time, unpaced, 0 ms platform"
  (cd benches/peers && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  run postgres --messages 5000 --concurrency 32 --platform-latency-ms 0 --rate 0
  $TOOLS simulate --rate 0 --listen 127.0.0.1:$sim_port --target http://127.0.0.1:9 >"$WORK/simulator.log" 2>&1 &
  local sim_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$sim_port/_simulator/stats" >/dev/null 2>&1 && break
    sleep 0.1
  done
  for queue in graphile-worker pg-boss; do
    url=$(fresh_database postgres)
    node benches/peers/peers.mjs "$queue" "$url" "http://127.0.0.1:$sim_port" 5000 32
  done
  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
}

for backend in $BACKENDS; do
  if [ "$backend" = peers ]; then
    peers
    continue
  fi
  run "$backend" --messages "$COUNT" --concurrency 32 --platform-latency-ms 0 --rate 300 --seconds 10
  run "$backend" --messages "$COUNT" --concurrency 32 --platform-latency-ms 50 --rate 0
  run "$backend" --messages "$COUNT" --concurrency 128 --platform-latency-ms 50 --rate 300 --seconds 10
  if [ "$backend" = postgres ]; then
    peers
  fi
done
