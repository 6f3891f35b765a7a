"""The pytest plugin: options, markers, hooks, fixtures, dispatch of check bodies to the module's process, records
from reports, results on the controller, pytest-html / JUnit extras and live progress.

Registered by the `pkcs11_conformance` pytest11 entry point; the hook modules are named here once.
"""

pytest_plugins = [
    "conformance.plugin.hooks",
    "conformance.plugin.fixtures",
    "conformance.plugin.dispatch",
    "conformance.plugin.extras",
]
