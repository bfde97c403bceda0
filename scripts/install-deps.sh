#!/usr/bin/env bash
# Installs the Debian packages the broker needs, only those missing (idempotent).
#
#   scripts/install-deps.sh run          # building and running the broker (make run)
#   scripts/install-deps.sh test         # those, and what the tests use besides (make test)
#   scripts/install-deps.sh --list KIND  # print the packages of KIND, install nothing
set -euo pipefail

# Building and running: OpenSSL (JOSE, AES), libcurl (GitHub), libargon2 (passwords).
run_packages=(libssl-dev libcurl4-openssl-dev libargon2-dev pkg-config openssl)
# The tests only: python3 and venv for PyJWT, the sliderule client, Selenium and schemathesis;
# haproxy and nginx-light, the real gateways of the RealGateway* tests; sqlite3, an independent
# reader of `broker db backup` copies (DatabaseBackupCLITests); postgresql, whose server the test
# command starts itself in a temporary directory (scripts/postgres-test-server.sh) for the
# PostgreSQL store and replica tests; systemd, whose `systemd-analyze verify` checks deploy/'s
# unit; chromium and chromium-driver, the headless browser of the portal's browser tests
# (PortalBrowserTests, Tests/Browser/portal_browser.py), and fonts-dejavu-core, because
# --no-install-recommends installs chromium without fonts and its screenshots would show boxes.
test_packages=(python3 python3-venv haproxy nginx-light sqlite3 postgresql systemd
  chromium chromium-driver fonts-dejavu-core)

list=false
if [ "${1:-}" = "--list" ]; then list=true; shift; fi
case "${1:-test}" in
  run) packages=("${run_packages[@]}") ;;
  test) packages=("${run_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: $0 [--list] [run|test]" >&2; exit 2 ;;
esac
if $list; then printf '%s\n' "${packages[@]}"; exit 0; fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1
  fi
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
