"""The results vocabulary, defined once: outcomes, layers, and which outcomes are findings.

Every module that names an outcome or a layer takes it from here (the results schema, the profile's deviations,
the gate's classes, the report's colours).
"""

from __future__ import annotations

OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "error", "crashed", "hung")
# The layer a result is blamed on. A check judges one of the first three; "harness" is only ever our own bug.
LAYERS = ("module", "binding", "provider", "harness")
CHECK_LAYERS = ("module", "binding", "provider")
HARNESS = "harness"
MODULE = "module"
BINDING = "binding"
# Layers whose failures are checked against the module's own answers (engine/rawspec.py): where the module broke a
# rule on the way, the finding is lifted to it.
LIFTED = ("binding", "provider")
# Outcomes that are findings: something behaved other than the spec, the docs or a declaration say.
FINDINGS = ("failed", "crashed", "hung", "error")
# The module's process died (crashed) or stopped answering (hung) during the check.
DIED = ("crashed", "hung")
# Passing outcomes for the gate: a pass, or a declared deviation happening as declared.
GOOD = frozenset({"passed", "xfailed"})
BAD = frozenset(FINDINGS)
