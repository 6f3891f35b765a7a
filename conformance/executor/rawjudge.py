"""In the module's process: the verdict of the module judged alone on its own answers (engine/rawspec.py), fed from
the tap's log after every command (ModuleHost.watched). Asked for when a check or a scenario failed at the binding
or the provider layer: a module that broke a rule on the way takes the blame."""

from __future__ import annotations

from .host import ModuleHost
from .protocol import CallsJudged, JudgeCalls


def judge_last(host: ModuleHost, command: JudgeCalls) -> CallsJudged:
    """The module judged on every call this process made up to the end of its last command (a failure's cause may
    lie in an earlier command: a lie about the login state told to an earlier check)."""
    if host.calls is None:
        return CallsJudged(0, unavailable="no tap in front of the module")
    judge = host.raw_judge
    if judge.deviation is None:
        return CallsJudged(judge.calls, complete=host.raw_complete)
    return CallsJudged(judge.calls, judge.deviation.describe(), judge.deviation.rule.spec, host.raw_complete,
                       history=judge.deviation.history)
