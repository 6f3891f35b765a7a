"""The model's vocabulary as data: what python-pkcs11 0.10.1's calls do to the session lock and the module's
operations, what the module may do when operations overlap, the expectation type, and the state records the
model keeps per session and iterator. The per-operation tables that use them are in semantics.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .params import OK
from .schedule import Step

# The world every schedule starts in, shared with the executor that builds it (executor/actions.py): the fixture
# session's public data objects that every search finds, and the chunks an encrypt generator is fed.
FIXTURE_OBJECTS = 4
CHUNKS = (b"a" * 32, b"b" * 32, b"c" * 32)  # AES-CBC-PAD generator input: 3 updates + final = 4 yields

BLOCKED = "blocked"
INVALID = frozenset({"raises:SessionHandleInvalid", "raises:SessionClosed"})
ITEMS = {"search": FIXTURE_OBJECTS, "encrypt": len(CHUNKS) + 1}  # yields until StopIteration
# python-pkcs11 0.10.1 ends an encrypt generator's operation (C_EncryptFinal, lock release) while producing its
# last item; a search ends only at the next() that finds nothing more.
ENDS_WITH_LAST_ITEM = {"encrypt"}
# Operations on a key: python-pkcs11 reads the key's type (C_GetAttributeValue) before it takes the lock — only
# the first time, Key.key_type is a cached_property — so on a closed session such a first use fails at once
# instead of waiting for the lock.
KEYED = {"encrypt"}


@dataclass(frozen=True)
class Call:
    """A call that starts a module operation (a one-shot call below, or a generator's first next/consume):
    whether it takes python-pkcs11's per-session operation lock (0.10.1: every OperationContext), the operation
    it runs (None: C_GenerateRandom, no operation), and the value its success returns (None: none judged).
    The lock is what makes a second thread block; the kind is what the module sees."""

    locks: bool
    kind: str | None
    value: Any = None


ONE_SHOT = {
    "digest": Call(True, "digest"),
    "encrypt": Call(True, "encrypt"),
    "find_all": Call(True, "search", FIXTURE_OBJECTS),
    "random": Call(False, None),
}
# The provider's use(WHAT) steps: the one-shot call each makes on the held session (encrypt_gen's generator is
# drained inside the step, so to the lock it is one encrypt), returning that call's value; None: no module
# operation at all, only an attribute read, which returns USE_VALUES[WHAT].
USE = {"digest": "digest", "encrypt": "encrypt", "encrypt_gen": "encrypt", "search": "find_all",
       "random": "random", "attribute": None}
USE_VALUES = {"attribute": True}

# What the module may answer when an operation starts while another is active on its session, keyed by (the
# kind starting, None for C_GenerateRandom; whether a search is among the active ones): the implementation-
# defined point it characterises (the ModelParams field of that name holds the outcomes that pass), or None
# where the spec leaves one answer, OperationActive. With nothing active every start is plainly ok.
CONCURRENT: dict[tuple[str | None, bool], tuple[str | None, str]] = {
    (None, False): ("random_during_operation", "UG §2.6.7: random generation while an operation is active"),
    (None, True): ("random_during_operation", "UG §2.6.7: random generation while an operation is active"),
    ("search", True): (None, "v3.0 §5.7.7: at most one search operation per session"),
    ("search", False): ("search_during_crypto", "UG §2.6.7: search while a crypto operation is active"),
    ("digest", True): ("crypto_during_search", "UG §2.6.7: crypto operation while a search is active"),
    ("encrypt", True): ("crypto_during_search", "UG §2.6.7: crypto operation while a search is active"),
    ("digest", False): ("digest_during_encrypt", "UG §4.1: digest with encryption only with dual-function support"),
    ("encrypt", False): (None, "UG §4.1: one encryption operation per session"),
}


@dataclass(frozen=True)
class Expectation:
    allowed: frozenset[str] | None  # None: anything goes (the schedule lost track of a ref after a divergence)
    layer: str
    rule: str
    point: str | None = None  # name of the implementation-defined point this characterises, if any

    @property
    def blocks(self) -> bool:
        return self.allowed == frozenset({BLOCKED})

    def with_value(self, value: Any) -> Expectation:
        """The same expectation with its plain "ok" returning `value` ("ok:VALUE"); None: unchanged."""
        if value is None or self.allowed is None:
            return self
        return Expectation(frozenset(f"{o}:{value}" if o == OK else o for o in self.allowed), self.layer, self.rule,
                           self.point)


def _one(outcome: str, layer: str, rule: str) -> Expectation:
    return Expectation(frozenset({outcome}), layer, rule)


ANY = Expectation(None, "harness", "step refers to a ref that no longer exists in the real run")
LOCK_RULE = "python-pkcs11 docs, Concurrency: the session lock is held until the iterator is consumed or collected"


@dataclass
class SessionM:
    ref: str
    open: bool = True
    login_via: bool = False
    lock_owner: int | None = None
    lock_depth: int = 0
    ops: dict[str, str] = field(default_factory=dict)  # module operation kind -> iterator that started it
    search_unfetched: int = 0  # objects the module's active search has not handed out yet
    key_typed: bool = False  # the session's key has had its type read (python-pkcs11 caches Key.key_type)
    stuck: bool = False


@dataclass
class IterM:
    ref: str
    kind: str
    session: str
    started: bool = False
    done: bool = False
    batch: int = 10  # search: handles fetched per C_FindObjects call
    remaining: int = 0  # encrypt: items not yet yielded
    buffered: int = 0  # search: handles fetched already, yielded without calling C_FindObjects
    owner: int | None = None


@dataclass
class Waiter:
    index: int
    actor: int
    step: Step
