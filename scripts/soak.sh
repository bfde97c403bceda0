#!/usr/bin/env bash
# A soak: mixed load on one broker (embedded SQLite) and its `broker gateway` for SOAK_MINUTES
# (default 10), all at once: password logins of distinct users, refresh grants (each client
# rotating its own chain), JWKS fetches, introspection and forward-auth decisions. Prints one line
# per load and minute (rate, p99, errors), the resident memory of the broker and the gateway
# after each minute, and a summary. A record, not a test: it asserts nothing but exits 1 if any
# request failed (BENCHMARKS.md, "Soak").
#
#   scripts/soak.sh                       # 10 minutes
#   SOAK_MINUTES=1 scripts/soak.sh        # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
minutes=${SOAK_MINUTES:-10}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
swift build -c release --product broker >/dev/null
swift build -c release --product broker-bench >/dev/null
broker=$root/.build/release/broker
bench=$root/.build/release/broker-bench

. scripts/bench-lib.sh soak
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

broker_port=$(free_port)
gateway_port=$(free_port)
base=http://127.0.0.1:$broker_port
head -c 24 /dev/urandom | base64 | tr -d '\n' >"$work/password"
chmod 600 "$work/password"
# Production argon2id costs; the per-session renewal throttle lifted (each client rotates one
# chain flat out; the login throttle counts failures only, and the soak makes none).
cat >"$work/broker.yaml" <<YAML
data_dir: "$work/data"
keys_dir: "$work/keys"
port: $broker_port
log_level: warning
refresh_throttle_window: 1
refresh_throttle_session: 10000
YAML
export BROKER_CONFIG=$work/broker.yaml
logins=4
refreshes=8
"$broker" orgs add bench >/dev/null
for index in $(seq 0 $((logins > refreshes ? logins - 1 : refreshes - 1))); do
  "$broker" users add "bench$index" --password-stdin <"$work/password" >/dev/null
  "$broker" members add bench "bench$index" >/dev/null
done
"$broker" users add watcher --password-stdin <"$work/password" >/dev/null
"$broker" users role watcher introspector >/dev/null

"$broker" serve >"$work/broker.log" 2>&1 &
broker_pid=$!
pids+=($broker_pid)
wait_for "$base/healthz"
password=$(cat "$work/password")
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
export SOAK_ACCESS_TOKEN=$(curl -s "$base/api/org_token/" -H 'Content-Type: application/json' \
  -d "{\"username\":\"bench0\",\"password\":\"$password\",\"org_name\":\"bench\"}" | json access)
export SOAK_SESSION_TOKEN=$(curl -s "$base/api/session/" -H 'Content-Type: application/json' \
  -d "{\"username\":\"watcher\",\"password\":\"$password\"}" | json token)
issuer=$(curl -s "$base/.well-known/openid-configuration" | json issuer)

"$broker" gateway --jwks "$base/.well-known/jwks.json" --issuer "$issuer" --cluster bench --port "$gateway_port" \
  --log-level error >"$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
wait_for "http://127.0.0.1:$gateway_port/"
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SOAK_ACCESS_TOKEN" "http://127.0.0.1:$gateway_port/")
[ "$status" = 200 ] || { echo "soak: the gateway refused the token ($status)" >&2; exit 1; }

# One wrk run: "rate=… p99=… errors=…" (non-2xx answers and socket errors).
wrk_line() {
  wrk --latency "$@" 2>&1 | awk '
    /Requests\/sec/ { rate = int($2) }
    /^ +99%/ { p99 = $2 }
    /Non-2xx or 3xx responses/ { errors += $NF; kinds = kinds " non-2xx=" $NF }
    /Socket errors/ { gsub(",", ""); errors += $4 + $6 + $8 + $10; kinds = kinds " connect=" $4 " read=" $6 " write=" $8 " timeout=" $10 }
    END { printf "rate=%d/s p99=%s errors=%d%s\n", rate, p99, errors, (errors > 0 ? " (" kinds " )" : "") }'
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; soak of $minutes min on $(uname -r); rss at start: broker=$(rss_mb $broker_pid) MB gateway=$(rss_mb $gateway_pid) MB"
failures=0
for minute in $(seq 1 "$minutes"); do
  loads=()
  "$bench" http --target "$base" --mode login --clients $logins --seconds 60 --user bench --distinct-users $logins \
    --password-file "$work/password" --org bench --label "minute=$minute" >"$work/login" 2>&1 &
  loads+=($!)
  "$bench" http --target "$base" --mode refresh --clients $refreshes --seconds 60 --user bench --distinct-users $refreshes \
    --password-file "$work/password" --org bench --label "minute=$minute" >"$work/refresh" 2>&1 &
  loads+=($!)
  wrk_line -t1 -c4 -d60s "$base/.well-known/jwks.json" >"$work/jwks" &
  loads+=($!)
  wrk_line -t1 -c4 -d60s -s scripts/wrk/soak-introspect.lua "$base/oauth/introspect" >"$work/introspect" &
  loads+=($!)
  wrk_line -t1 -c8 -d60s -H "Authorization: Bearer $SOAK_ACCESS_TOKEN" "http://127.0.0.1:$gateway_port/" >"$work/forward" &
  loads+=($!)
  # The loads only: the broker and the gateway are children too, and run on.
  wait "${loads[@]}" || true
  cat "$work/login" "$work/refresh"
  for load in jwks introspect forward; do echo "minute=$minute $load $(cat "$work/$load")"; done
  echo "minute=$minute rss broker=$(rss_mb $broker_pid) MB gateway=$(rss_mb $gateway_pid) MB"
  # Requests that failed this minute, whatever the load; a load that printed no figure counts as one.
  failed=$(cat "$work/login" "$work/refresh" "$work/jwks" "$work/introspect" "$work/forward" |
    awk '/(failed|errors)=[0-9]+/ { for (i = 1; i <= NF; i++) if ($i ~ /^(failed|errors)=/) { split($i, kv, "="); n += kv[2]; seen++ } }
         END { print n + (5 - seen) }')
  failures=$((failures + failed))
done
echo "# soak done: $failures failed requests; rss at end: broker=$(rss_mb $broker_pid) MB gateway=$(rss_mb $gateway_pid) MB"
[ "$failures" -eq 0 ]
