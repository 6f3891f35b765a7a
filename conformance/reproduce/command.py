"""`pkcs11-conformance reproduce RESULTS.json CHECK --vendor NAME -o FILE.py`: the result's reproduction as a
standalone script (script.py), for a scripted check from its recipe (recipes/CHECK.py). Every way the input cannot
be used is one ReproduceError line naming the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..results.document import Results
from ..results.reader import ResultsInputError, read_results
from ..results.records import Record
from ..vendor.profile import ProfileError, load_profile
from ..vendor.registry import profile_paths, search_dirs
from .script import Target, recipe, render


class ReproduceError(ValueError):
    """Input the command cannot use; the message is one line naming the fix."""


def write_reproducer(results: str, check: str, vendor: str, out: str, profile_dirs: Sequence[Path] = ()) -> str:
    """Write the script to `out`; returns a line saying what was written (and what to expect of it)."""
    try:
        doc = read_results(results, complete=False)
    except ResultsInputError as exc:
        raise ReproduceError(str(exc)) from None
    record = _record(doc, results, check, vendor)
    body = _scheduled(doc, record) if record.reproducer is not None else _recipe(record)
    if body is None:
        raise ReproduceError(
            f"no standalone script for {check} yet (a recipe in conformance/reproduce/recipes/{check}.py); "
            f"rerun it with: pytest --vendor={vendor} -k {check.rsplit('.', 1)[-1]}")
    target = _target(doc, vendor, profile_dirs)
    text = render(check=record.check, vendor=vendor, outcome=record.outcome, results=os.path.basename(results),
                  script=os.path.basename(out), version=__version__, body=body, target=target)
    try:
        Path(out).write_text(text, encoding="utf-8")
        os.chmod(out, 0o755)
    except OSError as exc:
        raise ReproduceError(f"cannot write {out} ({exc.strerror or exc}); pass a writable -o path") from None
    expect = ("exits 1 while the deviation is there" if record.outcome not in ("passed", "xpassed")
              else f"the check {record.outcome} in that run, so it should exit 0")
    return f"{out}: {record.check} on {vendor} ({record.outcome}); {expect}"


def _recipe(record: Record) -> str | None:
    """A scripted check's recipe; one that replays what the run recorded (`ACTS = None`, `EXPECTED = None`: a
    drawn greenlet schedule) gets it from the result's observed value, and none where the check passed."""
    body = recipe(record.check)
    if body is None or "ACTS = None" not in body:
        return body
    observed = record.observed if isinstance(record.observed, dict) else {}
    if "acts" not in observed:
        raise ReproduceError(f"{record.check} on {record.vendor} found no failing schedule in that run "
                             f"({record.outcome}): there is nothing to replay; name a failed result")
    return (body.replace("ACTS = None", f"ACTS = {observed['acts']!r}", 1)
            .replace("EXPECTED = None", f"EXPECTED = {observed['expected']!r}", 1))


def _scheduled(doc: Results, record: Record) -> str:
    """A drawn scenario's minimal schedule, replayed with the reference session (a --sut pool is the user's code:
    its scripts would import it, which the contract leaves out for now)."""
    from ..sut import DEFAULT_SUT
    from .scheduled import body, params_of

    sut = doc.run.sut or DEFAULT_SUT
    assert record.reproducer is not None
    schedule = record.reproducer.to_schedule()
    if schedule.family == "provider" and sut != DEFAULT_SUT:
        raise ReproduceError(f"{record.check} ran with --sut={sut}: a script replays the reference session only; "
                             f"rerun it with: pytest --vendor={record.vendor} --sut={sut} --replay=RESULTS.json")
    return body(schedule, params_of(doc.vendors[record.vendor]), record.observed, record.reason)


def _record(doc: Results, results: str, check: str, vendor: str) -> Record:
    vendors = sorted(doc.vendors)
    if vendor not in doc.vendors:
        raise ReproduceError(f"{results} has no vendor {vendor!r} (it has: {', '.join(vendors) or 'none'}); "
                             "pass one of those to --vendor")
    found = [r for r in doc.results if r.vendor == vendor and r.check == check]
    if not found:
        near = sorted({r.check for r in doc.results if r.vendor == vendor and check.split(".")[0] in r.check})[:5]
        raise ReproduceError(f"{results} has no result for {check} on {vendor}"
                             + (f" (similar: {', '.join(near)})" if near else "") + "; name a check id of that run")
    return found[0]


def _target(doc: Results, vendor: str, profile_dirs: Sequence[Path]) -> Target:
    """The module and token label from the vendor's profile; a module reached through a layer (p11-kit) is left to
    PKCS11_MODULE, with the hint where it is."""
    info = doc.vendors[vendor]
    label = str((info.get("token") or {}).get("label") or "")
    path = profile_paths(search_dirs(profile_dirs or [Path.cwd() / "vendors"])).get(vendor)
    module, via = str(info.get("module") or ""), tuple(info.get("stack") or ())
    if path is not None:
        try:
            profile = load_profile(path)
        except ProfileError:
            profile = None
        if profile is not None:
            module, via = profile.module or module, tuple(profile.via)
            label = profile.token_label or label
    via = tuple(layer for layer in via if layer != "spy")  # pkcs11-spy only traces: the module itself reproduces
    if via:
        return Target("", label, f"the run loaded {module} through {' + '.join(via)}: point PKCS11_MODULE at that "
                                 f"layer's module (e.g. p11-kit-proxy.so) configured for it")
    return Target(module, label)
