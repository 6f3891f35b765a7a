"""What the module's process sees of a vendor: the loaded library and token, what the token can do,
ground truth through ctypes, token snapshots and sweeps, and the probes checks use. Runs in the executor child."""
