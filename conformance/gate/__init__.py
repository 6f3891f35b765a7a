"""The upgrade gate: baseline vs candidate classification (compare.py) and its text / markdown / JSON output."""
