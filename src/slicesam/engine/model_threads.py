"""How a session's model work shares the CPU: interactive work first, background work paused.

:class:`ModelThreads` is a base class of :class:`~slicesam.engine.session.Session`: the
methods a background worker (the prefetcher's thread) and a GUI calling the model directly
use to keep out of the way of interactive work, through the session's
:class:`~slicesam.engine.foreground.ForegroundGate` (:attr:`gate`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from ..models.base import SegmentationModel
from ..models.yield_points import set_yield_hook
from .foreground import ForegroundGate

__all__ = ["ModelThreads"]


class ModelThreads:
    """The thread side of a session's model work; the session sets :attr:`model` and
    :attr:`gate`."""

    model: SegmentationModel
    gate: ForegroundGate

    def limit_threads(self, n: int) -> None:
        """Limit the model's CPU threads for forwards run from the calling thread (used by the
        prefetcher's thread; a no-op for models without a thread pool)."""
        if self.model.capabilities.thread_limit:
            self.model.limit_threads(n)

    def background_setup(self, threads: int | None = None) -> None:
        """Make the calling thread a background worker of this session (the prefetcher's
        ``thread_setup``): its forwards pause at their yield points while interactive work
        runs (:attr:`gate`); ``threads`` also limits its CPU threads."""
        set_yield_hook(self.gate.wait_idle)
        self.gate.register_background()
        if threads:
            self.limit_threads(threads)

    def foreground(self) -> AbstractContextManager[None]:
        """A context for interactive work done outside the session's own methods (e.g. a GUI
        calling the model directly): background forwards pause meanwhile. The session's
        prompts and propagation enter it by themselves."""
        return self.gate.busy()
