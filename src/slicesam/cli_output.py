"""What the ``slicesam`` command prints besides results: progress bars (tqdm) and warnings,
on stderr, readable on a terminal and in a log file alike."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

#: How the CLI shows :class:`~slicesam.models.device.CpuFallbackWarning`: one line.
CPU_FALLBACK_LINE = (
    "slicesam: note: no CUDA or MPS device found; running on the CPU "
    "(pass --device cpu to choose it knowingly)"
)
#: Seconds between two progress lines when stderr is not a terminal (a log file, CI).
LOG_INTERVAL_S = 10.0


class _LineStream:
    """A stream for tqdm when stderr is not a terminal: each redraw (a carriage return, then
    the status) becomes its own line, repeats are dropped, so a log file reads top to bottom."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        if text.startswith("\r") or text == "\n":
            line = text.lstrip("\r").rstrip()
            if line and line != self._last:
                self.stream.write(line + "\n")
                self._last = line
        else:
            self.stream.write(text)
            self._last = ""
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _columns(stream: TextIO) -> int | None:
    """The terminal's width behind ``stream`` (0 for a pseudo-terminal without a size, where a
    bar would be invisible), or None when unknown."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None


class CliProgress:
    """Progress on stderr for the long steps of ``segment`` and ``demo`` (tqdm).

    ``quiet`` silences it all (status lines, the model-loading ticker and the bars); errors,
    warnings and results are printed elsewhere and stay. On a terminal the bars redraw in
    place; otherwise each update is a line, at most one per :data:`LOG_INTERVAL_S`.
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) and _columns(self.stream) != 0
        self._file: Any = self.stream if self.tty else _LineStream(self.stream)

    def note(self, text: str) -> None:
        """A status line (not shown when quiet)."""
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)

    @contextlib.contextmanager
    def waiting(self, desc: str) -> Iterator[None]:
        """A step with no count (loading the model): a ticking ``desc ... 12s`` on a
        terminal, else one line when it starts."""
        if self.quiet:
            yield
            return
        if not self.tty:
            self.note(f"{desc}...")
            yield
            return
        from tqdm import tqdm

        bar = tqdm(
            total=None, desc=desc, bar_format="{desc}... {elapsed}", file=self._file, leave=False
        )
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0.5):
                bar.refresh()

        ticker = threading.Thread(target=tick, name="slicesam-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            bar.close()

    @contextlib.contextmanager
    def bar(self, desc: str, unit: str = "slice") -> Iterator[Callable[[int, int], None] | None]:
        """A bar for a step that reports ``callback(done, total)`` (``Session.propagate``'s
        ``progress``); yields None when quiet."""
        if self.quiet:
            yield None
            return
        from tqdm import tqdm

        bar = tqdm(
            total=None,
            desc=desc,
            unit=unit,
            file=self._file,
            mininterval=0.1 if self.tty else LOG_INTERVAL_S,
            ascii=not self.tty,
            dynamic_ncols=self.tty,
            leave=True,
            # until the first count: the prompted slices are embedded and segmented
            bar_format="{desc}: segmenting the prompted slices... {elapsed}",
        )

        def callback(done: int, total: int) -> None:
            if bar.total != total:
                bar.bar_format = None
                bar.reset(total=total)
            bar.update(max(0, min(done, total) - bar.n))

        try:
            yield callback
        finally:
            bar.close()


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the CLI: the CPU fallback as one note line, slicesam's own
    warnings as one ``slicesam: warning: ...`` line, others as Python shows them; printed
    above any progress bar."""
    from tqdm import tqdm

    from .models.device import CpuFallbackWarning

    if issubclass(category, CpuFallbackWarning):
        text = CPU_FALLBACK_LINE
    elif _inside_package(filename):
        text = f"slicesam: warning: {message}"
    else:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n")
    tqdm.write(text, file=file if file is not None else sys.stderr)


def _inside_package(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent)
    except (OSError, ValueError):
        return False
