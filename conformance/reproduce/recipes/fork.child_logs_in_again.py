"""PKCS#11 UG v2.40 §2.5.2: after its own C_Initialize a forked child "needs to log into them even if P is already
logged in": it is an application of its own, so its login is its first. The parent has a session logged in; the
child initialises again (lib.reinitialize(), or lib.initialize() where that fails and python-pkcs11 has it), finds
the token and logs in on a session of its own."""

import os


def reproduce(token, pin):
    import pkcs11

    lib = pkcs11.lib(MODULE)  # python-pkcs11 hands back the library it already loaded
    parent = token.open(rw=True, user_pin=pin)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answers through the pipe, leaves without returning into this code
        os.close(read)
        try:
            try:
                lib.reinitialize()
            except pkcs11.exceptions.PKCS11Error:
                lib.initialize()  # python-pkcs11 0.9 and later
            lib.get_token(token_label=TOKEN_LABEL).open(rw=True, user_pin=pin).close()
            said = "ok"
        except Exception as exc:  # noqa: BLE001 - what the child got is the finding
            said = type(exc).__name__
        os.write(write, said.encode())
        os._exit(0)
    os.close(write)
    said = os.read(read, 500).decode() or "nothing: the child died"
    os.close(read)
    os.waitpid(pid, 0)
    parent.close()
    return said != "ok", f"a forked child's own C_Initialize and login: {said}"
