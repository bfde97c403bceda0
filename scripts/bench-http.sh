#!/usr/bin/env bash
# Requests per second on HTTP paths of the broker and of `broker gateway`, each beside the same
# wrk run against nginx serving a static 200, measured right after it (the ceiling of one HTTP
# hop on this machine). One line per figure, with that reference and the ratio. Loopback only;
# release build.
#
#   scripts/bench-http.sh [seconds] [connections]        # defaults: 10 s, 32 connections, wrk -t1
#   ALGS="RS256 ES256"                                   # the broker's signing_alg, one run each
#   PATHS="forward-auth-hit forward-auth-miss"           # which paths, in this order
#   ENGINE=postgres                                      # the broker on a throwaway PostgreSQL
#                                                        # (fsync on) instead of its SQLite
#   BROKER=path                                          # that broker binary instead of this tree's
#   PERF_DIR=dir                                         # perf record -g of the broker during each
#                                                        # refresh-grant run: dir/<alg>-<engine>.data
#
# Paths (wrk Lua scripts in scripts/wrk/):
#   forward-auth-hit      one valid token repeated: the gateway answers from its verified-token cache
#   forward-auth-miss     64 distinct valid tokens in turn through a gateway whose cache holds 16:
#                         each is evicted before it comes round again, so every request verifies
#                         (with 32, half the tokens, a token's own verification, finishing some 32
#                         requests after it was sent, left too few later ones to evict it: up to a
#                         third of the requests were hits once hits stopped waiting on a task)
#   forward-auth-nocache  one token through a gateway started with --token-cache-size 0
#   refresh-grant         16 clients each rotating its own refresh chain (wrk -t16 -c16), beside
#                         one core's raw signing rate (`openssl speed`, the signing algorithm);
#                         prints p99 too. Target (issue 13): RS256 >= 0.5 of a core, p99 <= 10 ms
#   password-login        16 clients logging in as 16 distinct users, beside the raw argon2id rate
#                         on every core at the same parameters (`broker-bench argon2`); target >= 0.9
# To add a path: write path_<name with _ for ->, which starts what it needs and sets server and
# ours (see the forward-auth ones), and name it in PATHS. A path measured against another
# reference than nginx sets reference_name and reference too.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
algs=${ALGS:-RS256 ES256}
paths=${PATHS:-forward-auth-hit forward-auth-miss}
miss_tokens=64
miss_cache_size=16
refresh_clients=16
engine=${ENGINE:-sqlite}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light; }
swift build -c release --product broker-bench >/dev/null
if [ -n "${BROKER:-}" ]; then
  broker=$(realpath "$BROKER")   # another build of the broker, to compare two builds in turn
else
  swift build -c release --product broker >/dev/null
  broker="$PWD/.build/release/broker"
fi
bench="$PWD/.build/release/broker-bench"

. scripts/bench-lib.sh bench-http
echo "correct horse battery staple" > "$work/password"

if [ "$engine" = postgres ]; then
  cleanup_more() { scripts/postgres-test-server.sh stop "$work/postgres" >/dev/null 2>&1 || true; }
  postgres_admin=$(POSTGRES_FSYNC=on scripts/postgres-test-server.sh start "$work/postgres")
  openssl rand -base64 32 > "$work/kek"
  chmod 600 "$work/kek"
fi

# wrk's "requests-per-second p99-in-ms" (wrk -t1 -c$connections unless the arguments say
# otherwise); a run with any answer but 2xx/3xx measured something else: fail.
wrk_figures() {
  local output
  output=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "$@")
  if grep -q 'Non-2xx' <<<"$output"; then echo "$output" >&2; echo "refused requests in: wrk $*" >&2; return 1; fi
  grep -q 'Socket errors' <<<"$output" && grep 'Socket errors' <<<"$output" | sed 's/^/# /' >&2
  awk '/Requests\/sec/ { rate = int($2) }
       $1 == "99%" { value = $2; unit = value; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", value)
                     p99 = value * (unit == "us" ? 0.001 : unit == "s" ? 1000 : unit == "m" ? 60000 : 1) }
       END { printf "%d %.1f\n", rate, p99 }' <<<"$output"
}

# CPU time (user + system, clock ticks) the processes $@ have used so far.
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] && total=$(( total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat") ))
  done
  echo "$total"
}

# The broker's pid, and with ENGINE=postgres the database server's processes (the postmaster
# and its children: a backend per pooled connection, the WAL writer, ...), for cpu_ticks.
broker_processes() { echo "$broker_pid"; }
database_processes() {
  [ "$engine" = postgres ] || return 0
  local postmaster; postmaster=$(head -1 "$work/postgres/data/postmaster.pid")
  echo "$postmaster" $(pgrep -P "$postmaster")
}

# "name=N.NN ms" CPU per request: ticks $2 over $3 requests.
cpu_per_request() {
  awk -v name="$1" -v ticks="$2" -v requests="$3" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s=%.2f ms", name, (requests > 0 ? ticks * 1000 / hz / requests : 0) }'
}

# wrk's requests per second alone.
rate() {
  local figures; figures=$(wrk_figures "$@")
  echo "${figures% *}"
}

nginx_port=$(free_port)
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:$nginx_port; location / { return 200; } }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
wait_for "http://127.0.0.1:$nginx_port/"

# --- The broker of one algorithm, and what the paths share ---------------------------------

# Starts a broker signing with $alg in $work/$alg, with user alice in org1 (cluster org1).
start_broker() {
  broker_dir="$work/$alg"
  broker_port=$(free_port)
  mkdir -p "$broker_dir"
  cat > "$broker_dir/broker.yaml" <<YAML
data_dir: "$broker_dir/data"
keys_dir: "$broker_dir/keys"
signing_alg: "$alg"
port: $broker_port
log_level: "error"
# Each refresh client rotates one chain flat out: the per-session renewal limit is lifted.
refresh_throttle_window: 1
refresh_throttle_session: 10000
YAML
  export BROKER_CONFIG="$broker_dir/broker.yaml"
  if [ "$engine" = postgres ]; then
    # A database per algorithm: each broker starts on an empty one.
    psql "$postgres_admin" -qc "CREATE DATABASE bench_${alg,,}"
    export BROKER_DATABASE_URL=${postgres_admin%/postgres}/bench_${alg,,} BROKER_KEY_ENCRYPTION_KEY_FILE=$work/kek
  fi
  echo "correct horse battery staple" | "$broker" users add alice --password-stdin >/dev/null
  "$broker" orgs add org1 >/dev/null
  "$broker" members add org1 alice >/dev/null
  "$broker" serve > "$broker_dir/broker.log" 2>&1 & pids+=($!)
  broker_pid=$!
  wait_for "http://127.0.0.1:$broker_port/healthz"
  gateway_ports=()
  gateway_pids=()
}

# $broker_dir/$2 (default tokens): $1 tokens of alice for org1, each from a login of its own;
# field $3 of the login's answer (default access; refresh for refresh chains).
mint_tokens() {
  local file="$broker_dir/${2:-tokens}" have=0
  [ -f "$file" ] && have=$(wc -l < "$file")
  [ "$have" -ge "$1" ] && return 0
  python3 - "$broker_port" "$(( $1 - have ))" "${3:-access}" >> "$file" <<'PY'
import json, sys, urllib.request
port, count, field = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = json.dumps({"username": "alice", "password": "correct horse battery staple", "org_name": "org1"}).encode()
for _ in range(count):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/org_token/", data=body,
                                     headers={"Content-Type": "application/json"})
    print(json.load(urllib.request.urlopen(request))[field])
PY
}

declare -A gateway_ports gateway_pids
# Sets gateway_port to that of a `broker gateway` on the broker's JWKS with --token-cache-size
# $1, started on first use.
start_gateway() {
  local size=$1
  if [ -z "${gateway_ports[$size]:-}" ]; then
    local port; port=$(free_port)
    "$broker" gateway --jwks "http://127.0.0.1:$broker_port/.well-known/jwks.json" --issuer "http://127.0.0.1:8080" \
      --cluster org1 --port "$port" --token-cache-size "$size" --log-level info \
      > "$broker_dir/gateway-$size.log" 2>&1 & pids+=($!)
    gateway_pids[$size]=$!
    gateway_ports[$size]=$port
    wait_for "http://127.0.0.1:$port/"
  fi
  gateway_port=${gateway_ports[$size]}
}

# Stops the broker and its gateways; each gateway's cache counters, from its last log line, as
# comments (a miss path must show no hits).
stop_broker() {
  local size
  for size in "${!gateway_pids[@]}"; do
    kill "${gateway_pids[$size]}"; wait "${gateway_pids[$size]}" 2>/dev/null || true
    echo "# $alg --token-cache-size $size:" $(grep 'verified-token cache' "$broker_dir/gateway-$size.log" | grep -oE '(hits|misses|dropped)=[0-9]+')
  done
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
}

# --- Paths: each sets server (what it measures) and ours (its requests per second) -----------

# Forward-auth through a gateway with --token-cache-size $2, $1 distinct tokens, wrk script $3.
forward_auth() {
  mint_tokens "$1"
  start_gateway "$2"
  server=gateway
  ours=$(WRK_TOKENS="$broker_dir/tokens" rate -s "scripts/wrk/$3" "http://127.0.0.1:$gateway_port/")
}

path_forward_auth_hit() { forward_auth 1 10000 forward-auth-hit.lua; }
path_forward_auth_miss() { forward_auth "$miss_tokens" "$miss_cache_size" forward-auth-miss.lua; }
path_forward_auth_nocache() { forward_auth 1 0 forward-auth-hit.lua; }

# `broker-bench http` against this broker: "rate p99" of its one line.
bench_http() {
  "$bench" http --target "http://127.0.0.1:$broker_port" --clients 16 --seconds "$seconds" --org org1 "$@" |
    awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^rate=/) { sub("rate=", "", $i); sub("/s", "", $i); rate = $i }
                                       if ($i ~ /^p99=/) { sub("p99=", "", $i); p99 = $i } }
           if ($0 ~ /failed=[1-9]/) { print "failed requests: " $0 > "/dev/stderr"; exit 1 } }
         END { print rate, p99 }'
}

path_refresh_grant() {
  server=broker
  # A fresh chain per run: the previous run's tokens have been used.
  rm -f "$broker_dir/refresh-tokens"
  mint_tokens "$refresh_clients" refresh-tokens refresh
  local figures perf_pid=
  if [ -n "${PERF_DIR:-}" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -g -p "$broker_pid" -o "$PERF_DIR/$alg-$engine.data" -- sleep "$seconds" 2>/dev/null & perf_pid=$!
  fi
  local broker_ticks database_ticks
  broker_ticks=$(cpu_ticks $(broker_processes))
  database_ticks=$(cpu_ticks $(database_processes))
  figures=$(WRK_REFRESH_TOKENS="$broker_dir/refresh-tokens" wrk_figures -t"$refresh_clients" -c"$refresh_clients" \
    -s scripts/wrk/refresh-chain.lua "http://127.0.0.1:$broker_port/")
  [ -z "$perf_pid" ] || wait "$perf_pid"
  broker_ticks=$(( $(cpu_ticks $(broker_processes)) - broker_ticks ))
  database_ticks=$(( $(cpu_ticks $(database_processes)) - database_ticks ))
  ours=${figures% *}
  # CPU per grant: where a core goes, to tell what bounds the rate on a shared machine.
  extra="p99=${figures#* } ms $(cpu_per_request broker-cpu "$broker_ticks" $(( ours * seconds )))"
  [ "$engine" = postgres ] && extra+=" $(cpu_per_request postgres-cpu "$database_ticks" $(( ours * seconds )))"
  local test tag
  case $alg in RS256) test=rsa2048 tag=+F2: ;; ES256) test=ecdsap256 tag=+F4: ;; *) test=ed25519 tag=+F6: ;; esac
  reference_name="openssl-sign-1core"
  reference=$(openssl speed -mr -seconds "$seconds" "$test" 2>/dev/null | awk -F: -v tag="$tag" 'index($0, tag) == 1 { print int($(NF-1)) }')
}

path_password_login() {
  server=broker
  local index
  for index in $(seq 0 15); do
    echo "correct horse battery staple" | "$broker" users add "bench$index" --password-stdin >/dev/null 2>&1 || true
    "$broker" members add org1 "bench$index" >/dev/null 2>&1 || true
  done
  local figures; figures=$(bench_http --mode login --user bench --distinct-users 16 --password-file "$work/password")
  ours=${figures% *}
  extra="p99=${figures#* } ms"
  reference_name="argon2id-raw-all-cores"
  reference=$("$bench" argon2 --seconds "$seconds" | grep -oE 'rate=[0-9.]+' | cut -d= -f2)
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $engine, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), wrk -t1 -c$connections -d${seconds}s"
for alg in $algs; do
  start_broker
  for path in $paths; do
    measure="path_${path//-/_}"
    declare -F "$measure" >/dev/null || { echo "unknown path: $path" >&2; exit 2; }
    reference_name="" reference="" extra=""
    $measure
    if [ -z "$reference_name" ]; then
      reference_name=nginx-static
      reference=$(rate "http://127.0.0.1:$nginx_port/")
    fi
    ratio=$(python3 -c "print(f'{$ours/$reference:.2f}')")
    echo "$alg $path $server=$ours $reference_name=$reference ratio=$ratio${extra:+ $extra}"
  done
  stop_broker
done
