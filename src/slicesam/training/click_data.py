"""The slices a click decoder is trained on: embeddings and ground-truth masks of the
``training_objects`` of the benchmark datasets (``../shared/BENCHMARK.md``, "Splits").

Every slice is embedded through a :class:`~slicesam.engine.session.Session`, so the windowing
and the encoder are the ones inference uses. Augmentation is the volume mirrored left-right and
top-bottom (each mirror embedded anew: the encoder is not mirror-symmetric). Embeddings are kept
in a folder (``embeddings/<dataset>-<mirror>.pt``) so a re-run skips the encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..bench.datasets import discover, load_dataset
from ..engine.session import Session
from ..models.base import Embedding, SegmentationModel

#: Slices where an object covers fewer pixels than this are not trained on (single-pixel
#: tails of a structure are label noise, not something a user clicks).
MIN_AREA_PX = 12
#: Mirrors of each volume that are embedded: none, left-right, top-bottom.
MIRRORS = ("none", "x", "y")


@dataclass
class TrainingSlice:
    """One object on one slice.

    Attributes:
        dataset: the dataset's folder name.
        label: the object's label id.
        z: the slice.
        mirror: which of :data:`MIRRORS` the slice comes from.
        embedding: the slice's embedding (features (1, 256, 64, 64) float16).
        gt: (y, x) bool mask of the object on the (mirrored) slice.
    """

    dataset: str
    label: int
    z: int
    mirror: str
    embedding: Embedding
    gt: np.ndarray


def _mirrored(data: np.ndarray, mirror: str) -> np.ndarray:
    if mirror == "x":
        return np.ascontiguousarray(data[:, :, ::-1])
    if mirror == "y":
        return np.ascontiguousarray(data[:, ::-1, :])
    return data


def _embed_all(sess: Session, zs: list[int], path: Path) -> dict[int, Embedding]:
    """The embeddings of slices ``zs``, read from ``path`` when it holds them all."""
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        if set(stored["z"].tolist()) >= set(zs):
            size = tuple(stored["original_size"].tolist()), tuple(stored["input_size"].tolist())
            return {
                int(z): Embedding(f[None], size[0], size[1], f.element_size() * f.nelement())
                for z, f in zip(stored["z"].tolist(), stored["features"])
            }
    out = {z: sess.embed(z) for z in zs}
    first = out[zs[0]]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "z": torch.tensor(zs),
            "features": torch.cat([out[z].features for z in zs]),
            "original_size": torch.tensor(first.original_size),
            "input_size": torch.tensor(first.input_size),
        },
        path,
    )
    return out


def load_training_slices(
    data: str | Path,
    model: SegmentationModel,
    embeddings_dir: str | Path,
    *,
    mirrors: tuple[str, ...] = MIRRORS,
    on_volume: Callable[[str], None] | None = None,
) -> list[TrainingSlice]:
    """Every (training object, slice, mirror) of the datasets under ``data``.

    Args:
        data: the folder of benchmark datasets (each with a meta.json naming
            ``training_objects``); datasets without them contribute nothing.
        model: the model whose encoder embeds the slices.
        embeddings_dir: where embeddings are kept between runs.
        mirrors: which of :data:`MIRRORS` to use.
        on_volume: called with "<dataset> <mirror>" before each volume is embedded.
    """
    out: list[TrainingSlice] = []
    for folder in discover(data):
        ds = load_dataset(folder, split="training")
        if not ds.objects:
            continue
        base = Session(ds.image, model=model)
        for mirror in mirrors:
            labels = _mirrored(ds.labels, mirror)
            wanted = {
                label: [
                    int(z)
                    for z in np.flatnonzero((labels == label).sum(axis=(1, 2)) >= MIN_AREA_PX)
                ]
                for label in ds.objects
            }
            zs = sorted({z for v in wanted.values() for z in v})
            if not zs:
                continue
            if on_volume is not None:
                on_volume(f"{ds.name} {mirror}")
            sess = Session(_mirrored(ds.image.data, mirror), model=model, window=base.window)
            path = Path(embeddings_dir) / f"{ds.name}-{mirror}.pt"
            embeddings = _embed_all(sess, zs, path)
            for label, label_zs in wanted.items():
                for z in label_zs:
                    out.append(
                        TrainingSlice(ds.name, label, z, mirror, embeddings[z], labels[z] == label)
                    )
    return out
