"""A runtime program: `python -m conformance.runtimes.program`, a fresh interpreter per runtime. The first stdin
line is a Start (with the PIN beside it); the program patches where the runtime says — before python-pkcs11 is
imported, after it, or after the first job's sessions were made — loads the module, answers `ready`, then runs one
Job per stdin line, answering one JSON line per event as it happens (a crash loses nothing already done).

Greenlet acts are forced into the schedule's order and judged by evidence, not by waiting: after handing an act to
its greenlet the driver lets every runnable greenlet run; an act that has started and not finished once nothing can
run any more is parked (`blocked`) — on one OS thread only another greenlet's progress can wake it. Only an act
offloaded to a threadpool is waited for (a hang there is the launcher's to see).
"""

from __future__ import annotations

# Only the standard library's smallest parts are imported before the runtime patches (asyncio and threading are
# imported by the asyncio driver alone): a greenlet runtime patches as a service does, first thing.
import json
import os
import sys
from typing import Any

from ..live.programs import Answers, die_with_parent
from .acts import Fixture, where_of
from .drivers import AsyncioDriver, GreenletDriver
from .greening import LIBRARIES, REQUIREMENT, Greenlets
from .plan import Job, Start


def _load(start: Start, answer: Answers) -> Any:
    """The token (python-pkcs11 imported here: after a before_import patch), or None having said why."""
    import pkcs11

    try:
        lib = pkcs11.lib(start.module)
        token = lib.get_token(token_label=start.token_label)
    except Exception as exc:  # noqa: BLE001 - reported as data; the launcher turns it into a clear error
        answer(failed=f"{type(exc).__name__}: {str(exc)[:300]}")
        return None
    return token


def main() -> int:
    die_with_parent()
    first = json.loads(sys.stdin.readline())
    start, pin = Start.from_dict(first["start"]), str(first["pin"])
    answer = Answers(pin)
    runtime = start.runtime
    g: Greenlets | None = None
    if runtime.greenlets:
        try:
            g = LIBRARIES[runtime.kind]()
        except ImportError:
            answer(unavailable=f"{runtime.kind} is not installed: pip install 'pkcs11-conformance[runtimes]' "
                               f"(or {REQUIREMENT[runtime.kind]})")
            return 0
        if runtime.patch == "before_import":
            g.patch()
    token = _load(start, answer)
    if token is None:
        return 2
    if g is not None and runtime.patch == "after_import":
        g.patch()
    answer(ready=os.getpid())
    patched = runtime.patch != "after_sessions"
    driver = GreenletDriver(g, answer) if g is not None else AsyncioDriver(answer)
    for line in sys.stdin:
        job = Job.from_dict(json.loads(line))
        fixture = Fixture(token, pin, job)
        if not patched and g is not None:
            g.patch()  # the sessions above keep the native RLock python-pkcs11 made them with
            patched = True
        try:
            driver.run(fixture, job)
        except Exception as exc:  # noqa: BLE001 - the program's own bug (an asyncio act's included)
            answer(broken=where_of(exc))
            return 5
        threads = len(fixture.offload_threads)
        fixture.close()
        answer(done=True, offload_threads=threads)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # greenlets or executor threads may be parked inside the module; do not wait for them
