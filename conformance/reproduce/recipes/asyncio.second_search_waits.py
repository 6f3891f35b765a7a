"""python-pkcs11 docs, Concurrency: the session's lock is there "to prevent threads from interfering with each
other" — here with asyncio tasks calling through asyncio.to_thread: a second task's search on a shared session,
while the first task's search there (started in an earlier to_thread call) is partly consumed, must wait until that
one is consumed and then find every object, and the first search must be undisturbed."""

LABEL = "pkcs11-conformance reproducer"


def reproduce(token, pin):
    import asyncio

    from pkcs11 import Attribute, ObjectClass

    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: LABEL}
    session = token.open(rw=True, user_pin=pin)
    for i in range(3):  # session objects: they go with the session
        session.create_object({**template, Attribute.TOKEN: False, Attribute.PRIVATE: False, Attribute.VALUE: b"x"})

    async def service():
        search = iter(session.get_objects(template))
        await asyncio.to_thread(next, search)  # task one: the search starts, on an executor thread
        await asyncio.sleep(0.1)  # as between two requests: that thread is back in the executor, idle
        second = asyncio.ensure_future(asyncio.to_thread(lambda: len(list(session.get_objects(template)))))
        await asyncio.wait({second}, timeout=1.0)
        waited = not second.done()

        def rest():
            try:
                return sum(1 for _ in search)
            except Exception as exc:  # noqa: BLE001 - what the first task got is the finding
                return type(exc).__name__
        more = await asyncio.to_thread(rest)
        try:
            found = await asyncio.wait_for(second, 5)
        except Exception as exc:  # noqa: BLE001
            found = type(exc).__name__
        return waited, found, more

    waited, found, more = asyncio.run(service())
    session.close()
    present = not (waited and found == 3 and more == 2)
    return present, (f"the second task's search {'waited, then found' if waited else 'did not wait:'} {found}; "
                     f"the first task's search then gave {more} more")
