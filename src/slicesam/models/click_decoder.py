"""LiteMedSAM's prompt encoder and mask decoder trained for clicks (``slicesam train-clicks``).

LiteMedSAM was trained with boxes: on clicks its own decoder gives little. The click decoder is
a copy of its prompt encoder and mask decoder fine-tuned with simulated click rounds on the
benchmark's ``training_objects`` (model card: ``docs/click_decoder.md``). It reads the same
embeddings, so the image encoder and the embedding cache are shared; a prediction that has
clicks goes to it, one without clicks to the original decoder.

The shipped weights (``assets/litemedsam_clicks.pt``, float16) are read with
``torch.load(weights_only=True)`` and checked against :data:`CLICK_DECODER_SHA256`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ..errors import CheckpointError, SliceSamError
from .checkpoints import file_sha256, load_state_dict

#: The click decoder shipped inside the package.
CLICK_DECODER_PATH = Path(__file__).parent / "assets" / "litemedsam_clicks.pt"
#: sha256 of :data:`CLICK_DECODER_PATH` as trained (docs/click_decoder.md).
CLICK_DECODER_SHA256 = ""
#: How a LiteMedSAM session turns clicks into masks: "learned" (the click decoder) or "rules"
#: (the original box decoder with the engine's click rules).
CLICK_MODES = ("learned", "rules")


def click_mode(requested: str | None) -> str:
    """The click mode to use: ``requested``, else ``$SLICESAM_LITEMEDSAM_CLICKS``, else
    "rules".

    Raises:
        SliceSamError: an unknown mode.
    """
    mode = requested or os.environ.get("SLICESAM_LITEMEDSAM_CLICKS") or "rules"
    if mode not in CLICK_MODES:
        raise SliceSamError(f"unknown click mode {mode!r}; choose one of {', '.join(CLICK_MODES)}")
    return mode


def load_click_modules(
    prompt_encoder: torch.nn.Module,
    mask_decoder: torch.nn.Module,
    path: str | Path | None = None,
    device: str = "cpu",
) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """Copies of LiteMedSAM's ``prompt_encoder`` and ``mask_decoder`` with the click
    decoder's weights (float32).

    Args:
        prompt_encoder, mask_decoder: the model's own modules (not changed).
        path: a click decoder file from ``slicesam train-clicks`` (its hash is recorded, not
            checked), or None for the shipped one (checked against :data:`CLICK_DECODER_SHA256`).
        device: where the modules live.

    Returns:
        (prompt encoder, mask decoder, the weights file's sha256)

    Raises:
        CheckpointError: the file is missing, fails its hash, or does not fit LiteMedSAM.
    """
    shipped = path is None
    path = Path(CLICK_DECODER_PATH if shipped else path)
    if not path.is_file():
        raise CheckpointError(
            f"the click decoder weights {path} are missing"
            + ("; reinstall napari-slicesam" if shipped else "")
        )
    digest = file_sha256(path)
    if shipped and digest != CLICK_DECODER_SHA256:
        raise CheckpointError(
            f"the click decoder weights {path} fail their sha256 check (got {digest[:12]}…, "
            f"expected {CLICK_DECODER_SHA256[:12]}…); reinstall napari-slicesam"
        )
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
