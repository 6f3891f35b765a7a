"""The model's vocabulary as data: what python-pkcs11 0.10.1's calls do to the session lock and the module's
operations, the expectation type, and the state records the model keeps per session and iterator."""

from __future__ import annotations

from dataclasses import dataclass, field

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

# Which calls take python-pkcs11's per-session operation lock (0.10.1: every OperationContext) and which
# module operation they start. The lock is what makes a second thread block; the kind is what the module sees.
ONE_SHOT = {  # op -> (takes the lock, module operation kind or None)
    "digest": (True, "digest"),
    "encrypt": (True, "encrypt"),
    "find_all": (True, "search"),
    "random": (False, None),
}
USE = {"digest": "digest", "encrypt": "encrypt", "encrypt_gen": "encrypt", "search": "find_all",
       "random": "random", "attribute": None}
USE_VALUES = {"search": FIXTURE_OBJECTS, "attribute": True}


@dataclass(frozen=True)
class Expectation:
    allowed: frozenset[str] | None  # None: anything goes (the schedule lost track of a ref after a divergence)
    layer: str
    rule: str
    point: str | None = None  # name of the implementation-defined point this characterises, if any

    @property
    def blocks(self) -> bool:
        return self.allowed == frozenset({BLOCKED})


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
