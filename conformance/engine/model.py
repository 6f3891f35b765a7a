"""The model: what each step should do, from the PKCS#11 spec, python-pkcs11's documented contract and the
declared parameters — state plus tables, so a prediction can be read off rather than followed through if-chains.
Here: the dispatch. The state and the queries the strategies use are state.py's ModelState; each operation's
prediction and transition is its row of semantics.OPS; the data they read is in vocabulary.py.

The same model serves twice: while hypothesis draws a schedule (advanced with the predicted outcome, to know
which actors can run and which calls will block) and while a trace is judged (advanced with the actual outcome,
so one allowed implementation-defined choice does not derail every later prediction).
"""

from __future__ import annotations

from .schedule import Step
from .semantics import OPS
from .state import ModelState
from .vocabulary import ANY, BLOCKED, INVALID, LOCK_RULE, Expectation, Waiter

__all__ = ["ANY", "BLOCKED", "INVALID", "LOCK_RULE", "Expectation", "Model"]


class Model(ModelState):
    # --- predictions and transitions: semantics.OPS, by op --------------------------------------------------

    def expect(self, actor: int, step: Step) -> Expectation:
        spec = OPS.get(step.op)
        return ANY if spec is None else spec.predict(self, actor, step)

    def advance(self, index: int, actor: int, step: Step, outcome: str) -> list[tuple[int, int, Step, Expectation]]:
        """Apply a step's outcome; returns the waiters it resumed (index, actor, step, their expectation now).

        The caller must advance each resumed waiter with its own outcome in turn.
        """
        spec = OPS.get(step.op)
        if spec is not None and spec.reads_key is not None:
            read = spec.reads_key(self, step)
            if read is not None and read[0].open:  # read (and cached) even if the call then blocks or fails
                read[0].keys_typed.add(read[1])
        if outcome == BLOCKED:
            target = self.lock_target(actor, step)
            if target is not None:
                self.waiters[target] = Waiter(index, actor, step)
            return []
        released = spec.apply(self, actor, step, outcome) if spec is not None else []
        return self._resume(released)

    def _resume(self, sessions: list[str]) -> list[tuple[int, int, Step, Expectation]]:
        resumed = []
        for ref in sessions:
            waiter = self.waiters.pop(ref, None)
            if waiter is not None:
                resumed.append((waiter.index, waiter.actor, waiter.step, self.expect(waiter.actor, waiter.step)))
        return resumed
