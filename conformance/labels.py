"""The labels of every object the harness makes: `pkcs11-conformance-<run tag>-<what>`.

The prefix lets a sweep find leftovers of any earlier run (a killed run, a module that keeps session objects);
the run tag lets the end of a run remove only its own objects on a token other runs may be using. The tag is
chosen once per run on the controller and inherited through the environment by xdist workers and executor
children (which start after it is set)."""

from __future__ import annotations

import os
import uuid

PREFIX = "pkcs11-conformance"
RUN_TAG_ENV = "CONFORMANCE_RUN_TAG"


def ensure_run_tag() -> str:
    """The run's tag, made here if this process is the first of the run (the controller)."""
    return os.environ.setdefault(RUN_TAG_ENV, uuid.uuid4().hex[:8])


def run_prefix() -> str:
    return f"{PREFIX}-{os.environ.get(RUN_TAG_ENV) or 'local'}"


def label(what: str) -> str:
    """The label for an object of this run: PREFIX-TAG-what."""
    return f"{run_prefix()}-{what}"
