"""What each provisioner and wrapper needs on the machine, as data: `pkcs11-conformance vendors` and
--vendor=all use it to say why a profile cannot run here before anything is started."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

# kind or wrapper -> (executable or absolute path, Debian package that provides it)
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "none": (),
    "softhsm2": (("softhsm2-util", "softhsm2"),),
    "opencryptoki": (("pkcsslotd", "opencryptoki"), ("pkcsconf", "opencryptoki"), ("unshare", "util-linux"),
                     ("nsenter", "util-linux")),
    "tpm2": (("swtpm", "swtpm"), ("swtpm_setup", "swtpm-tools"), ("tpm2_ptool", "libtpm2-pkcs11-tools"),
             ("tpm2-abrmd", "tpm2-abrmd"), ("tpm2_getcap", "tpm2-tools"), ("dbus-daemon", "dbus"),
             ("/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0", "libtss2-tcti-tabrmd0")),
    "nss": (("certutil", "libnss3-tools"),),
    "p11-kit": (("/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so", "p11-kit-modules"), ("cc", "gcc")),
    "spy": (("/usr/lib/x86_64-linux-gnu/pkcs11-spy.so", "opensc-pkcs11"),),
}
ROOT_ONLY = {"opencryptoki": "its state is system-wide; the harness isolates it in a private namespace, which needs root"}


def missing(kind: str, via: Sequence[str] = ()) -> list[str]:
    """What is missing for a provisioning kind and its wrappers, each as 'thing (apt-get install PKG)'."""
    out = []
    for part in (kind, *via):
        for thing, package in NEEDS.get(part, ()):
            present = Path(thing).exists() if thing.startswith("/") else _which(thing)
            if not present:
                out.append(f"{os.path.basename(thing)} (apt-get install {package})")
        if part in ROOT_ONLY and os.geteuid() != 0:
            out.append(f"root ({ROOT_ONLY[part]})")
    return out


def _which(tool: str) -> bool:
    # /usr/sbin is not on every PATH (non-login shells, CI images).
    return bool(shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin"))


def package_version(path: str) -> str | None:
    """'package version' of the Debian package that owns the file, or None (not Debian, not packaged)."""
    try:
        owner = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)], capture_output=True, text=True, timeout=10)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True, timeout=10)
        if owner.returncode != 0:
            return None
        package = owner.stdout.split(":", 1)[0].strip()
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                                 timeout=10)
        return f"{package} {version.stdout.strip()}" if version.returncode == 0 else package
    except (OSError, subprocess.TimeoutExpired):
        return None
