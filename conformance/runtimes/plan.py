"""What a runtime program is asked to do and what it answers: plain, frozen, serialisable data (standard library
only: the program reads it before it may import anything that patching must come before)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

GREENLET_KINDS = ("gevent", "eventlet")
KINDS = (*GREENLET_KINDS, "asyncio")
# When the program monkey-patches, relative to what python-pkcs11 captures: the binding's import, and the sessions
# (python-pkcs11 makes each session's lock with threading.RLock() when the session is made).
PATCH_POINTS = ("before_import", "after_import", "after_sessions")


@dataclass(frozen=True)
class Runtime:
    """An actor kind: greenlets of `kind` patched at `patch`, or asyncio tasks (patch None)."""

    kind: str
    patch: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown runtime kind {self.kind!r}: one of {', '.join(KINDS)}")
        if (self.kind in GREENLET_KINDS) != (self.patch in PATCH_POINTS):
            raise ValueError(f"{self.kind}: a patch point ({', '.join(PATCH_POINTS)}) is for greenlet kinds only")

    @property
    def id(self) -> str:
        """`gevent_after_import`, `asyncio`: the name in check ids."""
        return f"{self.kind}_{self.patch}" if self.patch else self.kind

    @property
    def greenlets(self) -> bool:
        return self.kind in GREENLET_KINDS

    @classmethod
    def parse(cls, name: str) -> Runtime:
        kind, _, patch = name.partition("_")
        return cls(kind, patch or None)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "patch": self.patch}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Runtime:
        return cls(str(data["kind"]), data.get("patch"))


GREENLET_RUNTIMES = tuple(Runtime(kind, patch) for kind in GREENLET_KINDS for patch in PATCH_POINTS)

# Ops an actor can be handed (program.py runs them; model.py says what each must give):
#   start  it=NAME session=N   a search of the fixture objects, its first object taken (the lock: docs, Concurrency)
#   rest   it=NAME             the rest of that search (answers how many)
#   drop   it=NAME             the last reference to it dropped and collected (the docs: lock released on GC)
#   all    session=N           a whole search in one list() (answers how many)
#   random session=N           one C_GenerateRandom (no lock)
#   keygen session=N           an RSA-2048 session key pair (a long C call); offload=True: through the runtime's
#                              threadpool (gevent's hub threadpool, eventlet.tpool)
#   burst  session=N           BURST_ACTORS actors at once (greenlets, or asyncio tasks each through to_thread),
#                              each BURST_ROUNDS whole searches (answers ok:N when every search found N)
#   hold                       asyncio only: occupy one of the default executor's threads until the job ends (so
#                              the actor's next to_thread call runs on another thread)
OPS = ("start", "rest", "drop", "all", "random", "keygen", "burst", "hold")
BURST_ACTORS, BURST_ROUNDS = 4, 10


@dataclass(frozen=True)
class Act:
    """One step: `actor` does `op` (on session `session`, or iterator `it`)."""

    actor: int
    op: str
    session: int = 0
    it: str = ""
    offload: bool = False

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}: one of {', '.join(OPS)}")

    def line(self) -> str:
        """`actor1: rest(it0)`: one line of a readable program."""
        target = self.it if self.op in ("rest", "drop") else "" if self.op == "hold" else f"s{self.session}"
        lhs = f"{self.it} = " if self.op == "start" else ""
        via = ", offload=True" if self.offload else ""
        return f"actor{self.actor}: {lhs}{self.op}({target}{via})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"actor": self.actor, "op": self.op}
        if self.op in ("rest", "drop", "start"):
            out["it"] = self.it
        if self.op not in ("rest", "drop"):
            out["session"] = self.session
        if self.offload:
            out["offload"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Act:
        return cls(int(data["actor"]), str(data["op"]), int(data.get("session", 0)), str(data.get("it", "")),
                   bool(data.get("offload", False)))


@dataclass(frozen=True)
class Job:
    """One schedule for a runtime program: `sessions` shared sessions (made by the program's main flow, logged in),
    `objects` session data objects labelled `label` on the first (what `start` and `all` find), then the acts.
    `tick`: run a ticker greenlet and report the hub's largest gap during each act. `block_s` (asyncio): how long
    an act may run before it counts as blocked (greenlets need none: a parked greenlet is seen as parked).
    `private`: the fixture's objects are private ones (the sessions share the login that may see them).
    `token_keys`: where the token makes no session key pairs, `keygen` makes a token pair (labelled `label`) and
    destroys it at once (for disposable tokens)."""

    acts: tuple[Act, ...]
    sessions: int = 1
    objects: int = 3
    label: str = ""
    tick: bool = False
    block_s: float = 0.25
    token_keys: bool = False
    private: bool = False  # the data objects private (a token that makes no public ones: tpm2)

    def program(self) -> str:
        return "\n".join(f"{i:>3}  {a.line()}" for i, a in enumerate(self.acts))

    def to_dict(self) -> dict[str, Any]:
        return {"acts": [a.to_dict() for a in self.acts], "sessions": self.sessions, "objects": self.objects,
                "label": self.label, "tick": self.tick, "block_s": self.block_s,
                "token_keys": self.token_keys, "private": self.private}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(tuple(Act.from_dict(a) for a in data["acts"]), int(data.get("sessions", 1)),
                   int(data.get("objects", 3)), str(data.get("label", "")), bool(data.get("tick", False)),
                   float(data.get("block_s", 0.25)), bool(data.get("token_keys", False)),
                   bool(data.get("private", False)))


@dataclass(frozen=True)
class Start:
    """The program's first line on stdin: where the token is, when to patch. The PIN travels beside it on stdin
    (never in argv or the environment), and never comes back."""

    runtime: Runtime
    module: str
    token_label: str

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime.to_dict(), "module": self.module, "token_label": self.token_label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Start:
        return cls(Runtime.from_dict(data["runtime"]), str(data["module"]), str(data["token_label"]))


@dataclass(frozen=True)
class ActResult:
    """What one act gave: `ok`, `ok:N` (how many objects), `raises:Name`, `blocked` (parked when the next act was
    handed out; `completed_after`: the act after which it finished, with `late` its outcome then), and for a ticked
    job the hub's largest gap during the act beside the act's own duration, and how often the ticker ran inside it."""

    index: int
    outcome: str
    completed_after: int | None = None
    late: str | None = None
    duration_ms: float = 0.0
    gap_ms: float | None = None
    ticks: int | None = None  # ticker greenlet runs while the act was in its call (0: the hub was held throughout)

    def final(self) -> str:
        """What the act came to: its outcome, or for a blocked act what it gave once it ran."""
        return self.late if self.outcome == "blocked" and self.late is not None else self.outcome

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "outcome": self.outcome, "duration_ms": round(self.duration_ms, 3)}
        if self.completed_after is not None:
            out["completed_after"] = self.completed_after
        if self.late is not None:
            out["late"] = self.late
        if self.gap_ms is not None:
            out["gap_ms"] = round(self.gap_ms, 3)
        if self.ticks is not None:
            out["ticks"] = self.ticks
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActResult:
        return cls(int(data["index"]), str(data["outcome"]), data.get("completed_after"), data.get("late"),
                   float(data.get("duration_ms", 0.0)), data.get("gap_ms"), data.get("ticks"))


@dataclass(frozen=True)
class Outcome:
    """A job's answer: each act's result in order (as far as the program got), the sessions' state afterwards
    (`after`: one whole search per session, by a fresh actor), and how the program ended: ok, crashed:SIGNAL,
    exit N, hung (no answer within the step limit: killed), or unavailable (the runtime is not installed)."""

    results: tuple[ActResult, ...] = ()
    after: tuple[str, ...] = ()
    ended: str = "ok"
    detail: str = ""
    offload_threads: int = 0  # distinct OS threads the runtime's threadpool ran offloaded acts on

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "after": list(self.after), "ended": self.ended,
                "detail": self.detail, "offload_threads": self.offload_threads}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(tuple(ActResult.from_dict(r) for r in data.get("results", ())), tuple(data.get("after", ())),
                   str(data.get("ended", "ok")), str(data.get("detail", "")), int(data.get("offload_threads", 0)))

    def finals(self) -> tuple[str, ...]:
        return tuple(r.final() for r in self.results)


