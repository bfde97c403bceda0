#!/usr/bin/env bash
# Runs every test. Tests use their own temporary directories and free ports; they never touch
# ./data, ./keys or port 8080. PyJWT (the independent verifier) and the official SlideRule client
# live in a virtual environment because Debian's Python refuses a plain `pip install`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-tests
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'pyjwt[crypto]>=2.8'
fi
# The official SlideRule client, which SlideRuleClientTests logs in against the broker. It pulls
# numpy, pandas, geopandas and pyarrow (~130 MB to download, ~500 MB installed, ~15 s).
sliderule_version=5.7.0
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("sliderule") != sys.argv[1])' \
    "$sliderule_version" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "sliderule==$sliderule_version"
fi
# The generation-1 client, sliderule 4.20.0, which SlideRuleGeneration1ClientTests scales a
# cluster with through the broker. Beside 5.7.0, not over it: --no-deps into a directory of its
# own (.venv-tests/sliderule4, which the test puts first on sys.path); its dependencies (numpy,
# requests, geopandas, ...) are 5.7.0's, already in the venv.
sliderule4_version=4.20.0
sliderule4_dir=$venv/sliderule4
if ! "$venv/bin/python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import sliderule; sys.exit(sliderule.__version__ != sys.argv[2])' \
    "$sliderule4_dir" "$sliderule4_version" >/dev/null 2>&1; then
  rm -rf "$sliderule4_dir"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --target "$sliderule4_dir" "sliderule==$sliderule4_version"
fi
# Selenium, which drives the headless Chromium of PortalBrowserTests (Tests/Browser/). 4.51.0 is
# pinned: 4.52 and later need a certifi newer than the package index this project is tested with
# holds. Selenium Manager stays offline: the driver names /usr/bin/chromedriver and chromium itself.
selenium_version=4.51.0
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("selenium") != sys.argv[1])' \
    "$selenium_version" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$selenium_version"
fi
# Third-party OAuth 2 and JOSE libraries that StandardsInteropTests (Tests/Interop/) runs against
# the broker, pinned: authlib (metadata, RFC 9068 validation, an OAuth 2 client), joserfc (JOSE,
# RFC 9864 names), requests-oauthlib (a second OAuth 2 client).
for pinned in authlib==1.9.10 joserfc==1.8.0 requests-oauthlib==2.0.0; do
  if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; name, version = sys.argv[1].split("=="); sys.exit(m.version(name) != version)' \
      "$pinned" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$pinned"
  fi
done
export BROKER_TEST_PYTHON="$PWD/$venv/bin/python"
# The browser tests skip without it (scripts/install-deps.sh test installs chromium-driver).
if [ -x /usr/bin/chromedriver ]; then
  export BROKER_TEST_CHROMEDRIVER=/usr/bin/chromedriver
fi

# A throwaway PostgreSQL for the PostgreSQL store, replica and conformance tests: its own
# temporary directory, loopback only, a free port; stopped on every way out. Each test makes its
# own database on it.
postgres_dir=$(mktemp -d "${TMPDIR:-/tmp}/broker-test-postgres.XXXXXX")
stop_postgres() {
  scripts/postgres-test-server.sh stop "$postgres_dir" >/dev/null 2>&1 || true
  rm -rf "$postgres_dir"
}
trap stop_postgres EXIT
BROKER_TEST_POSTGRES_URL=$(scripts/postgres-test-server.sh start "$postgres_dir")
export BROKER_TEST_POSTGRES_URL

swift build --build-tests
swift test --skip-build "$@"
# The contract, fuzzed: Schemathesis against a broker of its own (docs/api.md).
scripts/schemathesis.sh
# The parsers under libFuzzer and AddressSanitizer, 60 s in all (docs/fuzzing.md).
scripts/fuzz.sh --brief
