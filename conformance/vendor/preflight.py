"""Preflight: bring a vendor up once in a child process before any check runs.

The controller learns, without loading any module itself, whether each vendor is usable (module loads, token
found, PIN right) and what library and token it is — a crash or hang here costs the child, not the run.
Run as: python -m conformance.vendor.preflight PROFILE.toml WORKDIR  → one JSON object on stdout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..executor.parent import child_env
from ..pins import redact
from .profile import VendorProfile

TIMEOUT_S = 60.0


class PreflightFailed(RuntimeError):
    """One line naming the fix."""


def run(profile: VendorProfile, workdir: Path, timeout: float = TIMEOUT_S, *, trace: bool = False,
        post: bool = False, sut: str = "") -> dict[str, Any]:
    """Vendor facts for the results JSON; PreflightFailed if the vendor cannot run. Scratch files go in workdir."""
    # The child must import this very package, installed or not, and the --sut module as pytest did: sys.path.
    env = child_env(paths=[p for p in sys.path if p])
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "conformance.vendor.preflight", str(profile.source), str(workdir / profile.name),
             *(["--call-trace"] if trace else []), *(["--postflight"] if post else []),
             *([f"--sut={sut}"] if sut else [])],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        raise PreflightFailed(f"{profile.name}: bringing the module up took over {timeout:.0f} s; "
                              "check the module's daemon or device") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise PreflightFailed(f"{profile.name}: the module crashed the process ({name}) while loading; "
                              "check the module and its configuration")
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = redact(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}", profile.pin_values())
        raise PreflightFailed(f"{profile.name}: preflight failed ({tail}); run `pkcs11-conformance vendors`") from None
    if "error" in answer:
        raise PreflightFailed(answer["error"])
    return answer


def _child(profile_path: str, workdir: str, trace: bool = False, post: bool = False, sut: str = "") -> int:
    from .profile import ProfileError, load_profile
    from ..executor.parent import ExecutorError
    from ..live.integrity import Snapshot
    from .runtime import VendorUnavailable, start

    try:
        profile = load_profile(profile_path)
        runtime = start(profile, Path(workdir), trace=trace, verify_login=not post, sut=sut)
    except (ProfileError, VendorUnavailable) as exc:
        print(json.dumps({"error": str(exc)}))
        return 3
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
    print(json.dumps(json.loads(redact(json.dumps(facts), profile.pin_values()))))
    return 0


if __name__ == "__main__":
    flags = sys.argv[3:]
    sut_spec = next((f.split("=", 1)[1] for f in flags if f.startswith("--sut=")), "")
    sys.exit(_child(sys.argv[1], sys.argv[2], "--call-trace" in flags, "--postflight" in flags, sut_spec))
