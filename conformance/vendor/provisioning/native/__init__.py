"""Native helpers built from source on first use (the C compiler is the only requirement)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ProvisioningError

HERE = Path(__file__).resolve().parent


def build(name: str, cache: Path | None = None) -> Path:
    """Compile HERE/NAME.c into a shared library, cached by source hash (so concurrent workers share it)."""
    source = HERE / f"{name}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pkcs11-conformance"
    target = cache / f"{name}-{digest}.so"
    if target.exists():
        return target
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise ProvisioningError(f"no C compiler to build {name}.so; install one (apt-get install gcc)")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".so")
    os.close(fd)
    proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", tmp, str(source), "-ldl", "-lpthread"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise ProvisioningError(f"building {name}.so failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    os.replace(tmp, target)  # atomic: another worker may be building the same file
    return target
