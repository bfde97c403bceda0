#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (issue 12): loopback only, a free port, its unix
# socket inside DIR, password (SCRAM) authentication for a role it creates.
#
#   scripts/postgres-test-server.sh start DIR   # prints postgres://USER:PASS@127.0.0.1:PORT/postgres
#   scripts/postgres-test-server.sh stop DIR
#
# `start` creates the cluster on first use and is idempotent: a server already running in DIR is
# left running and its URL printed again; a stopped one starts again on its previous port when
# that is still free (the same URL, for fault tests that stop and restart the database). `stop`
# does nothing when nothing runs. fsync is off unless POSTGRES_FSYNC=on (benchmarks): the tests
# kill brokers, never the server's machine. Run as root, the
# server runs as the `postgres` user (initdb refuses root). PostgreSQL's binaries are looked up in
# POSTGRES_BIN, then the newest /usr/lib/postgresql/*/bin (Debian's `postgresql` package), then PATH.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
action=$1
dir=$2
[[ -n "$dir" ]] || usage

bin=${POSTGRES_BIN:-}
if [[ -z "$bin" ]]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [[ -z "$bin" ]]; then
    bin=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
fi
[[ -x "$bin/pg_ctl" ]] || {
    echo "$0: PostgreSQL's pg_ctl not found (install Debian's postgresql package or set POSTGRES_BIN)" >&2
    exit 1
}

# Runs a PostgreSQL binary as the owner of the cluster.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

data=$dir/data
url_file=$dir/url

running() {
    [[ -f "$data/PG_VERSION" ]] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$action" in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    data=$dir/data
    url_file=$dir/url
    if running && [[ -f "$url_file" ]]; then
        cat "$url_file"
        exit 0
    fi
    [[ $(id -u) -ne 0 ]] || chown postgres: "$dir"
    chmod 700 "$dir"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        user=broker_test
        password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
        printf '%s\n' "$password" >"$dir/password"
        [[ $(id -u) -ne 0 ]] || chown postgres: "$dir/password"
        chmod 600 "$dir/password"
        as_owner "$bin/initdb" -D "$data" -U "$user" --pwfile="$dir/password" --auth=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
        printf '%s\n' "$user" >"$dir/user"
    fi
    user=$(cat "$dir/user")
    password=$(cat "$dir/password")
    # A restart keeps the port while it is free, so that clients (replicas under a fault test)
    # reconnect to the same URL.
    port=$(cat "$dir/port" 2>/dev/null || true)
    # SO_REUSEADDR as PostgreSQL binds: the connections the stopped server closed leave the port
    # in TIME_WAIT, which does not keep the server from listening on it again.
    if [[ -z "$port" ]] || ! python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
        port=$(free_port)
    fi
    printf '%s\n' "$port" >"$dir/port"
    # Loopback only, the socket in DIR (not /var/run/postgresql, which may not exist), and enough
    # connections for several stores' pools in parallel tests.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir' -c max_connections=200 -c fsync=${POSTGRES_FSYNC:-off}" \
        start >/dev/null || {
        tail -n 20 "$dir/server.log" >&2
        exit 1
    }
    url="postgres://$user:$password@127.0.0.1:$port/postgres"
    printf '%s\n' "$url" >"$url_file"
    chmod 600 "$url_file"
    echo "$url"
    ;;
stop)
    [[ -d "$dir" ]] || exit 0
    if running; then
        as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    rm -f "$url_file"
    ;;
*)
    usage
    ;;
esac
