#!/usr/bin/env bash
# Everything a fresh Debian 12 machine (as root) needs to run the harness and its tests:
# the PKCS#11 modules (apt), a virtualenv in .venv, and this package installed into it (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

# The five module stacks the vendors/ profiles run on, what provisions them, and the report's browser tests.
APT_PACKAGES=(
  python3-venv gcc util-linux dbus chromium
  softhsm2                                          # softhsm, softhsm-p11kit, softhsm-spy
  p11-kit p11-kit-modules                           # softhsm-p11kit, nss (p11-kit-proxy)
  opensc-pkcs11                                     # softhsm-spy (pkcs11-spy)
  opencryptoki                                      # opencryptoki (soft token, pkcsslotd)
  libtpm2-pkcs11-1 libtpm2-pkcs11-tools swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0   # tpm2
  libnss3-tools                                     # nss (certutil; softokn comes with libnss3)
)
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
.venv/bin/python -m pip install -q -e '.[test,runtimes]'
echo "bootstrap: ready (.venv, $(.venv/bin/python -c 'import pkcs11, importlib.metadata as m; print("python-pkcs11", m.version("python-pkcs11"))'))"
