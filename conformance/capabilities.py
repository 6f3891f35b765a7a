"""What a token can do, asked of the token itself; a missing capability is a skip that says which."""

from __future__ import annotations

from typing import Any

import pytest
from pkcs11 import Mechanism


def require_mechanisms(vendor: Any, *mechanisms: Mechanism) -> None:
    have = set(vendor.token.slot.get_mechanisms())
    missing = [m.name for m in mechanisms if m not in have]
    if missing:
        pytest.skip(f"token lacks mechanism{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
