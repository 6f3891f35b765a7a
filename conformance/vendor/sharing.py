"""One process of the run at a time on a token that is not disposable.

A disposable token is this process's own (provisioning gives each pytest-xdist worker its own). A token that is not
disposable is one token for every worker: without this, one worker's check runs while another worker logs in,
makes objects or opens sessions on the same token, and the verdict depends on that interleaving — SoftHSM 2.6's
file store then answers GeneralError or shows no token at all to whoever reads while another process rewrites the
token's file (https://github.com/softhsm/SoftHSMv2/issues/757), and on any module token-wide counts (sessions,
objects) are another worker's as well. Cross-process behaviour is what dedicated checks characterise (several
applications on one token), never an accident of scheduling. So the workers take turns: an exclusive lock per token,
held while a runtime starts or stops and around each check (fixtures.py).

The lock is an flock(2) on a file named for the token (module, token selection, the module's environment) in the
system's temporary directory: it is released by the kernel when the process dies, whatever killed it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .profile import VendorProfile

LOCK_DIR = "pkcs11-conformance-tokens"


def lock_path(profile: VendorProfile) -> Path:
    """The lock file of the token this profile selects: the same for every process that reaches that token."""
    key = json.dumps({"module": profile.module and os.path.realpath(profile.module), "label": profile.token_label,
                      "uri": profile.token_uri, "env": dict(sorted(profile.env.items()))}, sort_keys=True)
    return Path(tempfile.gettempdir()) / LOCK_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


@contextlib.contextmanager
def taking_turns(profile: VendorProfile) -> Iterator[None]:
    """Hold the token for this process while the block runs (waits for another process's turn to end); nothing
    to wait for on a disposable token."""
    if profile.disposable:
        yield
        return
    path = lock_path(profile)
    path.parent.mkdir(mode=0o1777, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
