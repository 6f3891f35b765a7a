"""What this pytest process knows about the run, in config.stash (never module globals): the selected profiles,
the session provider, limits, replays and the vendors brought up in this process."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ..executor.timing import Explicit
from ..results.records import Reproducer
from ..sut import ProviderFactory
from ..vendor.profile import VendorProfile
from ..vendor.runtime import VendorRuntime


@dataclass
class RunState:
    """Everything this process knows about the run; lives in config.stash, never in module globals."""

    profiles: dict[str, VendorProfile]
    sut_spec: str
    sut_factory: ProviderFactory
    explicit: Explicit  # the waits the command line fixed; the rest each vendor derives from its latency
    hypothesis_profile: str
    replays: dict[str, list[Reproducer]]  # check id -> reproducers to run before exploring
    trace: bool = False
    allow_risky: bool = False
    runtimes: dict[str, VendorRuntime] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


STATE = pytest.StashKey[RunState]()
