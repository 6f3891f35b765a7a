"""python-pkcs11 docs, Concurrency: the session's lock is there "to prevent threads from interfering with each
other", and "is not released until the iterator is consumed (or garbage collected)" — here with greenlets (needs
gevent or eventlet installed), replaying the smallest schedule the run drew: each actor a greenlet, the acts handed
out in the schedule's order; an act still unfinished once no greenlet can run any more is parked (waiting on the
lock). Each act is checked against what the docs promise threads; the first that differs is the deviation. PARAM
names the library and when it monkey-patches (before python-pkcs11 is imported, or after it)."""

PARAM = None
ACTS = None  # the run's smallest schedule: actor, op (start | rest | drop | all), session, iterator
EXPECTED = None  # what each act must give: [outcome, act after which a parked act completes, what it gives then]
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
    import gc

    from pkcs11 import Attribute, ObjectClass

    if PATCH == "after_import":
        patch()
    greenlets = __import__(KIND)
    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: LABEL}
    sessions = [token.open(rw=True, user_pin=pin)]
    sessions += [token.open(rw=True) for _ in range(max(a.get("session", 0) for a in ACTS))]
    for i in range(3):  # session objects: they go with the session
        sessions[0].create_object({**template, Attribute.TOKEN: False, Attribute.PRIVATE: False, Attribute.VALUE: b"x"})
    searches, inbox, done = {}, {}, {}

    def act(a):
        try:
            if a["op"] == "start":
                searches[a["it"]] = iter(sessions[a["session"]].get_objects(template))
                next(searches[a["it"]])
            elif a["op"] == "rest":
                return f"ok:{sum(1 for _ in searches.pop(a['it']))}"
            elif a["op"] == "drop":
                del searches[a["it"]]
                gc.collect()
            else:
                return f"ok:{len(list(sessions[a['session']].get_objects(template)))}"
        except Exception as exc:  # noqa: BLE001 - what the act got is the finding
            return f"raises:{type(exc).__name__}"
        return "ok"

    def actor(n):
        while True:
            while n not in inbox:
                greenlets.sleep(0)
            index, a = inbox.pop(n)
            done[index] = act(a)

    runners = [greenlets.spawn(actor, n) for n in range(max(a["actor"] for a in ACTS) + 1)]
    seen, parked = [], []
    for index, a in enumerate(ACTS):
        inbox[a["actor"]] = (index, a)
        for _ in range(50):  # every greenlet runs until none can: the act finished, or it is parked
            greenlets.sleep(0)
        seen.append([done[index], None, None] if index in done else ["blocked", None, None])
        if index not in done:
            parked.append(index)
        for earlier in [p for p in parked if p in done and p != index]:
            parked.remove(earlier)
            seen[earlier][1:] = [index, done[earlier]]
    for runner in runners:
        runner.kill()
    for session in sessions:
        session.close()
    for index, (got, want) in enumerate(zip(seen, EXPECTED)):
        if got != want:
            return True, (f"act {index} ({ACTS[index]['op']} by actor {ACTS[index]['actor']}): expected {want}, "
                          f"got {got}")
    return False, f"all {len(ACTS)} acts as the docs promise threads"
