"""Background embedding of the slices around the one in view, nearest first.

GUI-free: the napari widget calls :meth:`Prefetcher.request` when the viewed slice changes. A
new request takes effect after the slice being embedded; the cache de-duplicates a slice that a
click needs while it is being prefetched. :meth:`Prefetcher.stop` ends a forward in progress at
its next pause point (:mod:`slicesam.models.yield_points`), so closing the viewer never waits
for a whole slice, and the thread is never left inside the model when the interpreter exits
(a thread killed there aborts the process). The thread is not a daemon: it ends by itself
after ``idle_exit_s`` without work and starts again on the next request.

``thread_setup`` runs in the worker thread first. The napari widget passes
:meth:`Session.background_setup <slicesam.engine.session.Session.background_setup>`: the
forwards then pause at their yield points while the session serves a click or a propagation
(:mod:`slicesam.engine.foreground`), so interactive work gets the cores. It can also limit
the prefetcher's threads (torch's OpenMP thread count is per calling thread); on few cores
that alone makes a click during prefetching slower, not faster.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ..models.base import Embedding
from ..models.yield_points import get_yield_hook, set_yield_hook


def nearest_first(z: int, n_slices: int, radius: int) -> list[int]:
    """[z, z+1, z-1, z+2, z-2, ...] within ``radius`` and the volume."""
    order = [z] if 0 <= z < n_slices else []
    for d in range(1, radius + 1):
        order += [v for v in (z + d, z - d) if 0 <= v < n_slices]
    return order


def prefetch_threads() -> int:
    """Threads for background embedding: half the cores (at least 1), so that the other half
    keeps clicks and the GUI responsive."""
    return max(1, (os.cpu_count() or 2) // 2)


class PrefetchStopped(Exception):
    """Raised at a pause point of a forward when the prefetcher was stopped."""


class Prefetcher:
    """A background thread embedding slices around the requested one.

    Args:
        embed: ``embed(z)`` computes (and caches) slice z's embedding.
        is_cached: ``is_cached(z)`` tells whether slice z needs no work.
        n_slices: number of slices in the volume.
        radius: how many slices on each side to prefetch.
        on_status: called from the worker thread with a short status text
            ("embedding slice 12", "idle"); the GUI must marshal it to its own thread.
        thread_setup: called in the worker thread before any work (e.g.
            :meth:`Session.background_setup <slicesam.engine.session.Session.background_setup>`).
        idle_exit_s: the thread ends after this long without a request.
    """

    def __init__(
        self,
        embed: Callable[[int], Embedding],
        is_cached: Callable[[int], bool],
        n_slices: int,
        radius: int = 8,
        on_status: Callable[[str], None] | None = None,
        thread_setup: Callable[[], None] | None = None,
        idle_exit_s: float = 2.0,
    ) -> None:
        self._thread_setup = thread_setup
        self._embed = embed
        self._is_cached = is_cached
        self._n = n_slices
        self.radius = radius
        self.idle_exit_s = idle_exit_s
        self._on_status = on_status or (lambda text: None)
        self._cond = threading.Condition()
        self._target: int | None = None
        self._generation = 0
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def request(self, z: int) -> None:
        """Prefetch around slice ``z`` (replaces any earlier request; ignored once stopped)."""
        with self._cond:
            if self._stopped:
                return
            self._target = int(z)
            self._generation += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="slicesam-prefetch", daemon=False
                )
                self._thread.start()
            self._cond.notify()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop for good: a forward in progress ends at its next pause point. Waits up to
        ``timeout`` seconds for the thread to end; True when it has."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _pause_point(self, inner: Callable[[], None] | None) -> None:
        if self._stopped:
            raise PrefetchStopped
        if inner is not None:
            inner()
        if self._stopped:
            raise PrefetchStopped

    def _run(self) -> None:
        try:
            if self._thread_setup is not None:
                try:
                    self._thread_setup()
                except Exception as exc:  # reported, never raised in a background thread
                    self.error = exc
                    self._on_status(f"prefetch setup failed: {exc}")
            inner = get_yield_hook()
            set_yield_hook(lambda: self._pause_point(inner))
            self._work()
        finally:
            set_yield_hook(None)
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _work(self) -> None:
        while True:
            with self._cond:
                if self._target is None and not self._stopped:
                    self._cond.wait(self.idle_exit_s)
                if self._stopped or self._target is None:
                    self._thread = None  # a later request starts a new thread
                    return
                target, generation, self._target = self._target, self._generation, None
            for z in nearest_first(target, self._n, self.radius):
                with self._cond:
                    if self._stopped or self._generation != generation:
                        break
                if self._is_cached(z):
                    continue
                self._on_status(f"embedding slice {z}")
                try:
                    self._embed(z)
                except PrefetchStopped:
                    return
                except Exception as exc:  # reported, never raised in a background thread
                    self.error = exc
                    self._on_status(f"embedding failed: {exc}")
                    break
            else:
                self._on_status("idle")
