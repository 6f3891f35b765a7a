"""PKCS#11 UG v2.40 §2.5.2: a forked child "needs to perform its own C_Initialize call". python-pkcs11's way is
lib.reinitialize() (C_Finalize, then C_Initialize): in a forked child — the parent had the module initialised and a
session logged in, as a gunicorn --preload master has — it must work."""

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
            lib.reinitialize()
            said = "ok"
        except Exception as exc:  # noqa: BLE001 - what the child got is the finding
            said = f"{type(exc).__name__} {exc}".strip()
        os.write(write, said.encode())
        os._exit(0)
    os.close(write)
    said = os.read(read, 500).decode() or "nothing: the child died"
    os.close(read)
    os.waitpid(pid, 0)
    parent.close()
    return said != "ok", f"lib.reinitialize() in a forked child: {said}"
