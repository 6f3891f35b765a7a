"""The protocol between the pytest process and the module's process: every command and every answer as a frozen
dataclass, one JSON object per line (commands carry `cmd`, answers `event`), decoded through the tables below; the classes are in messages.py (commands) and answers.py.

Outcomes are named the same everywhere: an answer about a check, a stress run or an application step has an
`outcome` (passed, failed, skipped, error, crashed, hung, or what the step did); a schedule's steps keep their own
vocabulary (schedule.STATUSES).
"""

from __future__ import annotations

import json

from .answers import (
    AppAnswer, Broken, CallsJudged, Capabilities, Characterised, CheckAnswer, Failed, Floor, LoginChecked, LoginRoundsAnswer, Measured, Ready,
    ScheduleDone, ScheduleHung, Snapshotted, Stalled, StepEvent, StressAnswer, SutChecked, Swept,
)
from .messages import (
    AppStep, CallStress, Characterise, ChildInit, JudgeCalls, Latency, Limits, LoginCheck, LoginRounds, MeasureFloor, MeasureLatency,
    ProbeCapabilities, ProviderStress, Quit, RunCheck, RunSchedule, SutCheck, Sweep, TakeSnapshot,
)
from .wire import Wire

__all__ = [
    "ANSWERS", "COMMANDS", "AppAnswer", "AppStep", "Broken", "Characterise", "Characterised", "CallStress", "CallsJudged", "Capabilities", "CheckAnswer", "ChildInit", "Failed",
    "Floor", "JudgeCalls", "Latency", "Limits", "LoginCheck", "LoginChecked", "LoginRounds", "LoginRoundsAnswer", "MeasureFloor",
    "MeasureLatency", "Measured", "ProbeCapabilities", "ProviderStress", "Quit", "Ready", "RunCheck", "RunSchedule",
    "ScheduleDone", "ScheduleHung", "Snapshotted", "Stalled", "StepEvent", "StressAnswer", "SutCheck", "SutChecked", "Sweep",
    "Swept", "TakeSnapshot", "Wire", "decode_answer", "decode_command", "encode_answer", "encode_command",
]

COMMANDS: dict[str, type[Wire]] = {c.NAME: c for c in (
    ChildInit, RunCheck, RunSchedule, ProviderStress, CallStress, LoginRounds, AppStep, TakeSnapshot, Sweep,
    SutCheck, ProbeCapabilities, Characterise, LoginCheck, MeasureLatency, MeasureFloor, JudgeCalls, Quit)}
ANSWERS: dict[str, type[Wire]] = {a.NAME: a for a in (
    Ready, Broken, Failed, CheckAnswer, StepEvent, ScheduleDone, ScheduleHung, StressAnswer, Snapshotted, Swept, SutChecked,
    Capabilities, Characterised, LoginChecked, LoginRoundsAnswer, AppAnswer, Measured, Floor, Stalled, CallsJudged)}


def encode_command(command: Wire) -> str:
    return json.dumps({"cmd": command.NAME, **command.to_dict()})


def encode_answer(answer: Wire) -> str:
    return json.dumps({"event": answer.NAME, **answer.to_dict()})


def decode_command(line: str) -> Wire:
    data = json.loads(line)
    return COMMANDS[data.pop("cmd")].from_dict(data)


def decode_answer(line: str) -> Wire:
    data = json.loads(line)
    return ANSWERS[data.pop("event")].from_dict(data)
