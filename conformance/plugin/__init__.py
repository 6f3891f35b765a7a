"""The pytest plugin: options, markers, hooks, fixtures, dispatch of check bodies to the module's process, records
from reports, results on the controller, pytest-html / JUnit extras and live progress.

Registered by the `pkcs11_conformance` pytest11 entry point; the hook modules are named here once.
"""

# Leaves first: pytest imports each in turn (marking it for assertion rewriting), and a module another one
# imports must already be in by then.
pytest_plugins = [
    "conformance.plugin.fixtures",
    "conformance.plugin.drivers",
    "conformance.plugin.calltrace",
    "conformance.plugin.dispatch",
    "conformance.plugin.extras",
    "conformance.plugin.hooks",
]
