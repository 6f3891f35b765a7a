"""The module's own latency, measured in its process: a few calls of each kind the checks make, timed one by one.

A network HSM costs milliseconds per call and up to seconds per login; the executor's waits are derived from this
(timing.py), so a module far away is slow, never a finding. Safe on a real token: the logins use the right PIN
(checked once before) and the search finds nothing (a label no object has); no other kind of call is made.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..labels import label
from .host import ModuleHost
from .protocol import Latency, MeasureLatency


TRIES = 3  # a sample the module failed (SoftHSM 2.6: C_Login racing another process's, GeneralError) is retaken


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """How long one call takes. Timing is all this measures: a call the module refused is timed again (up to
    TRIES), so a transient module error (a known cross-process login race) does not take the process down."""
    import pkcs11

    for attempt in range(TRIES):
        started = time.perf_counter()
        try:
            value = call()
        except pkcs11.exceptions.PKCS11Error:
            if attempt == TRIES - 1:
                raise
            continue
        return time.perf_counter() - started, value
    raise AssertionError("unreachable")


def measure(host: ModuleHost, command: MeasureLatency) -> Latency:
    from pkcs11 import ObjectClass
    from pkcs11.constants import Attribute

    host.close_everything()  # no session of ours may be logged in: each login is a first one
    token, rounds = host.token, max(1, command.rounds)
    nothing = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label("latency-probe-finds-nothing")}
    opens: list[float] = []
    closes: list[float] = []
    searches: list[float] = []
    logins: list[float] = []
    for _ in range(rounds):
        took, session = _timed(lambda: token.open(rw=True))
        opens.append(took)
        searches.append(_timed(lambda: list(session.get_objects(nothing)))[0])
        closes.append(_timed(session.close)[0])
    for _ in range(min(rounds, 2)):  # a login may take seconds on a network HSM
        took, session = _timed(lambda: token.open(rw=True, user_pin=host.pin))
        logins.append(max(0.0, took - min(opens)))
        session.close()  # C_Logout, then C_CloseSession
    host.close_everything()
    return Latency(tuple(logins), tuple(opens), tuple(closes), tuple(searches))
