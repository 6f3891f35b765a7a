"""Reproducers anyone can run: `pkcs11-conformance reproduce RESULTS.json CHECK --vendor NAME -o FILE.py` writes a
standalone script (python-pkcs11 and the standard library only; it never imports the harness) that prints what it
saw and exits 1 while the deviation is there, 0 once it is fixed, 2 when the module or token cannot be used.

recipes/ holds a scripted check's reproduction, one file per check id; scheduled.py turns a failing scenario's
minimal schedule into one (runtime/schedule.py replays it on threads, the model's expectations written in as data);
script.py puts either into the frame that finds the module and token; command.py is the console command."""
