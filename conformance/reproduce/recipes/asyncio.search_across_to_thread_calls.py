"""python-pkcs11 docs, Concurrency: "The lock is not released until the iterator is consumed" — here by an asyncio
task that takes a search's first object in one asyncio.to_thread call and the rest in a later one, while another
task's call keeps the executor thread the first call ran on (so the later call runs on another thread): it must get
every object."""

LABEL = "pkcs11-conformance reproducer"


def reproduce(token, pin):
    import asyncio
    import threading

    from pkcs11 import Attribute, ObjectClass

    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: LABEL}
    session = token.open(rw=True, user_pin=pin)
    for i in range(3):  # session objects: they go with the session
        session.create_object({**template, Attribute.TOKEN: False, Attribute.PRIVATE: False, Attribute.VALUE: b"x"})

    async def service():
        search = iter(session.get_objects(template))
        await asyncio.to_thread(next, search)  # task one's first object, on an executor thread
        await asyncio.sleep(0.1)  # that thread is back in the executor, idle
        held, release = threading.Event(), threading.Event()
        other = asyncio.ensure_future(asyncio.to_thread(lambda: (held.set(), release.wait(10))))  # takes it
        while not held.is_set():
            await asyncio.sleep(0.001)

        def rest():
            try:
                return sum(1 for _ in search)
            except Exception as exc:  # noqa: BLE001 - what the task got is the finding
                return type(exc).__name__
        more = await asyncio.to_thread(rest)  # task one's next call: on another executor thread
        release.set()
        await other
        return more

    more = asyncio.run(service())
    session.close()
    return more != 2, f"the rest of the search, taken in a later to_thread call on another thread: {more}"
