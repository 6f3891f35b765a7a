"""Turning a list of steps into an executable schedule: the model annotates each step with the executor's timing
hints (expect_block; which earlier blocked steps it releases). Used by the hypothesis strategies step by step,
and by scripted checks for a fixed list of steps."""

from __future__ import annotations

from typing import Iterable

from .families import Family
from .model import BLOCKED, Expectation
from .params import ModelParams
from .schedule import Schedule, Step


def predicted(exp: Expectation) -> str:
    """The outcome planning assumes. When the module may accept or refuse, assume it accepts ("ok" sorts first):
    that can only make the executor wait a block window too many, never mistake a real block for a hang."""
    if exp.blocks:
        return BLOCKED
    return "ok" if exp.allowed is None else sorted(exp.allowed)[0]


class Planner:
    def __init__(self, family: Family, params: ModelParams) -> None:
        self.family = family
        self.model = family.new_model(params)
        self.steps: list[Step] = []

    def add(self, step: Step) -> Step:
        index = len(self.steps)
        exp = self.model.expect(step.actor, step)
        resumed = self.model.advance(index, step.actor, step, predicted(exp))
        unblocks: list[int] = []
        while resumed:
            j, actor, waiting, exp_j = resumed.pop(0)
            unblocks.append(j)
            resumed += self.model.advance(j, actor, waiting, predicted(exp_j))
        planned = Step(step.actor, step.op, step.args, expect_block=exp.blocks, unblocks=tuple(unblocks))
        self.steps.append(planned)
        return planned

    def schedule(self, actors: int | None = None) -> Schedule:
        n = actors if actors is not None else max((s.actor for s in self.steps), default=0) + 1
        return Schedule(self.family.name, n, tuple(self.steps))


def plan(family: Family, params: ModelParams, steps: Iterable[Step]) -> Schedule:
    planner = Planner(family, params)
    for step in steps:
        planner.add(step)
    return planner.schedule()
