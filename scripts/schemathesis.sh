#!/usr/bin/env bash
# Checks the broker against its contract (openapi.yaml) with Schemathesis: every operation, a
# fixed seed, a bounded number of examples; fails on any 5xx and on any answer the contract does
# not describe (status, content type, headers, body). Builds nothing: it runs the debug binary
# of `swift build`. Starts its own broker, in a temporary directory on a free loopback port, with
# cheap argon2id and a stand-in GitHub on loopback (scripts/fake_github.py), so no request leaves
# the machine. See docs/api.md.
#
#   scripts/schemathesis.sh                        # the run scripts/test.sh makes
#   SCHEMATHESIS_EXAMPLES=500 scripts/schemathesis.sh   # a longer hunt
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

broker=${BROKER_BINARY:-$root/.build/debug/broker}
venv=$root/.venv-tests
schemathesis_version=4.32.5
seed=${SCHEMATHESIS_SEED:-1}
examples=${SCHEMATHESIS_EXAMPLES:-100}
checks="not_a_server_error status_code_conformance content_type_conformance response_headers_conformance
  response_schema_conformance unsupported_method allow_header_conformance"

if [ ! -x "$broker" ]; then
  echo "schemathesis.sh: no $broker; run 'swift build' first" >&2
  exit 2
fi
# Debian's Python refuses a plain `pip install`: Schemathesis lives in the tests' venv.
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("schemathesis") != sys.argv[1])' \
    "$schemathesis_version" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
python=$venv/bin/python

work=$(mktemp -d "${TMPDIR:-/tmp}/broker-schemathesis.XXXXXX")
github_pid=""
broker_pid=""
stop() {
  for pid in $broker_pid $github_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap stop EXIT

# Prints the first line of $1 matching the sed expression $2, waiting up to 30 s for it.
await_line() {
  local file=$1 expression=$2 pid=$3 found
  for _ in $(seq 300); do
    found=$(sed -n "$expression" "$file" | head -n 1)
    if [ -n "$found" ]; then echo "$found"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "schemathesis.sh: no '$expression' in $file" >&2
  cat "$file" "$work"/*.log >&2 2>/dev/null || true
  return 1
}

"$python" scripts/fake_github.py >"$work/github.out" 2>"$work/github.log" &
github_pid=$!
github_port=$(await_line "$work/github.out" 's/^listening on \([0-9]*\)$/\1/p' "$github_pid")

config=$work/broker.yaml
cat >"$config" <<EOF
data_dir: "$work/data"
keys_dir: "$work/keys"
host: "127.0.0.1"
port: 0
argon2_memory_kib: 64
argon2_iterations: 1
# Fuzzing sends thousands of logins: no padding of failures, and GitHub routes left unthrottled
# (their 429 is in the contract; the throttle's own tests are GitHubThrottleHTTPTests). The same
# for renewals of one session, /auth/refresh with the one accessToken above all
# (RefreshThrottleHTTPTests).
login_failure_floor_ms: 0
github_login_throttle_ip: 1000000
refresh_throttle_session: 10000
github_api_url: "http://127.0.0.1:$github_port"
github_web_url: "http://127.0.0.1:$github_port"
github_client_id: "schemathesis"
github_orgs:
  org1:
    github_org: SchemathesisOrg
EOF

"$broker" orgs add org1 --config "$config" >/dev/null
member_password="schemathesis-member-$RANDOM$RANDOM"
echo "$member_password" | "$broker" users add alice --password-stdin --config "$config" >/dev/null
"$broker" members add org1 alice --config "$config" >/dev/null

"$broker" serve --config "$config" >"$work/serve.out" 2>"$work/broker.log" &
broker_pid=$!
base=$(await_line "$work/serve.out" 's/.*listening on \(http:[^ ]*\).*/\1/p' "$broker_pid")

# The contract as the broker serves it (loaded from a file, Schemathesis also tests the
# operation that serves it), and a token for each of its security schemes: an admin's broker
# session token, and the generation-2 token of the stand-in GitHub's user octo. Written anew
# before each run: fuzzing the admin API may disable, demote or delete the admin it signed in as,
# so each run gets a fresh admin (created with the CLI, which works beside the running server);
# org1, which the stand-in GitHub's user belongs to, is created again (its reserved name released) if a run deleted it, and
# that user's account (octo, made at its first login) enabled again if a run disabled it.
configure() {
  local name=$1 password="schemathesis-admin-$RANDOM$RANDOM"
  echo "$password" | "$broker" users add "$name" --admin --password-stdin --config "$config" >/dev/null
  # A deleted org1 leaves its cluster name reserved (docs/security.md): release it, then add org1.
  if ! "$broker" orgs list --config "$config" | grep -q '^org1 '; then
    "$broker" orgs release-name org1 --config "$config" >/dev/null 2>&1 || true
    "$broker" orgs add org1 --config "$config" >/dev/null
  fi
  "$broker" users enable octo --config "$config" >/dev/null 2>&1 || true
  ADMIN_NAME="$name" ADMIN_PASSWORD="$password" "$python" - "$base" "$work" $checks <<'EOF'
import json, os, sys, urllib.request
base, work, checks = sys.argv[1], sys.argv[2], sys.argv[3:]
with urllib.request.urlopen(base + "/openapi.yaml", timeout=10) as answer, open(work + "/openapi.yaml", "wb") as file:
    file.write(answer.read())
def post(path, body):
    request = urllib.request.Request(
        base + path, method="POST", headers={"Content-Type": "application/json"}, data=json.dumps(body).encode())
    return json.load(urllib.request.urlopen(request, timeout=10))
session = post("/api/session", {"username": os.environ["ADMIN_NAME"], "password": os.environ["ADMIN_PASSWORD"]})["token"]
# A generation-2 token (the stand-in GitHub knows ghp_schemathesis): it is accepted wherever an
# access token is (membership status), and /auth/refresh renews only these.
access = post("/auth/github/pat", {"pat": "ghp_schemathesis"})["token"]
enabled = "\n".join(f"{check} = {{ enabled = true }}" for check in checks)
with open(work + "/schemathesis.toml", "w") as file:
    file.write(f'''[checks]
enabled = false
{enabled}

[auth.openapi.sessionToken]
bearer = "{session}"

[auth.openapi.accessToken]
bearer = "{access}"
''')
EOF
}

# Retiring a key withdraws it at once, and with it the tokens it signed: the key
# operations run last, on their own, so that every other operation is tested signed in.
run() {
  "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$work/openapi.yaml" --url "$base" \
    --seed "$seed" --max-examples "$examples" --workers 1 \
    --phases examples,coverage,fuzzing,stateful --generation-database none \
    --request-timeout 10 --no-color "$@"
}
status=0
configure schemathesis-admin-1
(cd "$work" && run --exclude-operation-id retireSigningKey) || status=$?
configure schemathesis-admin-2
(cd "$work" && run --include-path-regex '^/api/admin/keys') || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis.sh: the broker broke its contract; its last log lines:" >&2
  tail -n 40 "$work/broker.log" >&2
fi
exit "$status"
