"""The protocol between the pytest process and the module's process (conformance/executor/protocol.py): every
command and answer round-trips through its JSON line, and the PIN never shows in a repr."""

from __future__ import annotations

import dataclasses
import json
import inspect

import pytest

from conformance.engine.schedule import Schedule, Step, StepResult
from conformance.executor import answers, messages
from conformance.engine.params import Characterisation, Finding
from conformance.executor.protocol import (
    Broken, Characterise, Characterised,
    ANSWERS, COMMANDS, AppAnswer, AppStep, CallsJudged, CallStress, Capabilities, CheckAnswer, ChildInit, Failed, Floor, Limits,
    JudgeCalls, Latency, LoginCheck, LoginChecked, LoginRounds, LoginRoundsAnswer, MeasureFloor, MeasureLatency, Measured, ProbeCapabilities, ProviderStress, Quit,
    Ready, RunCheck, RunSchedule, ScheduleDone, ScheduleHung, Snapshotted, Stalled, StepEvent, StressAnswer, SutCheck,
    SutChecked, Sweep, Swept, TakeSnapshot, Wire, decode_answer, decode_command, encode_answer, encode_command,
)

INIT = ChildInit(name="softhsm", module="/lib/tap.so", module_shown="/lib/softhsm.so", real_module="/lib/softhsm.so",
                 ground_truth="/lib/tap.so", env={"SOFTHSM2_CONF": "/tmp/c"}, token_label="t", token_uri=None,
                 pin="s3cret-pin", sut="conformance.refsession:reference_session", sys_path=("/a", "/b"),
                 evidence="/lib/tap.so", capabilities={"hmac_sign": "the token does not list SHA256_HMAC"})
SCHEDULE = Schedule("operations", 2, (Step(0, "open", {"ref": "s0", "login": False}),
                                      Step(1, "search", {"ref": "it0", "session": "s0", "batch": 2}, True, (0,))))
COMMAND_EXAMPLES: list[Wire] = [
    INIT,
    RunCheck("conformance.checks.test_login", "test_x", ("vendor", "observe", "size"), Limits(0.05, 3.0),
             {"size": 128}, deadline_s=120.0),
    RunSchedule(SCHEDULE, Limits(0.05, 1.0, 30.0)),
    ProviderStress(threads=4, iterations=150, uses=("digest", "search")),
    CallStress(threads=4, iterations=300, calls=("keygen", "random"), shared=True),
    LoginRounds(rounds=20, start_at=1234.5),
    AppStep("close"),
    TakeSnapshot(),
    Sweep("pkcs11-conformance-abc"),
    Sweep(),
    SutCheck(),
    ProbeCapabilities(),
    ProbeCapabilities(only=("hmac_sign",)),
    Characterise(),
    LoginCheck(),
    MeasureFloor(100),
    JudgeCalls(),
    MeasureLatency(2),
    Quit(),
]
ANSWER_EXAMPLES: list[Wire] = [
    Ready(4242, {"library": {"version": "2.6"}, "mechanisms": 3}),
    Failed("TokenNotFound", "no token matches label 't'"),
    Broken("KeyError: 'x' (at conformance/executor/actions.py:1: w.sessions[ref])"),
    Characterised(Characterisation({"concurrent_searches": Finding(False, "a second search was refused"),
                                    "failed_login_leaks_session": Finding(None, "not reached: a second login is accepted")})),
    CheckAnswer("failed", "AssertionError: x", "test_login.py:3: assert x", {"seen": [1, None]}, True, ""),
    CheckAnswer("passed", observed=None, has_observed=True),
    CheckAnswer("passed", restart=True),
    StepEvent(StepResult(3, "raised", "OperationActive", None, 12.5, None, ("RuntimeError",))),
    StepEvent(StepResult(4, "blocked", evidence="tap: no PKCS#11 call in 0.05 s, outside the module (waiting above it)")),
    ScheduleDone({"alive_refs": ["s0"], "leaked": 0}, 250.0, 1200.5, restart=True),
    ScheduleHung(2, "Thread 0x1 (most recent call first): ..."),
    ScheduleHung(1, "...", "tap: inside C_FindObjects for 2.0 s without returning", "C_FindObjects"),
    Stalled(("MainThread: inside C_SeedRandom for 3.0 s", "actor0: outside the module (4 calls made)"), "C_SeedRandom"),
    CheckAnswer("hung", "the check did not finish in 3 s", stacks="...", inside="C_SeedRandom"),
    CallsJudged(12, "module: C_FindObjectsFinal returned CKR_OK, then C_FindObjectsInit got CKR_OPERATION_ACTIVE",
                "PKCS#11 v3.0 §5.7.7", complete=False),
    CallsJudged(0, unavailable="no tap in front of the module"),
    StressAnswer("failed", ("thread 1, round 3: use('digest') raised GeneralError",), open_calls=2, operations=600,
                 elapsed_s=0.4),
    StressAnswer("hung", cause="unresponsive", restart=True, stacks="..."),
    Snapshotted({"present": True, "flags": ["LOGIN_REQUIRED"], "objects": 3, "digest": "ab", "ours": 0,
                 "problem": ""}),
    Swept(2),
    SutChecked("--sut='x:y': the factory raised ValueError"),
    SutChecked(),
    Capabilities({"aes_keygen": "the token does not list AES_KEY_GEN"}),
    LoginChecked("wrong_pin"),
    LoginChecked("other", "GeneralError"),
    LoginRoundsAnswer(7, "GeneralError", 0.123, (1.5, 1.75, 2.0, 2.25)),
    AppAnswer("RW_USER_FUNCTIONS"),
    Floor(6.5),
    Measured(Latency((1.5, 1.4), (0.02,), (0.021,), (0.06, 0.061))),
]


@pytest.mark.parametrize("command", COMMAND_EXAMPLES, ids=lambda c: type(c).__name__)
def test_commands_round_trip_through_their_json_line(command: Wire) -> None:
    """decode_command(encode_command(c)) == c, for every command (and the table knows its name)."""
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize("answer", ANSWER_EXAMPLES, ids=lambda a: type(a).__name__)
def test_answers_round_trip_through_their_json_line(answer: Wire) -> None:
    """decode_answer(encode_answer(a)) == a, for every answer."""
    assert decode_answer(encode_answer(answer)) == answer


def test_every_message_class_is_in_a_table_and_has_an_example() -> None:
    """No message class is left out of COMMANDS / ANSWERS, and each has a round-trip example above."""
    classes = {c for module in (messages, answers) for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Wire) and c is not Wire and dataclasses.is_dataclass(c) and hasattr(c, "NAME")}
    assert classes == set(COMMANDS.values()) | set(ANSWERS.values())
    assert set(COMMANDS.values()) == {type(c) for c in COMMAND_EXAMPLES}
    assert set(ANSWERS.values()) == {type(a) for a in ANSWER_EXAMPLES}


def test_messages_are_frozen() -> None:
    """Commands and answers are frozen dataclasses: what was sent is what was meant."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        INIT.pin = "other"  # type: ignore[misc]


def test_the_pin_is_not_in_the_init_repr() -> None:
    """ChildInit carries the PIN to the child's stdin; its repr (tracebacks, logs) never shows it."""
    assert "s3cret-pin" not in repr(INIT)
    assert "s3cret-pin" in encode_command(INIT)  # it does travel, on stdin only


def test_preflight_request_and_answer_round_trip() -> None:
    """The preflight child's command line and its one line of answer round-trip (vendor/preflight.py)."""
    from conformance.vendor.preflight import PreflightAnswer, PreflightRequest

    for request in (PreflightRequest("/p/softhsm.toml", "/w/softhsm"),
                    PreflightRequest("/p/x.toml", "/w/x", trace=True, post=True, sut="pool:make")):
        assert PreflightRequest.from_argv(request.to_argv()) == request
    for answer in (PreflightAnswer({"library": {"version": "2.6"}}), PreflightAnswer(error="x: module not found")):
        assert PreflightAnswer.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer
