"""The model's vocabulary as data: what python-pkcs11 0.10.1's calls do to the session lock and the module's
operations, what the module may do when operations overlap, the expectation type, and the state records the
model keeps per session and iterator. The per-operation tables that use them are in semantics.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .params import OK
from .schedule import Step

# The world every schedule starts in, shared with the executor that builds it (executor/actions.py): the fixture
# session's public data objects that every search finds, and the chunks the crypto generators are fed.
FIXTURE_OBJECTS = 4
CHUNKS = (b"a" * 32, b"b" * 32, b"c" * 32)  # AES-CBC-PAD encrypt generator input: 3 updates + final = 4 yields
# AES-CBC (no padding) decrypts any whole blocks, so a decrypt generator needs no ciphertext made first (which
# would be one more call on the session's lock at the generator's creation): 3 updates + final = 4 yields.
CIPHER_CHUNKS = (bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 112)))
MAC_DATA = b"conformance"  # what sign and verify steps sign (SHA256-HMAC, compared with Python's hmac)

BLOCKED = "blocked"
INVALID = frozenset({"raises:SessionHandleInvalid", "raises:SessionClosed"})


@dataclass(frozen=True)
class Generator:
    """A chunked crypto operation python-pkcs11 runs as a generator: how many items it yields, and the ModelParams
    fields that say when it releases the session lock and what collecting it unfinished leaves (measured per kind
    at the start of the run: live/characterise.py)."""

    items: int
    releases_at_last_item: str
    collected_keeps_operation: str


GENERATORS = {
    "encrypt": Generator(len(CHUNKS) + 1, "generator_releases_at_last_item", "collected_generator_keeps_operation"),
    "decrypt": Generator(len(CIPHER_CHUNKS) + 1, "decrypt_generator_releases_at_last_item",
                         "collected_decrypt_generator_keeps_operation"),
}
# Yields until StopIteration. python-pkcs11 (0.9 and later) ends a crypto generator's operation (C_*Final, lock
# release) while producing its last item; a search ends only at the next() that finds nothing more.
ITEMS = {"search": FIXTURE_OBJECTS, **{kind: g.items for kind, g in GENERATORS.items()}}
# Operations on a key -> which of the session's keys: python-pkcs11 reads the key's type (C_GetAttributeValue)
# before it takes the lock — only the first time, Key.key_type is a cached_property — so on a closed session such
# a first use fails at once instead of waiting for the lock.
KEYED = {"encrypt": "aes", "decrypt": "aes", "sign": "mac", "verify": "mac"}


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
    "decrypt": Call(True, "decrypt"),
    # SHA256-HMAC; the value: the signature equals Python's hmac under the key's CKA_VALUE. (python-pkcs11's
    # multi-part sign is no generator either: it takes the lock, feeds the iterable and signs in one call.)
    "sign": Call(True, "sign", True),
    "verify": Call(True, "verify", True),  # verify returns True: the MAC is Python's hmac of the data
    "find_all": Call(True, "search", FIXTURE_OBJECTS),
    "random": Call(False, None),
}
# The provider's use(WHAT) steps: the one-shot call each makes on the held session (a *_gen generator is drained
# inside the step, so to the lock it is one call), returning that call's value; None: no module operation at all,
# only an attribute read, which returns USE_VALUES[WHAT].
USE = {"digest": "digest", "encrypt": "encrypt", "encrypt_gen": "encrypt", "decrypt_gen": "decrypt", "sign": "sign",
       "search": "find_all", "random": "random", "attribute": None}
USE_VALUES = {"attribute": True}


@dataclass(frozen=True)
class Overlap:
    """What the module may answer when an operation starts while another is active on its session: the
    ModelParams field holding the outcomes that pass (None: the spec leaves one answer, OperationActive), the name
    the observed answer is recorded under, and the rule cited."""

    rule: str
    param: str | None = None
    point: str | None = None


CRYPTO = ("digest", "encrypt", "decrypt", "sign", "verify")
# UG §4.1: "those two operations must be one of the four following pairs" (with CKF_DUAL_CRYPTO_OPERATIONS).
DUAL_PAIRS = frozenset({frozenset({"digest", "encrypt"}), frozenset({"decrypt", "digest"}),
                        frozenset({"sign", "encrypt"}), frozenset({"decrypt", "verify"})})
COMBINATION_RULE = "v3.0 §5.1.6: the module decides which combination of active operations prevents a new one"
RANDOM_RULE = "UG §2.6.7: random generation while an operation is active"
SAME_RULE = "UG §4.1: at most one operation of each kind per session"
DUAL_RULE = "UG §4.1: a dual-function pair, where the token supports dual-function operations"
# Measured (operation.second_operation_during_generator): OpenCryptoki runs encryption and decryption at once.
OTHER_RULE = ("v3.0 §5.1.6 CKR_OPERATION_ACTIVE: the module decides which combinations of active operations "
              "prevent a new one (not one of UG §4.1's dual-function pairs)")


def _overlap(kind: str | None, active: str) -> Overlap:
    if kind is None:
        return Overlap(RANDOM_RULE, "random_during_operation", "random_during_operation")
    if kind == active:
        return Overlap("v3.0 §5.7.7: at most one search operation per session" if kind == "search" else SAME_RULE)
    if active == "search":
        return Overlap("UG §2.6.7: crypto operation while a search is active", "crypto_during_search",
                       "crypto_during_search")
    if kind == "search":
        return Overlap("UG §2.6.7: search while a crypto operation is active", "search_during_crypto",
                       "search_during_crypto")
    if frozenset({kind, active}) in DUAL_PAIRS:
        return Overlap(DUAL_RULE, "dual_function_pair", f"{kind}_during_{active}")
    return Overlap(OTHER_RULE, "other_crypto_pair", f"{kind}_during_{active}")


# (the kind starting, None for C_GenerateRandom; a kind active on its session) -> what the module may answer.
# Only searches and generators stay active between steps; with nothing active every start is plainly ok.
CONCURRENT: dict[tuple[str | None, str], Overlap] = {
    (kind, active): _overlap(kind, active) for kind in (None, "search", *CRYPTO) for active in ("search", *GENERATORS)}


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
    keys_typed: set[str] = field(default_factory=set)  # the session's keys (KEYED) whose type python-pkcs11 read
    # and cached (Key.key_type)
    stuck: bool = False


@dataclass
class IterM:
    ref: str
    kind: str
    session: str
    started: bool = False
    done: bool = False
    batch: int = 10  # search: handles fetched per C_FindObjects call
    remaining: int = 0  # crypto generators: items not yet yielded
    buffered: int = 0  # search: handles fetched already, yielded without calling C_FindObjects
    owner: int | None = None


@dataclass
class Waiter:
    index: int
    actor: int
    step: Step
