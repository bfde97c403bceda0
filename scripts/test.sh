#!/usr/bin/env bash
# Runs every test. Tests use their own temporary directories and free ports; they never touch
# ./data, ./keys or port 8080. PyJWT (the independent verifier) lives in a virtual environment
# because Debian's Python refuses a plain `pip install`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-tests
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'pyjwt[crypto]>=2.8'
fi
export BROKER_TEST_PYTHON="$PWD/$venv/bin/python"

swift build --build-tests
swift test --skip-build "$@"
