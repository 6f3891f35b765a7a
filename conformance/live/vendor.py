"""The vendor as checks see it inside the executor child: the loaded module, the token, the PIN and ground truth.

Only the executor child loads a module; the pytest process never does (a module that crashes takes the child,
and several vendors whose modules cannot share a process run side by side in one pytest run).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from .groundtruth import GroundTruth


@dataclass
class LiveVendor:
    """What a check body gets as `vendor` in the executor child. Not a boundary type: never serialised."""

    lib: Any
    token: Any
    ground_truth: GroundTruth
    pin: str
    name: str = ""
    _missing: dict[str, str] | None = None
    _mechanisms: frozenset[Any] | None = None
    calls: Any = None  # the tap's view of the calls (live/calls.py ModuleCalls), or None: no tap in the stack
    disposable: bool = False  # the profile's: token objects may be made (live/keys.py), destroyed at reset
    token_objects: set[str] = field(default_factory=set)  # labels of token objects this check made
    # Set by a check after which this process must not run another (it forked: a child's C_Finalize may have
    # changed what the module shares with it); the parent starts a new one.
    retire: bool = False
    module: str = ""  # the path the module was loaded from (a program of another runtime loads it again)
    # A new provider from the --sut factory (the reference session by default), opening sessions as the contract's
    # open_session does; None where the module's process has no factory.
    new_provider: Any = None

    def mechanisms(self) -> frozenset[Any]:
        """The mechanisms the token lists (C_GetMechanismList, asked once: checks skip on what is missing)."""
        if self._mechanisms is None:
            self._mechanisms = frozenset(self.token.slot.get_mechanisms())
        return self._mechanisms

    def missing_capabilities(self) -> dict[str, str]:
        """capability -> why the token lacks it (probed once, on first use)."""
        if self._missing is None:
            from .capabilities import probe

            self._missing = probe(self.token, self.pin)  # its sessions close themselves: nothing else is touched
        return self._missing

    def capabilities_only(self, only: tuple[str, ...]) -> dict[str, str]:
        """Just these capabilities, probed now and not kept (the parent isolates a probe that crashes)."""
        from .capabilities import probe

        return probe(self.token, self.pin, only)

    @property
    def slot_id(self) -> int:
        return self.token.slot.slot_id

    def user_pin(self) -> str:
        return self.pin

    def open_session(self, *, login: bool = True, rw: bool = True) -> Any:
        """A new session; with login=True the user is logged in through it (python-pkcs11's token.open)."""
        return self.token.open(rw=rw, user_pin=self.pin if login else None)

    def reset(self) -> None:
        """Cheap per-check reset: drop dangling iterators, close every session of ours, back to public state;
        on a token that keeps session objects past their session, also destroy the harness's objects."""
        gc.collect()
        self.ground_truth.close_all_sessions(self.slot_id)
        if "session_objects_end" in self.missing_capabilities() or self.token_objects:
            from .integrity import sweep_token

            # this run's objects (those of a token that keeps session objects), else the check's token objects
            sweep_token(self.token, self.pin,
                        labels=None if "session_objects_end" in self.missing_capabilities() else self.token_objects)
            self.token_objects.clear()
