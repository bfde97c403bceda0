#!/usr/bin/env bash
# Refresh grants and password logins per second, with p50 and p99, through 1, 2 and 3 broker
# replicas on one PostgreSQL beside a single broker on its embedded SQLite — all in one run, on
# this machine, with the same load generator (`broker-bench http`, requests round-robin over the
# replicas). A benchmark, not a test: it prints figures, it asserts nothing (BENCHMARKS.md).
#
#   scripts/bench-replicas.sh              # 10 s per figure, 16 clients
#   BENCH_SECONDS=30 BENCH_CLIENTS=32 scripts/bench-replicas.sh
#
# Release build. The PostgreSQL is a throwaway server (scripts/postgres-test-server.sh) with
# fsync on, so that an answered refresh is as durable as on SQLite. Every replica has its own
# empty data and keys directory; they share the database and the key-encryption key.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-16}

swift build -c release >/dev/null
broker=$root/.build/release/broker
bench=$root/.build/release/broker-bench

. scripts/bench-lib.sh bench-replicas
cleanup_more() { scripts/postgres-test-server.sh stop "$work/postgres" >/dev/null 2>&1 || true; }

openssl rand -base64 32 >"$work/kek"
head -c 24 /dev/urandom | base64 | tr -d '\n' >"$work/password"
chmod 600 "$work/kek" "$work/password"

admin=$(POSTGRES_FSYNC=on scripts/postgres-test-server.sh start "$work/postgres")
psql "$admin" -qc "CREATE DATABASE bench"
database_url=${admin%/postgres}/bench

# A broker's own directory and configuration. Production argon2id costs stay (logins measure
# them); the per-session refresh throttle is lifted, since each client rotates one chain flat out
# (the login throttle counts failures only: the benchmark makes none).
prepare() {
  local dir=$work/$1
  mkdir -p "$dir"
  cat >"$dir/broker.yaml" <<EOF
data_dir: "$dir/data"
keys_dir: "$dir/keys"
log_level: warning
refresh_throttle_window: 1
refresh_throttle_session: 10000
EOF
  echo "$dir"
}

# Runs a broker command for `dir`, on PostgreSQL when the second argument is `postgres`.
broker_in() {
  local dir=$1 engine=$2
  shift 2
  if [ "$engine" = postgres ]; then
    BROKER_CONFIG=$dir/broker.yaml BROKER_DATABASE_URL=$database_url BROKER_KEY_ENCRYPTION_KEY_FILE=$work/kek "$broker" "$@"
  else
    BROKER_CONFIG=$dir/broker.yaml "$broker" "$@"
  fi
}

# The same, replacing the calling (sub)shell: a function run in the background is a subshell of
# its own, and `$!` must be the broker itself for stop_started to stop it.
broker_exec() {
  local dir=$1 engine=$2
  shift 2
  if [ "$engine" = postgres ]; then
    BROKER_CONFIG=$dir/broker.yaml BROKER_DATABASE_URL=$database_url BROKER_KEY_ENCRYPTION_KEY_FILE=$work/kek exec "$broker" "$@"
  else
    BROKER_CONFIG=$dir/broker.yaml exec "$broker" "$@"
  fi
}

# One user per client: logins of distinct users measure argon2id and the store, not the login
# throttle's queue of one user's attempts in flight.
seed() {
  local dir=$1 engine=$2
  broker_in "$dir" "$engine" orgs add bench >/dev/null
  for index in $(seq 0 $((clients - 1))); do
    broker_in "$dir" "$engine" users add "bench$index" --password-stdin <"$work/password" >/dev/null
    broker_in "$dir" "$engine" members add bench "bench$index" >/dev/null
  done
}

# Starts `broker serve` for `dir` and sets `served` to its base URL once it listens (not in a
# command substitution: the server must be this shell's child, for stop_started).
serve() {
  local dir=$1 engine=$2
  broker_exec "$dir" "$engine" serve --port 0 >"$dir/stdout" 2>"$dir/stderr" &
  pids+=($!)
  for _ in $(seq 1 600); do
    if port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$dir/stdout" 2>/dev/null | grep -oE '[0-9]+$'); then
      served="http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "bench-replicas: broker in $dir did not start:" >&2
  cat "$dir/stderr" >&2
  exit 1
}

measure() {
  local label=$1
  shift
  local targets=()
  for url in "$@"; do targets+=(--target "$url"); done
  for mode in refresh login; do
    "$bench" http "${targets[@]}" --mode "$mode" --clients "$clients" --seconds "$seconds" \
      --user bench --distinct-users "$clients" --password-file "$work/password" --org bench --label "$label"
  done
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; $seconds s per figure, $clients clients; $(uname -r)"

sqlite_dir=$(prepare sqlite)
seed "$sqlite_dir" sqlite
serve "$sqlite_dir" sqlite
measure "sqlite-1" "$served"
stop_started

seed "$(prepare seed)" postgres
for count in 1 2 3; do
  urls=()
  for index in $(seq 1 "$count"); do
    serve "$(prepare "replica-$count-$index")" postgres
    urls+=("$served")
  done
  before=$(grep -c 'could not serialize access' "$work/postgres/server.log" || true)
  measure "postgres-$count" "${urls[@]}"
  after=$(grep -c 'could not serialize access' "$work/postgres/server.log" || true)
  # Transactions PostgreSQL aborted for a conflict with concurrent ones (SQLSTATE 40001), which
  # the store re-ran: what SERIALIZABLE costs under this load.
  echo "postgres-$count serialization-reruns=$((after - before))"
  stop_started
done
