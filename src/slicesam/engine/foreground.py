"""Interactive work first: background forwards pause while a click is being served.

A :class:`ForegroundGate` belongs to one :class:`~slicesam.engine.session.Session`. Interactive
operations (a box, a click, a propagation) run inside :meth:`ForegroundGate.busy`; a background
thread (the prefetcher) installs :meth:`ForegroundGate.wait_idle` as its yield hook
(:mod:`slicesam.models.yield_points`), so its encoder forward stops at the next pause point
(a few milliseconds of work) until the interactive work is done, and the click has the cores
to itself. Interactive work that starts while a background forward is between two pause points
waits for it to reach the next one (at most ``settle_s``) rather than share the cores with it:
two OpenMP thread teams on the same two cores slow each other down far more than the few
milliseconds that wait costs (a decoder call while prefetching: 39 ms sharing, 28 ms waiting,
28 ms with no prefetcher; ``slicesam bench --speed``).

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
    """Counts interactive work per thread; background threads wait for none to be running.

    Args:
        settle_s: the longest interactive work waits, on entry, for the forwards of
            registered background threads (:meth:`register_background`, :meth:`working`) to
            reach their next pause point; 0 = do not wait.
    """

    def __init__(self, settle_s: float = 0.03) -> None:
        self._cond = threading.Condition()
        self._depth: dict[int, int] = {}
        self._background: set[int] = set()
        self._running: set[int] = set()
        self.settle_s = settle_s
        #: how many times a background thread paused (for tests and benchmarks)
        self.pauses = 0

    @property
    def active(self) -> bool:
        """True while any thread is inside :meth:`busy` (and not :meth:`released`)."""
        with self._cond:
            return bool(self._depth)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark the calling thread's work as interactive for the duration (re-entrant).

        The first thread to enter waits up to ``settle_s`` for background forwards in
        progress to pause."""
        tid = threading.get_ident()
        with self._cond:
            first = not self._depth
            self._depth[tid] = self._depth.get(tid, 0) + 1
            if first and self.settle_s > 0:
                self._cond.wait_for(lambda: not (self._running - {tid}), self.settle_s)
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

    def register_background(self) -> None:
        """Make the calling thread a background worker: :meth:`busy` waits (up to
        ``settle_s``) for its work in progress to reach a pause point."""
        with self._cond:
            self._background.add(threading.get_ident())

    @contextmanager
    def working(self) -> Iterator[None]:
        """Mark a background thread's forward as in progress (no-op in other threads)."""
        tid = threading.get_ident()
        with self._cond:
            if tid not in self._background:
                mine = False
            else:
                mine = tid not in self._running
                self._running.add(tid)
        try:
            yield
        finally:
            if mine:
                with self._cond:
                    self._running.discard(tid)
                    self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block the calling (background) thread until no *other* thread is busy.

        Returns False if ``timeout`` seconds passed first.
        """
        tid = threading.get_ident()
        with self._cond:
            if not (self._depth.keys() - {tid}):
                return True
            self.pauses += 1
            was_running = tid in self._running
            self._running.discard(tid)
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not (self._depth.keys() - {tid}), timeout)
            finally:
                if was_running:
                    self._running.add(tid)


def interactive(method: F) -> F:
    """Run a :class:`~slicesam.engine.session.Session` method inside its gate's
    :meth:`ForegroundGate.busy` (background forwards pause meanwhile)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.gate.busy():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
