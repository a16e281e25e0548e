"""What every volume of a batch is segmented (or embedded) with, and the checks made on it in
the client before a cluster starts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError, SliceSamError


@dataclass(frozen=True)
class BatchSettings:
    """The options of ``slicesam batch`` / ``embed`` that apply to every volume.

    Attributes:
        model: registry name (``slicesam models``).
        checkpoint: weights file, or None for the model's own (shipped or fetched) weights.
        device: "auto" (each worker picks CUDA > MPS > CPU), "cpu", "cuda" or "mps".
        window: (lo, hi), a CT preset name, or None for each volume's default window.
        modality: "CT", "MR", "microscopy" or None (detected per volume).
        channel: channel of 4D / multichannel files, or None.
        fill_nonfinite: value replacing NaN/inf voxels, or None (they are an error).
        propagate: False to segment the prompted slices only.
        threads: CPU threads of each worker's model (None: leave the worker's setting).
    """

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    window: tuple[float, float] | str | None = None
    modality: str | None = None
    channel: int | None = None
    fill_nonfinite: float | None = None
    propagate: bool = True
    threads: int | None = None

    def read_options(self) -> dict:
        """The ``load_volume`` keywords of these settings (channel, modality, NaN filling)."""
        return {
            "channel": self.channel,
            "modality": self.modality,
            "fill_nonfinite": self.fill_nonfinite,
        }

    def recipe(self) -> dict:
        """What the results depend on, for the record that lets a re-run skip a volume: all
        but where it runs (``device``, ``threads``). The checkpoint counts by path, size and
        modification time (hashing gigabytes of weights on every run would cost more than it
        saves)."""
        ckpt = None
        if self.checkpoint is not None:
            path = Path(self.checkpoint).expanduser().resolve()
            st = path.stat() if path.exists() else None
            ckpt = [str(path), st.st_size if st else None, st.st_mtime_ns if st else None]
        window = list(self.window) if isinstance(self.window, tuple) else self.window
        return {
            "model": self.model,
            "checkpoint": ckpt,
            "window": window,
            "modality": self.modality,
            "channel": self.channel,
            "fill_nonfinite": self.fill_nonfinite,
            "propagate": self.propagate,
        }


def parse_window(text: str | None) -> tuple[float, float] | str | None:
    """``--window``: ``"LO,HI"`` -> (lo, hi); a preset name stays a string; None stays None.

    Raises:
        SliceSamError: not two numbers.
    """
    if text is None:
        return None
    if "," in text:
        parts = text.split(",")
        if len(parts) != 2:
            raise SliceSamError(f"--window expects LO,HI or a preset name, got {text!r}")
        try:
            return float(parts[0]), float(parts[1])
        except ValueError:
            raise SliceSamError(f"--window expects numbers LO,HI, got {text!r}") from None
    return text


def check_model(settings: BatchSettings, *, embeddings: bool = False, local: bool = True) -> None:
    """Fail in one line, before any cluster starts, when the model cannot be used.

    Args:
        settings: the batch's settings.
        embeddings: the model must keep image embeddings (``slicesam embed``).
        local: the workers run on this machine (a LocalCluster), so the weights must be here;
            on a remote cluster only the name and an explicit checkpoint are checked.

    Raises:
        ModelError: an unknown model, or one without embeddings for ``embed``.
        SliceSamError: a checkpoint file that does not exist, or weights not fetched.
    """
    from ..models.registry import MODELS

    spec = MODELS.get(settings.model)
    if spec is None:
        raise ModelError(f"unknown model {settings.model!r}; choose one of: {', '.join(MODELS)}")
    if embeddings and not spec.needs_torch:
        raise ModelError(
            f"{spec.name} computes no image embeddings: there is nothing to cache "
            "(embed is for the SAM-family models)"
        )
    if settings.checkpoint is not None:
        path = Path(settings.checkpoint).expanduser()
        if not path.is_file():
            raise SliceSamError(f"checkpoint not found: {path}")
    elif local and spec.needs_checkpoint and not spec.weights_present():
        raise SliceSamError(
            f"the {spec.name} weights are not here: run `slicesam models fetch {spec.name}` "
            "or pass --checkpoint"
        )


def default_workers(cpus: int | None = None) -> int:
    """Workers of the default LocalCluster: half the cores, 1 to 4 (each model forward uses
    several threads; more processes would only multiply the memory)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(4, cpus // 2))


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """CPU threads for each of ``workers`` model processes on this machine: the cores shared
    out evenly (at least 1)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // max(1, workers))
