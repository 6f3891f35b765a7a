"""pkcs11-conformance: a pytest harness that checks what PKCS#11 modules really do under python-pkcs11."""

from __future__ import annotations

__version__ = "0.1.0"

RESULTS_SCHEMA = "pkcs11-conformance/results/1"
