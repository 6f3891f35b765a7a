"""A drawn schedule's reproduction: the steps with what each must give, worked out here by the harness's model
(engine/) for this setup — its measured parameters, and for an implementation-defined point the answer the run saw
— and written into the script as plain data beside runtime/schedule.py, which replays them with python-pkcs11
alone. The path predicted is the one the run took up to the deviation; the script stops at the first step that
differs from it."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Mapping

from ..engine.families import FAMILIES
from ..engine.model import BLOCKED, Expectation, Model
from ..engine.params import Characterisation, ModelParams, OK
from ..engine.schedule import Schedule
from ..live.capabilities import unsupported_steps


def params_of(vendor: Mapping[str, Any]) -> ModelParams:
    """The model's parameters as the run set them for this vendor (plugin/drivers.py): measured, then capabilities."""
    measured = Characterisation.from_dict(vendor.get("characterised") or {})
    missing = vendor.get("capabilities_missing") or {}
    return ModelParams().declare(measured.settings()).declare([("unsupported_steps", unsupported_steps(missing))])


def expected_steps(schedule: Schedule, params: ModelParams, observed: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each step as the script runs it: op, args, its program line, whether it waits on the lock, the outcomes
    that pass (None: any), the rule cited, and the waiters it frees (with theirs)."""
    model: Model = FAMILIES[schedule.family].new_model(params)
    points = {k: v for k, v in (observed or {}).items() if isinstance(v, list)}
    out = []
    for index, step in enumerate(schedule.steps):
        exp = model.expect(step.actor, step)
        entry: dict[str, Any] = {"actor": step.actor, "op": step.op, "args": dict(step.args),
                                 "line": step.program_line().split(": ", 1)[1].split("   #")[0],
                                 "blocks": exp.blocks, "allowed": _allowed(exp), "rule": exp.rule, "resumes": []}
        queue = list(model.advance(index, step.actor, step, BLOCKED if exp.blocks else _taken(exp, points)))
        while queue:
            j, actor, waiter, now = queue.pop(0)
            entry["resumes"].append({"step": j, "allowed": _allowed(now), "rule": now.rule})
            queue += model.advance(j, actor, waiter, _taken(now, points))
        out.append(entry)
    return out


def _allowed(exp: Expectation) -> list[str] | None:
    return None if exp.allowed is None else sorted(exp.allowed)


def _taken(exp: Expectation, points: Mapping[str, list[str]]) -> str:
    """The outcome the prediction goes on with: the one the run saw at an implementation-defined point, else the
    only one (or the first) allowed."""
    if exp.allowed is None:
        return OK
    seen = {a for o in points.get(exp.point or "", []) for a in exp.allowed if a == o or (o == OK and a.startswith(OK))}
    if len(seen) == 1:
        return seen.pop()
    return sorted(exp.allowed)[0]


def body(schedule: Schedule, params: ModelParams, observed: Any, reason: str) -> str:
    """The recipe text for the script: a docstring (the minimal schedule and what the run saw), the data, the
    runtime."""
    steps = expected_steps(schedule, params, observed if isinstance(observed, dict) else None)
    family = FAMILIES[schedule.family]
    runtime = resources.files(__package__).joinpath("runtime", "schedule.py").read_text(encoding="utf-8")
    doc, code = runtime.split('"""', 2)[1:]
    program = "\n".join(f"    {line}" for line in schedule.program().splitlines())
    what = (f"The minimal schedule the run drew ({schedule.family}, {schedule.actors} actors):\n\n{program}\n\n"
            f"What the run saw: {reason.strip().splitlines()[0] if reason.strip() else '(no reason recorded)'}\n\n"
            + doc.strip())
    data = (f"\n\nSTEPS = json.loads({json.dumps(json.dumps(steps))})\nACTORS = {schedule.actors}\n"
            f"FIXTURE = {family.fixture!r}\nLOGGED_IN = {family.logged_in!r}\n")
    return f'"""{what}"""\n\nimport json\n' + code.lstrip("\n").replace("\n\n\nclass RefGone", data + "\n\nclass RefGone", 1)
