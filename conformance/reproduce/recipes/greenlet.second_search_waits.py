"""python-pkcs11 docs, Concurrency: the session's lock is there "to prevent threads from interfering with each
other" — here with greenlets (needs gevent or eventlet installed): a second greenlet's search on a shared session,
while the first greenlet's search there is partly consumed, must wait until that one is consumed and then find every
object, and the first search must be undisturbed. PARAM names the library and when it monkey-patches: before
python-pkcs11 is imported, after it, or after the session was opened."""

PARAM = None
KIND, _, PATCH = PARAM.partition("_")
LABEL = "pkcs11-conformance reproducer"


def patch():
    if KIND == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        import eventlet

        eventlet.monkey_patch()


if PATCH == "before_import":  # first thing, before python-pkcs11 is imported (main() imports it)
    patch()


def reproduce(token, pin):
    from pkcs11 import Attribute, ObjectClass

    if PATCH == "after_import":
        patch()
    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: LABEL}
    session = token.open(rw=True, user_pin=pin)
    for i in range(3):  # session objects: they go with the session
        session.create_object({**template, Attribute.TOKEN: False, Attribute.PRIVATE: False, Attribute.VALUE: b"x"})
    if PATCH == "after_sessions":
        patch()
    if KIND == "gevent":
        import gevent as greenlets
    else:
        import eventlet as greenlets
    seen = {}

    def first():
        search = iter(session.get_objects(template))
        next(search)  # the search starts (and takes the session's lock) at the first next()
        seen["started"] = True
        while "go" not in seen:
            greenlets.sleep(0)
        try:
            seen["rest"] = sum(1 for _ in search)
        except Exception as exc:  # noqa: BLE001 - what the first greenlet got is the finding
            seen["rest"] = type(exc).__name__

    def second():
        while "started" not in seen:
            greenlets.sleep(0)
        try:
            seen["second"] = len(list(session.get_objects(template)))
        except Exception as exc:  # noqa: BLE001
            seen["second"] = type(exc).__name__

    runners = [greenlets.spawn(first), greenlets.spawn(second)]
    for _ in range(100):  # both run until neither can: the second one waits (parks) or has finished
        greenlets.sleep(0)
    waited = "second" not in seen
    seen["go"] = True
    for runner in runners:
        runner.wait() if KIND == "eventlet" else runner.join()
    session.close()
    present = not (waited and seen["second"] == 3 and seen["rest"] == 2)
    return present, (f"{KIND}, patched {PATCH.replace('_', ' ')}: the second greenlet "
                     f"{'waited, then found' if waited else 'did not wait:'} {seen['second']}; "
                     f"the first greenlet's search then gave {seen['rest']} more")
