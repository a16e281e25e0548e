"""Run session work off the GUI thread, one job at a time, and deliver results on it.

Workers never touch Qt objects: a job's result (or error) and progress/status texts travel to
the GUI thread through Qt signals (queued connections), where the callbacks run. Each
submission returns a :class:`Job` a script can wait on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from qtpy.QtCore import QObject, Qt, QThread, Signal


def process_events_until(done: Callable[[], bool], timeout: float | None) -> bool:
    """Keep the Qt event loop turning until ``done()`` (True) or ``timeout`` seconds passed
    (False). Call it from the GUI thread: queued results are delivered meanwhile."""
    from qtpy.QtWidgets import QApplication

    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        if deadline is not None and time.monotonic() > deadline:
            return False
        QApplication.processEvents()
        time.sleep(0.005)
    return True


def on_gui_thread() -> bool:
    """True when called from the thread that runs the Qt application."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    return app is not None and QThread.currentThread() is app.thread()


class Job:
    """A handle on one submitted job.

    :meth:`wait` returns once the job ran and its callbacks ran on the GUI thread (so the
    viewer shows its result); it re-raises the job's error.
    """

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.result: Any = None
        self.error: BaseException | None = None
        self._delivered = threading.Event()

    @property
    def done(self) -> bool:
        """True once the result (or error) reached the GUI thread."""
        return self._delivered.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the job (processing Qt events when called on the GUI thread); return its
        result, or raise its error; ``TimeoutError`` after ``timeout`` seconds."""
        if on_gui_thread():
            finished = process_events_until(lambda: self.done, timeout)
        else:
            finished = self._delivered.wait(timeout)
        if not finished:
            raise TimeoutError(f"{self.label or 'job'} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result

    def _deliver(self, result: Any, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self._delivered.set()

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"Job({self.label!r}, {state})"


class _Bridge(QObject):
    finished = Signal(object, object, object)  # (job, callbacks), result, error
    message = Signal(str)
    progress = Signal(int, int)
    background = Signal(str)


class SerialRunner:
    """A single worker thread running jobs in submission order.

    Attributes:
        message: Qt signal(str) for status texts emitted from any thread.
        progress: Qt signal(int done, int total).
        background: Qt signal(str) for the background embedding's status.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slicesam-job")
        self._bridge = _Bridge()
        # queued even when a job is done before its callback is added (the callback then runs
        # in the GUI thread): results arrive after the job's progress and messages, in order
        self._bridge.finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.message = self._bridge.message
        self.progress = self._bridge.progress
        self.background = self._bridge.background
        self.pending = 0

    @property
    def busy(self) -> bool:
        return self.pending > 0

    def submit(
        self,
        job: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        label: str = "",
    ) -> Job:
        """Run ``job()`` in the worker; then ``on_done(result)`` or ``on_error(exc)`` on the
        GUI thread. Returns the job's handle."""
        handle = Job(label)
        self.pending += 1

        def finished(future: Future) -> None:
            if future.cancelled():
                error: BaseException | None = RuntimeError(f"{label or 'job'} was cancelled")
                result = None
            else:
                error = future.exception()
                result = None if error is not None else future.result()
            self._bridge.finished.emit((handle, on_done, on_error), result, error)

        try:
            future = self._executor.submit(job)
        except RuntimeError as exc:  # shut down: the viewer is closing
            self.pending -= 1
            handle._deliver(None, exc)
            return handle
        future.add_done_callback(finished)
        return handle

    def _deliver(self, callbacks, result, error) -> None:
        self.pending -= 1
        handle, on_done, on_error = callbacks
        try:
            if error is not None:
                if on_error is not None:
                    on_error(error)
            elif on_done is not None:
                on_done(result)
        finally:
            handle._deliver(result, error)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Process Qt events until every submitted job was delivered; False on timeout."""
        return process_events_until(lambda: not self.busy, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Drop the jobs not started yet; with ``wait``, wait for the running one to end."""
        self._executor.shutdown(wait=wait, cancel_futures=True)
