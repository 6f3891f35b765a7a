"""The greenlet libraries behind one interface: patching, spawning, yielding, and their threadpools. Imported by the
runtime program only once it is time to patch (gevent and eventlet are optional extras of the harness)."""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Greenlets(Protocol):
    """What the program needs of gevent or eventlet."""

    def patch(self) -> None: ...

    def spawn(self, run: Callable[[], None]) -> Any: ...

    def sleep(self, seconds: float) -> None: ...

    def queue(self) -> Any: ...

    def offload(self, call: Callable[[], Any]) -> Any: ...

    def kill(self, greenlet: Any) -> None: ...


class Gevent:
    def __init__(self) -> None:
        import gevent

        self._gevent = gevent

    def patch(self) -> None:
        from gevent import monkey

        monkey.patch_all()

    def spawn(self, run: Callable[[], None]) -> Any:
        return self._gevent.spawn(run)

    def sleep(self, seconds: float) -> None:
        self._gevent.sleep(seconds)

    def queue(self) -> Any:
        from gevent.queue import Queue

        return Queue()

    def offload(self, call: Callable[[], Any]) -> Any:
        return self._gevent.get_hub().threadpool.apply(call)  # the hub's threadpool: real OS threads

    def kill(self, greenlet: Any) -> None:
        greenlet.kill(block=False)


class Eventlet:
    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():  # eventlet announces its own deprecation on import
            warnings.simplefilter("ignore")
            import eventlet
        self._eventlet = eventlet

    def patch(self) -> None:
        self._eventlet.monkey_patch()

    def spawn(self, run: Callable[[], None]) -> Any:
        return self._eventlet.spawn(run)

    def sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

    def queue(self) -> Any:
        from eventlet.queue import Queue

        return Queue()

    def offload(self, call: Callable[[], Any]) -> Any:
        from eventlet import tpool

        return tpool.execute(call)  # eventlet's threadpool: real OS threads

    def kill(self, greenlet: Any) -> None:
        greenlet.kill()


LIBRARIES: dict[str, Callable[[], Greenlets]] = {"gevent": Gevent, "eventlet": Eventlet}
# The pip requirement that brings each in (the harness's `runtimes` extra has both).
REQUIREMENT = {"gevent": "gevent>=24.2", "eventlet": "eventlet>=0.36"}
