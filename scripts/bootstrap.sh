#!/usr/bin/env bash
# Everything a fresh Debian 12 machine (as root) needs to run the harness and its tests:
# the PKCS#11 modules (apt), a virtualenv in .venv, and this package installed into it (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(softhsm2 python3-venv chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "bootstrap: ready (.venv, $(.venv/bin/python -c 'import pkcs11, importlib.metadata as m; print("python-pkcs11", m.version("python-pkcs11"))'))"
