#!/usr/bin/env bash
# Forward-auth decisions per second through `broker gateway`, beside the same wrk run against
# nginx serving a static 200 (the ceiling of an HTTP hop on this machine). Loopback only.
#   scripts/bench-gateway.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light; }
swift build -c release --product broker >/dev/null
broker="$PWD/.build/release/broker"

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

broker_port=$(free_port); gateway_port=$(free_port); nginx_port=$(free_port)
cat > "$work/broker.yaml" <<YAML
data_dir: "$work/data"
keys_dir: "$work/keys"
signing_alg: "${ALG:-RS256}"
port: $broker_port
log_level: "error"
YAML
export BROKER_CONFIG="$work/broker.yaml"
echo "correct horse battery staple" | "$broker" users add alice --password-stdin >/dev/null
"$broker" orgs add org1 >/dev/null
"$broker" members add org1 alice >/dev/null
"$broker" serve > "$work/broker.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$broker_port/healthz"
token=$(curl -s "http://127.0.0.1:$broker_port/api/org_token/" -H 'Content-Type: application/json' \
  -d '{"username":"alice","password":"correct horse battery staple","org_name":"org1"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')

"$broker" gateway --jwks "http://127.0.0.1:$broker_port/.well-known/jwks.json" --issuer "http://127.0.0.1:8080" \
  --cluster org1 --port "$gateway_port" --log-level error > "$work/gateway.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$gateway_port/"

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

rate() { wrk -t1 -c"$connections" -d"${seconds}s" "$@" | awk '/Requests\/sec/ {print int($2)}'; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$gateway_port/")
[ "$status" = 200 ] || { echo "the gateway refused the token ($status)" >&2; exit 1; }
ours=$(rate -H "Authorization: Bearer $token" "http://127.0.0.1:$gateway_port/")
ceiling=$(rate "http://127.0.0.1:$nginx_port/")
ratio=$(python3 -c "print(f'{$ours/$ceiling:.2f}')")
echo "${ALG:-RS256} forward-auth gateway=$ours nginx-static=$ceiling ratio=$ratio (wrk -t1 -c$connections -d${seconds}s)"
