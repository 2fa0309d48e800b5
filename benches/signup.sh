#!/usr/bin/env bash
# Signup burst benchmark (issue: trust): bursts of concurrent signups against a release build
# on SQLite; prints resident memory (cold, before, peak, settled) and /readyz latency during the
# bursts. Rerunnable:
#
#   bash benches/signup.sh                  # 3 bursts of 50
#   bash benches/signup.sh --bursts 5 --concurrency 100
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${SNORQ_BENCH_PORT:-18190}
BIN=target/release/snorq
TOOLS=target/release/snorq-tools
WORK=$(mktemp -d)
SERVER_PID=

[ -n "${SNORQ_BENCH_SKIP_BUILD:-}" ] || cargo build --release -q -p snorq -p snorq-tools
KEY=$($BIN keys generate)

cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

SNORQ_ENCRYPTION_KEYS=$KEY SNORQ_LOG=warn SNORQ_DATA_DIR="$WORK" DATABASE_URL="sqlite://$WORK/bench.db" \
  SNORQ_SIGNUPS_PER_HOUR=1000000 $BIN serve --listen 127.0.0.1:$PORT >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "=== $(nproc) cores; password hashing: default threads (one per core), queue 32"
$TOOLS bench-signup --target "http://127.0.0.1:$PORT" --pid "$SERVER_PID" "$@"
