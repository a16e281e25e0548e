"""Run session work off the GUI thread, one job at a time, and deliver results on it.

Workers never touch Qt objects: a job's result (or error) and progress/status texts travel to
the GUI thread through Qt signals (queued connections), where the callbacks run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from qtpy.QtCore import QObject, Signal


class _Bridge(QObject):
    finished = Signal(object, object, object)  # callback, result, error
    message = Signal(str)
    progress = Signal(int, int)


class SerialRunner:
    """A single worker thread running jobs in submission order.

    Attributes:
        message: Qt signal(str) for status texts emitted from any thread.
        progress: Qt signal(int done, int total).
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slicesam-job")
        self._bridge = _Bridge()
        self._bridge.finished.connect(self._deliver)
        self.message = self._bridge.message
        self.progress = self._bridge.progress
        self.pending = 0

    @property
    def busy(self) -> bool:
        return self.pending > 0

    def submit(
        self,
        job: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future:
        """Run ``job()`` in the worker; then ``on_done(result)`` or ``on_error(exc)`` on the
        GUI thread."""
        self.pending += 1

        def finished(future: Future) -> None:
            error = future.exception()
            result = None if error is not None else future.result()
            self._bridge.finished.emit((on_done, on_error), result, error)

        future = self._executor.submit(job)
        future.add_done_callback(finished)
        return future

    def _deliver(self, callbacks, result, error) -> None:
        self.pending -= 1
        on_done, on_error = callbacks
        if error is not None:
            if on_error is not None:
                on_error(error)
        elif on_done is not None:
            on_done(result)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
