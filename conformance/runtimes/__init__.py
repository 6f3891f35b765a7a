"""The runtimes services run python-pkcs11 under, besides plain OS threads: greenlets under gevent and eventlet
(monkey-patched before or after the binding is imported, or after the sessions were made) and asyncio tasks that
call through `asyncio.to_thread`.

A runtime's program runs in an interpreter of its own (program.py), started fresh so that "patched before the
binding is imported" is real; the check bodies hand it plain data (plan.py) and read plain data back (launch.py),
so a module that crashes or hangs there is an outcome, never the end of the run. model.py says what each step must
give — for greenlets what the docs promise threads: the session lock makes a second holder wait."""
