"""Is the token still as it was? Snapshots of what the harness must never change, taken in the executor child.

A snapshot is the token's presence and flags and a digest of its objects as the logged-in user sees them (class,
label, id of each; nothing else is read, so sensitive values are never touched and labels never leave this
module — only counts and the digest are reported). Taken before a run and after it on tokens that are not
disposable (the run must leave them exactly as found), and after any crashed or hung check (a module crash has
wiped a token's store here).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

from ..labels import PREFIX as LABEL_PREFIX  # every object the harness makes carries it (labels.py)


@dataclass(frozen=True)
class Snapshot:
    present: bool
    flags: tuple[str, ...] = ()
    objects: int = 0
    digest: str = ""
    ours: int = 0  # objects with the harness's label prefix (leftovers)
    problem: str = ""  # why the token could not be inspected

    def to_dict(self) -> dict[str, Any]:
        return {"present": self.present, "flags": list(self.flags), "objects": self.objects, "digest": self.digest,
                "ours": self.ours, "problem": self.problem}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(bool(data["present"]), tuple(data.get("flags", ())), int(data.get("objects", 0)),
                   str(data.get("digest", "")), int(data.get("ours", 0)), str(data.get("problem", "")))

    def changes_since(self, before: Snapshot) -> list[str]:
        """What differs from `before`, in words (empty: intact). Only counts and flags are named."""
        if not self.present:
            return [f"the token is gone ({self.problem or 'not found'})"]
        out = []
        if self.problem:
            out.append(f"the token could not be inspected ({self.problem})")
        if set(self.flags) != set(before.flags):
            gained, lost = sorted(set(self.flags) - set(before.flags)), sorted(set(before.flags) - set(self.flags))
            out.append("token flags changed" + (f", now {', '.join(gained)}" if gained else "")
                       + (f", no longer {', '.join(lost)}" if lost else ""))
        if self.digest != before.digest:
            out.append(f"its objects changed ({before.objects} before, {self.objects} now; "
                       f"{self.ours} with the harness's label prefix)")
        return out


def take(lib: Any, label: str | None, uri: str | None, pin: str) -> Snapshot:
    """Find the token again (as at start) and describe it; never raises. Call it with no session open (a fresh
    process after a crash, or after a reset): it logs in on a session of its own."""
    from .tokens import TokenNotFound, find_token, open_for_setup

    try:
        token = find_token(lib, label, uri)
    except (TokenNotFound, ValueError) as exc:
        return Snapshot(False, problem=str(exc))
    flags = tuple(sorted(f.name for f in type(token.flags) if f in token.flags and f.name))
    try:
        session = open_for_setup(token, pin, rw=False)
    except Exception as exc:  # noqa: BLE001 - a locked or broken token is a finding, reported as such
        return Snapshot(True, flags, problem=f"login failed: {type(exc).__name__}")
    try:
        described = sorted(_describe(obj) for obj in session.get_objects({}))
    finally:
        session.close()
    ours = sum(1 for d in described if d[1].startswith(LABEL_PREFIX))
    digest = hashlib.sha256(repr(described).encode()).hexdigest()
    return Snapshot(True, flags, len(described), digest, ours)


def sweep(lib: Any, label: str | None, uri: str | None, pin: str, prefix: str = LABEL_PREFIX) -> int:
    """Find the token again and sweep it (sweep_token), by default of any run's leftovers."""
    from .tokens import find_token

    return sweep_token(find_token(lib, label, uri), pin, prefix=prefix)


def sweep_token(token: Any, pin: str, *, labels: set[str] | None = None, prefix: str | None = None) -> int:
    """Destroy the harness's objects on the token: those with one of `labels`, else those whose label starts with
    `prefix` — any run's (leftovers of a crashed or killed run, or of a module that keeps session objects) or, by
    default, this run's (labels.run_prefix()). Returns how many."""
    from ..labels import run_prefix
    from .tokens import open_for_setup

    start = prefix or run_prefix()
    session = open_for_setup(token, pin)
    try:
        doomed = [obj for obj in session.get_objects({})
                  if (_label(obj) in labels if labels is not None else _label(obj).startswith(start))]
        for obj in doomed:
            obj.destroy()
        return len(doomed)
    finally:
        session.close()


def _label(obj: Any) -> str:
    from pkcs11.constants import Attribute

    try:
        return str(obj[Attribute.LABEL])
    except Exception:  # noqa: BLE001 - objects without a readable label are not ours
        return ""


def _describe(obj: Any) -> tuple[str, str, str]:
    from pkcs11.constants import Attribute

    def read(attr: Any) -> str:
        try:
            value = obj[attr]
        except Exception:  # noqa: BLE001
            return "?"
        return value.hex() if isinstance(value, bytes) else str(value)

    return (read(Attribute.CLASS), _label(obj), read(Attribute.ID))
