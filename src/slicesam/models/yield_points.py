"""Cooperative pause points inside long model forwards.

A torch forward cannot be pre-empted. So that a background thread (the prefetcher) embedding a
slice does not hold the CPU while the user clicks, long forwards call :func:`yield_point`
between pieces of work (the fast LiteMedSAM encoder between row bands, token chunks and
blocks; reference encoders between transformer blocks). In a thread that installed a hook with
:func:`set_yield_hook` the hook runs there: it may block until interactive work is done
(:class:`slicesam.engine.foreground.ForegroundGate`). In any other thread it does nothing.

The hook is per thread (``threading.local``): foreground threads never pause.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_local = threading.local()


def set_yield_hook(hook: Callable[[], None] | None) -> None:
    """Install ``hook`` as the calling thread's pause point (None removes it)."""
    _local.hook = hook


def get_yield_hook() -> Callable[[], None] | None:
    """The calling thread's hook (None when it has none)."""
    return getattr(_local, "hook", None)


def yield_point() -> None:
    """Run the calling thread's hook, if it has one (cheap otherwise)."""
    hook = getattr(_local, "hook", None)
    if hook is not None:
        hook()


def add_block_yield_points(module, names: tuple[str, ...] = ("blocks",)) -> int:
    """Call :func:`yield_point` before every child of each ``<...>.blocks`` list in a torch
    module (a forward pre-hook; SAM's ViT ``blocks.N``, TinyViT's ``layers.i.blocks.j``).

    Returns the number of hooks added.
    """
    count = 0
    for name, child in module.named_modules():
        parts = name.split(".")
        if len(parts) >= 2 and parts[-1].isdigit() and parts[-2] in names:
            child.register_forward_pre_hook(lambda *_: yield_point())
            count += 1
    return count
