"""Device choice for torch backends: CUDA > MPS > CPU unless the user names one.

``resolve_device("auto")`` falls back to the CPU with a visible note
(:class:`CpuFallbackWarning`, shown once per process by Python's warning filter, and a log
record on the ``slicesam`` logger). :func:`autocast` gives the mixed-precision context torch
backends run their networks under: float16 autocast on CUDA, full precision elsewhere.

Only the functions import torch (call them from backends), so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ModelError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

_log = logging.getLogger("slicesam")


class CpuFallbackWarning(UserWarning):
    """``device="auto"`` found no GPU (CUDA or Apple MPS) and runs the model on the CPU."""


CPU_FALLBACK_NOTE = (
    "no GPU found (CUDA or Apple MPS): running the model on the CPU, which is much slower "
    "(pass device='cpu' / --device cpu to choose the CPU explicitly and silence this note)"
)


def resolve_device(device: str | None = "auto") -> str:
    """Return a torch device string for ``device`` ("auto", "cpu", "cuda", "cuda:N", "mps").

    "auto" picks CUDA when available, then Apple MPS, then the CPU; the CPU fallback emits a
    :class:`CpuFallbackWarning` and logs the same note. Naming an unavailable device is an
    error that says what is available. Imports torch (call only from backends).
    """
    import torch

    choice = (device or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        _log.info(CPU_FALLBACK_NOTE)
        warnings.warn(CPU_FALLBACK_NOTE, CpuFallbackWarning, stacklevel=2)
        return "cpu"
    if choice == "cpu":
        return "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {device!r} requested but CUDA is not available on this machine; "
                "use --device cpu (or auto)"
            )
        return choice
    if choice == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError("device 'mps' requested but Apple MPS is not available; use cpu")
        return "mps"
    raise ModelError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def autocast(device: str) -> Any:
    """The precision context a network runs under on ``device``.

    CUDA: ``torch.autocast("cuda", dtype=torch.float16)`` (matmuls and convolutions in half
    precision, reductions and softmax in float32). CPU and MPS: a no-op context (float32).
    """
    if device.startswith("cuda"):
        import torch

        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def cpu_has_native_bf16() -> bool:
    """True when this x86 CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16).

    Reads ``/proc/cpuinfo`` (Linux); anywhere else, asks torch's CPU capability string.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    import torch

    try:
        return "AMX" in torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        return False


def default_dtype(device: Any = "cpu") -> Any:
    """float32, unless ``SLICESAM_ENCODER_DTYPE=bfloat16`` asks for bfloat16 on a CPU that
    multiplies bf16 natively (AVX512-BF16 / AMX).

    bfloat16 is opt-in because it changes the masks by more than a faster path may: its
    benchmark Dice against the ground truth must stay within 0.005 of float32 on every
    dataset, and bf16's does not (``docs/speed.md``; the float32 paths give identical masks).
    """
    import torch

    forced = os.environ.get("SLICESAM_ENCODER_DTYPE", "").strip().lower()
    wanted = forced in ("bfloat16", "bf16")
    if wanted and (torch.device(device).type != "cpu" or cpu_has_native_bf16()):
        return torch.bfloat16
    return torch.float32


def encoder_autocast(device: str) -> tuple[Callable[[], Any], str]:
    """A factory of the precision context a large image encoder (SAM ViT) runs under on
    ``device``, and the precision's name (part of the embedding cache key).

    CUDA: float16 autocast. CPU: float32, or bfloat16 autocast when
    ``SLICESAM_ENCODER_DTYPE=bfloat16`` and the CPU multiplies bf16 natively (opt-in: see
    :func:`default_dtype`).
    A factory, not a context: each call enters a fresh one (threads may embed at once).
    """
    if device.startswith("cuda"):
        return (lambda: autocast(device)), "reference-autocast-fp16"
    if device == "cpu":
        import torch

        if default_dtype("cpu") == torch.bfloat16:
            bf16 = torch.bfloat16
            return (
                lambda: torch.autocast(device_type="cpu", dtype=bf16),
                "reference-autocast-bf16",
            )
    return contextlib.nullcontext, "reference-fp32"


def cpu_default_switch(variable: str, device: str) -> bool:
    """An on/off choice that defaults to "on for CPU": the environment variable ``variable``
    set to "0"/"false"/"no"/"off" turns it off, "1"/"true"/"yes"/"on" forces it on for every
    device; unset, it is on exactly when ``device`` is "cpu"."""
    flag = os.environ.get(variable, "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    return device == "cpu"
