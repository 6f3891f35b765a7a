"""The conformance checks: one behaviour per test, each citing the spec section or documentation sentence it puts
to the test. Run with `pytest --vendor=NAME`."""
