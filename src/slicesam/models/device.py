"""Device choice for torch backends: CUDA > MPS > CPU unless the user names one."""

from __future__ import annotations

from ..errors import ModelError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | None = "auto") -> str:
    """Return a torch device string for ``device`` ("auto", "cpu", "cuda", "cuda:N", "mps").

    "auto" picks CUDA when available, then Apple MPS, then CPU. Naming an unavailable device is
    an error that says what is available. Imports torch (call only from backends).
    """
    import torch

    choice = (device or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
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
