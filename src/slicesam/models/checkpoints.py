"""Reading checkpoint files safely: sha256, ``torch.load(weights_only=True)``, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import CheckpointError


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load a state dict with ``weights_only=True`` (no code execution from the file).

    Accepts a plain state dict or one wrapped under "model" / "state_dict".

    Raises:
        CheckpointError: the file is missing, unreadable, not a torch file, or holds no tensors.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        if "weights only load failed" in str(exc).lower():
            # torch's own text suggests weights_only=False, which would run code from the file
            raise CheckpointError(
                f"cannot read checkpoint {path}: it is not a plain weights file (it is corrupt, "
                "or it holds Python objects that would have to run code to load, which "
                "slicesam never does). Use the official weights file, or save only the "
                "model's state_dict: torch.save(model.state_dict(), path)"
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Is it a PyTorch weights file (.pth/.pt) and complete (not truncated)?"
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no model weights (no tensors found)")
    return state
