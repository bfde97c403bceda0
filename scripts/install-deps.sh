#!/usr/bin/env bash
# Installs the Debian packages the broker builds and tests with, only those missing (idempotent).
set -euo pipefail

# haproxy and nginx-light: the real gateways of Tests/BrokerServerTests/RealGatewayTests.swift;
# sqlite3: an independent reader of `broker db backup` copies (DatabaseBackupCLITests).
packages=(libssl-dev libcurl4-openssl-dev libargon2-dev pkg-config openssl python3 python3-venv haproxy nginx-light sqlite3)
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
