#!/usr/bin/env bash
# Inbox read benchmark (issue 6). Rerunnable; prints the figures docs/benchmarks.md quotes. Needs
# PostgreSQL on 127.0.0.1:5432 (or SNORQ_BENCH_POSTGRES_URL) for the postgres backend.
#
#   bash benches/inbox.sh                    # both backends
#   bash benches/inbox.sh sqlite             # one backend
#   bash benches/inbox.sh sqlite --reseed    # further options go to `snorq-tools bench-inbox`
#
# Per backend, with `snorq-tools bench-inbox` (the service served in-process on a local port):
#   - data: one organization with 100,000 conversations and 2,000,000 messages (~20 per
#     conversation, uneven; 10% unread, 15% closed; 5 labels, "vip" on 3%; "refund" in 0.5% of
#     messages, order numbers 4521NN in 0.05%), plus 3 organizations of 2,000 conversations;
#   - 50 concurrent keep-alive clients, 2 s warm-up then 15 s measured, per scenario:
#     list (first page, open), label (vip), unread, search (q=refund), search-rare (q=452117),
#     messages (first page of a random conversation's history); req/s, p50, p99, max.
#   - goals on a 2-core machine: p99 < 20 ms (PostgreSQL), < 50 ms (SQLite).
#
# The databases persist between runs (PostgreSQL database snorq_bench_inbox, SQLite file
# target/bench-inbox/snorq.db), so only the first run seeds: about 2-4 minutes per backend
# on 2 cores (printed as "seeded ... rows in ... s"). Pass --reseed to seed again.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="postgres sqlite"
if [[ $# -gt 0 && $1 != --* ]]; then
  BACKENDS=$1
  shift
fi
ADMIN_URL=${SNORQ_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_BASE=${ADMIN_URL%/*}
DIR=$PWD/target/bench-inbox
BIN=target/release/snorq
TOOLS=target/release/snorq-tools
mkdir -p "$DIR"

# SNORQ_BENCH_SKIP_BUILD=1 runs the binary already built.
[[ -n ${SNORQ_BENCH_SKIP_BUILD:-} ]] || cargo build --release -q -p snorq -p snorq-tools
# One key for every run: the seeded connections' tokens stay readable.
[[ -s $DIR/encryption.key ]] || $BIN keys generate >"$DIR/encryption.key"
SNORQ_ENCRYPTION_KEYS=$(cat "$DIR/encryption.key")
export SNORQ_ENCRYPTION_KEYS
export SNORQ_LOG=${SNORQ_LOG:-warn}

database_url() {
  case "$1" in
    postgres)
      if [[ -z $(psql -tAq "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = 'snorq_bench_inbox'") ]]; then
        psql -q "$ADMIN_URL" -c "CREATE DATABASE snorq_bench_inbox"
      fi
      echo "$PG_BASE/snorq_bench_inbox" ;;
    sqlite)
      echo "sqlite://$DIR/snorq.db" ;;
    *)
      echo "unknown backend $1 (postgres or sqlite)" >&2
      exit 2 ;;
  esac
}

status=0
for backend in $BACKENDS; do
  case "$backend" in
    postgres) goal=20 ;;
    *) goal=50 ;;
  esac
  url=$(database_url "$backend")
  echo "-- $backend"
  $TOOLS bench-inbox --data-dir "$DIR" --database-url "$url" --goal-p99-ms "$goal" "$@" || status=1
done
exit $status
