"""The module's process: the only process that loads a PKCS#11 module. The parent side (parent.py) starts
it and speaks the protocol (protocol.py); the child side runs schedules on pinned actor threads, check bodies,
stress and further applications."""
