"""Avoid a crash between triton's bundled LLVM and the system libLLVM that Mesa loads.

Under software OpenGL (Mesa llvmpipe/swrast: Xvfb, remote desktops, machines without a GPU
driver) napari's canvas maps the system ``libLLVM``. Importing triton afterwards — torchvision
does, at import — loads triton's own LLVM into the same process and segfaults. Triton only
serves GPU kernels for ``torch.compile``, which slicesam does not use, so when the system
libLLVM is already mapped we make ``import triton`` fail cleanly (torch then reports triton as
unavailable) before torch is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

_MAPS = Path("/proc/self/maps")


def system_llvm_loaded() -> bool:
    """True when a system ``libLLVM`` shared library is mapped into this process (Linux)."""
    try:
        return "libLLVM" in _MAPS.read_text()
    except OSError:
        return False


def avoid_triton_llvm_clash() -> bool:
    """Block triton's import if the system libLLVM is loaded and triton is not yet imported.

    Returns:
        True when triton was blocked.
    """
    if "triton" in sys.modules or not system_llvm_loaded():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
    return True
