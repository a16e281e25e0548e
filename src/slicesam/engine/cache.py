"""In-memory LRU cache of slice embeddings with a byte budget.

Entries are keyed by slice index within one signature (volume content, axis, intensity window,
model name, weights hash and encoder variant). A cache created for one signature refuses
lookups under another, so a window or model change can never reuse stale embeddings.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.lazy import is_lazy, slice_sample
from ..models.base import Embedding, SegmentationModel

if TYPE_CHECKING:  # pragma: no cover
    from .disk_cache import DiskEmbeddingStore


def volume_fingerprint(data: np.ndarray) -> str:
    """A short content hash of a (z, y, x) array (shape, dtype and every voxel)."""
    digest = hashlib.sha256()
    digest.update(repr((data.shape, str(data.dtype))).encode())
    for z in range(data.shape[0]):
        digest.update(np.ascontiguousarray(data[z]).tobytes())
    return digest.hexdigest()[:16]


def sample_fingerprint(data: object) -> str:
    """A short hash of a lazy (z, y, x) array's shape, dtype and sampled slices
    (:func:`~slicesam.io.lazy.slice_sample`): identifies it within one session without
    reading it whole."""
    digest = hashlib.sha256()
    digest.update(repr((tuple(data.shape), str(data.dtype), "sample")).encode())  # type: ignore[attr-defined]
    digest.update(np.ascontiguousarray(slice_sample(data)).tobytes())
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Thread-safe LRU of :class:`Embedding` by slice index.

    Args:
        signature: identifies what the embeddings depend on (see module docstring).
        max_bytes: budget; least recently used slices are evicted beyond it (at least one
            entry is always kept).
        store: an optional on-disk store of the same signature: looked up on a memory miss
            before computing, and given every computed embedding.
        wait_context: entered while a thread waits for a slice another thread is computing
            (the session's :meth:`~slicesam.engine.foreground.ForegroundGate.released`, so a
            paused prefetcher can finish the slice a click is waiting for).
    """

    def __init__(
        self,
        signature: str,
        max_bytes: int = 2 * 1024**3,
        store: DiskEmbeddingStore | None = None,
        wait_context: Callable[[], AbstractContextManager] | None = None,
    ) -> None:
        if store is not None and store.signature != signature:
            raise ValueError("the disk store holds embeddings of another signature")
        self.signature = signature
        self.store = store
        self._wait_context = wait_context or nullcontext
        self.disk_hits = 0
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[int, Embedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    def __contains__(self, z: int) -> bool:
        with self._lock:
            return z in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, z: int) -> Embedding | None:
        with self._lock:
            emb = self._entries.get(z)
            if emb is None:
                self.misses += 1
                return None
            self._entries.move_to_end(z)
            self.hits += 1
            return emb

    def put(self, z: int, emb: Embedding) -> None:
        with self._lock:
            old = self._entries.pop(z, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[z] = emb
            self._bytes += emb.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def get_or_compute(self, z: int, compute: Callable[[], Embedding]) -> Embedding:
        """Return the cached embedding of slice ``z`` or compute, store and return it.

        When another thread is already computing slice ``z`` (e.g. the prefetcher), wait for
        its result instead of computing the same slice twice.
        """
        while True:
            emb = self.get(z)
            if emb is not None:
                return emb
            with self._lock:
                pending = self._inflight.get(z)
                if pending is None:
                    pending = self._inflight[z] = threading.Event()
                    owner = True
                else:
                    owner = False
            if not owner:
                with self._wait_context():
                    pending.wait()
                continue  # computed (or failed) by the other thread: look again
            try:
                emb = self.store.get(z) if self.store is not None else None
                if emb is None:
                    emb = compute()
                    if self.store is not None:
                        self.store.put(z, emb)
                else:
                    self.disk_hits += 1
                self.put(z, emb)
                return emb
            finally:
                with self._lock:
                    del self._inflight[z]
                pending.set()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def session_cache(
    data: np.ndarray,
    window: tuple[float, float],
    model: SegmentationModel,
    *,
    max_bytes: int,
    disk_cache: str | Path | bool | None = None,
    wait_context: Callable[[], AbstractContextManager[None]] | None = None,
) -> EmbeddingCache:
    """The embedding cache of a session on the (z, y, x) ``data`` seen through ``window`` by
    ``model``; with ``disk_cache`` (True: the user cache folder; or a folder) backed by an
    on-disk store, for models whose embeddings can be packed.

    The signature's content hash covers every voxel (:func:`volume_fingerprint`), except for
    a lazy volume without a disk store, where the sampled slices identify it
    (:func:`sample_fingerprint`), so that a session on a volume larger than memory reads
    only the slices it embeds. With a disk store a lazy volume is hashed whole (one pass,
    slice by slice), so a store never serves embeddings of changed content."""
    on_disk = bool(disk_cache) and model.capabilities.packs_embeddings
    content = (
        sample_fingerprint(data) if is_lazy(data) and not on_disk else volume_fingerprint(data)
    )
    signature = "|".join(
        [
            content,
            f"{window[0]:g},{window[1]:g}",
            model.name,
            model.weights_sha256,
            # the fast and the reference encoder give slightly different features
            model.capabilities.encoder,
        ]
    )
    store = None
    if on_disk:
        from .disk_cache import DiskEmbeddingStore, embeddings_cache_dir

        root = embeddings_cache_dir() if disk_cache is True else Path(disk_cache)
        store = DiskEmbeddingStore(root, signature, model.pack, model.unpack)
    return EmbeddingCache(signature, max_bytes=max_bytes, store=store, wait_context=wait_context)
