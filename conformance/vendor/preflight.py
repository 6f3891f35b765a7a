"""Preflight: bring a vendor up once in a child process before any check runs.

The controller learns, without loading any module itself, whether each vendor is usable (module loads, token
found, PIN right) and what library and token it is — a crash or hang here costs the child, not the run.
Run as: python -m conformance.vendor.preflight PROFILE.toml WORKDIR [--call-trace] [--postflight] [--sut=M:F]
→ one JSON line on stdout (PreflightAnswer).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..executor.parent import child_env
from ..executor.timing import Explicit
from ..pins import redact, redact_data
from .profile import VendorProfile
from .sharing import taking_turns

TIMEOUT_S = 60.0


class PreflightFailed(RuntimeError):
    """One line naming the fix."""


@dataclass(frozen=True)
class PreflightRequest:
    """What the preflight child is asked, as its command line (readable when run by hand)."""

    profile: str  # the profile file
    workdir: str
    trace: bool = False  # wrap the module in pkcs11-spy (--call-trace)
    post: bool = False  # the end of the run: sweep this run's leftovers, snapshot the token again
    sut: str = ""
    explicit: Explicit = Explicit()  # waits the command line fixed (the recorded timing shows them)

    def to_argv(self) -> list[str]:
        waits = [f"--{k.replace('_', '-')}={v!r}" for k, v in vars(self.explicit).items() if v is not None]
        return [self.profile, self.workdir, *(["--call-trace"] if self.trace else []),
                *(["--postflight"] if self.post else []), *([f"--sut={self.sut}"] if self.sut else []), *waits]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> PreflightRequest:
        values = dict(f[2:].split("=", 1) for f in argv[2:] if "=" in f)
        waits = {k: float(values[k.replace("_", "-")]) for k in vars(Explicit()) if k.replace("_", "-") in values}
        return cls(argv[0], argv[1], "--call-trace" in argv[2:], "--postflight" in argv[2:], values.get("sut", ""),
                   Explicit(**waits))


@dataclass(frozen=True)
class PreflightAnswer:
    """The preflight child's one line on stdout: the vendor's facts (PINs redacted), or why it cannot run."""

    facts: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error} if self.error is not None else {"facts": dict(self.facts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreflightAnswer:
        return cls(dict(data.get("facts", {})), data.get("error"))


def run(profile: VendorProfile, workdir: Path, timeout: float = TIMEOUT_S, *, trace: bool = False,
        post: bool = False, sut: str = "", explicit: Explicit = Explicit()) -> dict[str, Any]:
    """Vendor facts for the results JSON; PreflightFailed if the vendor cannot run. Scratch files go in workdir."""
    # The child must import this very package, installed or not, and the --sut module as pytest did: sys.path.
    env = child_env(paths=[p for p in sys.path if p])
    request = PreflightRequest(str(profile.source), str(workdir / profile.name), trace, post, sut, explicit)
    try:
        proc = subprocess.run([sys.executable, "-m", "conformance.vendor.preflight", *request.to_argv()],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PreflightFailed(f"{profile.name}: bringing the module up took over {timeout:.0f} s; "
                              "check the module's daemon or device") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise PreflightFailed(f"{profile.name}: the module crashed the process ({name}) while loading; "
                              "check the module and its configuration")
    try:
        answer = PreflightAnswer.from_dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError, AttributeError):
        tail = redact(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}", profile.pin_values())
        raise PreflightFailed(f"{profile.name}: preflight failed ({tail}); run `pkcs11-conformance vendors`") from None
    if answer.error is not None:
        raise PreflightFailed(answer.error)
    return dict(answer.facts)


def _child(request: PreflightRequest) -> int:
    from .profile import ProfileError, load_profile

    try:
        profile = load_profile(request.profile)
    except ProfileError as exc:
        print(json.dumps(PreflightAnswer(error=str(exc)).to_dict()))
        return 3
    with taking_turns(profile):  # another process of this run, or another run, may be on the token
        return _on_token(request, profile)


def _on_token(request: PreflightRequest, profile: VendorProfile) -> int:
    from ..executor.parent import ExecutorError
    from ..live.integrity import Snapshot
    from .runtime import VendorUnavailable, start

    try:
        runtime = start(profile, Path(request.workdir), trace=request.trace, verify_login=not request.post,
                        sut=request.sut, explicit=request.explicit)
    except VendorUnavailable as exc:
        print(json.dumps(PreflightAnswer(error=str(exc)).to_dict()))
        return 3
    post = request.post
    try:
        if post and not profile.disposable:
            # The end of the run: whatever a crashed or killed check left with the harness's label goes.
            from ..labels import run_prefix

            runtime.executor.sweep(run_prefix())  # this run's only: other runs may be live
            try:
                runtime.at_start = runtime.snapshot()
            except ExecutorError as exc:  # compared with the start: reported as a token that cannot be inspected
                runtime.at_start = Snapshot(False, problem=str(exc))
        facts = runtime.describe()
        if runtime.at_start is not None and not profile.disposable:
            # Counts, flags and a digest only: object labels of a real token never leave the child.
            moment = "after" if post else "before"
            facts = {"integrity": {moment: runtime.at_start.to_dict()}} if post else {
                **facts, "integrity": {moment: runtime.at_start.to_dict()}}
    finally:
        runtime.stop()
    facts = redact_data(json.loads(json.dumps(facts)), profile.pin_values())
    print(json.dumps(PreflightAnswer(facts).to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_child(PreflightRequest.from_argv(sys.argv[1:])))
