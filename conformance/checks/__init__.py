"""The conformance checks: one behaviour per test, each citing the spec section or documentation sentence it puts
to the test. Run with `pytest --vendor=NAME` (from any directory: the plugin collects this folder)."""

from pathlib import Path

CHECKS_DIR = Path(__file__).resolve().parent
