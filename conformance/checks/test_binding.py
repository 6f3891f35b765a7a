"""python-pkcs11 itself under threads: what its C_Initialize promises the module, and what it then does."""

from __future__ import annotations

import pytest

from conformance.executor.protocol import CallStress


@pytest.mark.check("binding.concurrent_calls_survive", layer="binding",
                   spec="PKCS#11 v3.0 §5.4 C_Initialize (NULL: no multi-threaded access); python-pkcs11 docs, Concurrency")
@pytest.mark.concurrency
@pytest.mark.risky
def test_concurrent_calls_survive(stress):
    """Docs: "you will not be preempted inside a single PKCS#11 call" — so threads may call freely. v3.0 §5.4: a
    C_Initialize(NULL) tells the module nothing will call it from several threads at once. Four threads, each on a
    session of its own, generate keys and read attributes at once; the module must survive (run in the executor
    child: a crash or hang is reported as such, not as a dead test run)."""
    stress(CallStress(threads=4, iterations=300, calls=("keygen", "attribute", "random")), rounds=3)
