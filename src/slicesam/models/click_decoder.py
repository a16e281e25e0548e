"""LiteMedSAM's prompt encoder and mask decoder trained for clicks (``slicesam train-clicks``).

LiteMedSAM was trained with boxes: on clicks its own decoder gives little. A click decoder is a
copy of its prompt encoder and mask decoder fine-tuned with simulated click rounds on the
benchmark's ``training_objects`` (``docs/clicks.md``). It reads the same embeddings, so the
image encoder and the embedding cache are shared; a prediction that has clicks goes to it, one
without clicks to the original decoder. None ships with the package: on the benchmark the
engine's click rules still correct 3D objects better (``docs/clicks.md``), so "rules" is the
default and a trained file is opt-in (``load_litemedsam(click_decoder=PATH)``).

Files are read with ``torch.load(weights_only=True)``; their sha256 is recorded in the model's
:class:`~slicesam.models.base.Capabilities` (journal, autosave, bench results).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..errors import CheckpointError, SliceSamError
from .checkpoints import file_sha256, load_state_dict

#: How a LiteMedSAM session turns clicks into masks: "rules" (the original box decoder with the
#: engine's click rules), "learned" (a click decoder file) or "fbrs" (the original decoder with
#: its embedding refined at each click until the clicks hold, :mod:`~slicesam.models.fbrs`).
CLICK_MODES = ("rules", "learned", "fbrs")


def click_mode(requested: str | None) -> str:
    """``requested``, or "rules" for None.

    Raises:
        SliceSamError: an unknown mode.
    """
    mode = requested or "rules"
    if mode not in CLICK_MODES:
        raise SliceSamError(f"unknown click mode {mode!r}; choose one of {', '.join(CLICK_MODES)}")
    return mode


def load_click_modules(
    prompt_encoder: torch.nn.Module,
    mask_decoder: torch.nn.Module,
    path: str | Path,
    device: str = "cpu",
) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """Copies of LiteMedSAM's ``prompt_encoder`` and ``mask_decoder`` with a click decoder's
    parameters (float32).

    Args:
        prompt_encoder, mask_decoder: the model's own modules (not changed).
        path: a click decoder file from ``slicesam train-clicks``.
        device: where the modules live.

    Returns:
        (prompt encoder, mask decoder, the file's sha256)

    Raises:
        CheckpointError: the file is missing, unreadable, or does not fit LiteMedSAM.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"the click decoder file {path} is missing; train one with "
            "slicesam train-clicks --data DATASETS --out DIR (DIR/click_decoder.pt)"
        )
    digest = file_sha256(path)
    state = load_state_dict(path, map_location=device)
    modules = []
    for prefix, module in (("prompt_encoder", prompt_encoder), ("mask_decoder", mask_decoder)):
        # parameters only: buffers (the positional encoding's fixed random matrix) stay the
        # original's, exactly, as the two decoders share one positional encoding
        names = {name for name, _ in module.named_parameters()}
        part = {name: state.get(f"{prefix}.{name}") for name in names}
        missing = sorted(name for name, value in part.items() if value is None)
        if missing:
            raise CheckpointError(
                f"{path} is not a LiteMedSAM click decoder (no {prefix}.{missing[0]})"
            )
        twin = copy.deepcopy(module)
        try:
            twin.load_state_dict({**twin.state_dict(), **part}, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path} is not a LiteMedSAM click decoder ({str(exc).splitlines()[0]})"
            ) from None
        modules.append(twin.float().to(device).eval())
    return modules[0], modules[1], digest
