# Wires the plugin for a source checkout; an installed package registers the same modules via the pytest11
# entry points (same names, so nothing is registered twice).
pytest_plugins = ["conformance.plugin", "conformance.fixtures", "conformance.extras"]
