"""An optional on-disk store of slice embeddings, so a second session on a volume starts warm.

One folder per signature (volume content hash, intensity window, model name, weights hash and
encoder variant: see :class:`~slicesam.engine.cache.EmbeddingCache`), named by the signature's
hash, with one ``z00012.npz`` per slice (the backend's :meth:`pack` arrays: float16 features
for the SAM family) and a ``signature.txt`` that says what the folder holds. Files are written
to a temporary name and renamed, so a killed process never leaves a half-written slice; a file
that cannot be read is ignored (and replaced when the slice is embedded again).

Folders are plain numpy files rather than zarr: one file per slice is all the access pattern
needs, and it adds no dependency.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..models.base import Embedding
from ..user_cache import embeddings_dir

_log = logging.getLogger(__name__)


def embeddings_cache_dir() -> Path:
    """The default root of on-disk embedding stores (next to the autosave sidecars:
    ``$SLICESAM_CACHE_DIR/embeddings`` or the user cache folder)."""
    return embeddings_dir()


class DiskEmbeddingStore:
    """Embeddings of one signature on disk.

    Args:
        root: the folder holding one sub-folder per signature.
        signature: what the embeddings depend on.
        pack: the backend's ``Embedding -> dict of arrays``.
        unpack: its inverse.
    """

    def __init__(
        self,
        root: str | Path,
        signature: str,
        pack: Callable[[Embedding], dict[str, np.ndarray]],
        unpack: Callable[[dict[str, np.ndarray]], Embedding],
    ) -> None:
        self.signature = signature
        key = hashlib.sha256(signature.encode("utf-8")).hexdigest()[:24]
        self.folder = Path(root).expanduser() / key
        self._pack = pack
        self._unpack = unpack
        self.folder.mkdir(parents=True, exist_ok=True)
        label = self.folder / "signature.txt"
        if not label.is_file():
            label.write_text(signature + "\n", encoding="utf-8")

    def _path(self, z: int) -> Path:
        return self.folder / f"z{int(z):05d}.npz"

    def __contains__(self, z: int) -> bool:
        return self._path(z).is_file()

    def get(self, z: int) -> Embedding | None:
        """Slice ``z``'s embedding, or None when it is not stored (or unreadable)."""
        path = self._path(z)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            return self._unpack(arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            _log.warning("ignoring unreadable cached embedding %s (%s)", path, exc)
            return None

    def put(self, z: int, emb: Embedding) -> None:
        """Store slice ``z``'s embedding (atomically). Disk errors are logged, not raised: the
        store is an accelerator, never a reason for an action to fail."""
        try:
            arrays = self._pack(emb)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **arrays)
                os.replace(tmp, self._path(z))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            _log.warning("could not store the embedding of slice %d in %s: %s", z, self.folder, exc)
