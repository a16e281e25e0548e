"""Interactive work first: background forwards pause while a click is being served.

A :class:`ForegroundGate` belongs to one :class:`~slicesam.engine.session.Session`. Interactive
operations (a box, a click, a propagation) run inside :meth:`ForegroundGate.busy`; a background
thread (the prefetcher) installs :meth:`ForegroundGate.wait_idle` as its yield hook
(:mod:`slicesam.models.yield_points`), so its encoder forward stops at the next pause point
(a few milliseconds of work) until the interactive work is done, and the click has the cores
to itself.

No deadlock: when interactive work waits for an embedding that the background thread is
computing, it steps aside for that wait (:meth:`released`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class ForegroundGate:
    """Counts interactive work per thread; background threads wait for none to be running."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._depth: dict[int, int] = {}
        #: how many times a background thread paused (for tests and benchmarks)
        self.pauses = 0

    @property
    def active(self) -> bool:
        """True while any thread is inside :meth:`busy` (and not :meth:`released`)."""
        with self._cond:
            return bool(self._depth)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark the calling thread's work as interactive for the duration (re-entrant)."""
        tid = threading.get_ident()
        with self._cond:
            self._depth[tid] = self._depth.get(tid, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                depth = self._depth.get(tid, 1) - 1
                if depth > 0:
                    self._depth[tid] = depth
                else:
                    self._depth.pop(tid, None)
                    self._cond.notify_all()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Step aside while the calling thread waits for background work (an embedding the
        prefetcher is computing), then take back its place."""
        tid = threading.get_ident()
        with self._cond:
            saved = self._depth.pop(tid, 0)
            self._cond.notify_all()
        try:
            yield
        finally:
            if saved:
                with self._cond:
                    self._depth[tid] = self._depth.get(tid, 0) + saved

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block the calling (background) thread until no *other* thread is busy.

        Returns False if ``timeout`` seconds passed first.
        """
        tid = threading.get_ident()
        with self._cond:
            if not (self._depth.keys() - {tid}):
                return True
            self.pauses += 1
            return self._cond.wait_for(lambda: not (self._depth.keys() - {tid}), timeout)


def interactive(method: F) -> F:
    """Run a :class:`~slicesam.engine.session.Session` method inside its gate's
    :meth:`ForegroundGate.busy` (background forwards pause meanwhile)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.gate.busy():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
