"""The model, loaded once per dask worker: a :class:`distributed.WorkerPlugin`.

Registered on the client (:meth:`distributed.Client.register_plugin`), the plugin is copied to
every worker, those that join later included (dask-jobqueue scaling up), and loads the model
there in its ``setup``, off the worker's event loop. Tasks get it with :func:`worker_model`.
A worker with a GPU gets it with ``device="auto"``.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from ..errors import SliceSamError
from ..models.base import SegmentationModel

#: The plugin's name on each worker.
PLUGIN_NAME = "slicesam-model"

#: ``loader(name, checkpoint, device) -> model``.
Loader = Callable[[str, "str | Path | None", str], SegmentationModel]


def registry_loader(name: str, checkpoint: str | Path | None, device: str) -> SegmentationModel:
    """The default loader: :func:`slicesam.models.registry.load_model`."""
    from ..models import registry

    return registry.load_model(name, checkpoint=checkpoint, device=device)


class ModelPlugin(WorkerPlugin):
    """Loads one model on each worker it is registered on.

    Args:
        model: registry name.
        checkpoint: weights file (as seen from the workers), or None.
        device: "auto", "cpu", "cuda" or "mps", resolved on each worker.
        threads: CPU threads of the model's forwards (set by each task; None: leave them).
        loader: builds the model (a module-level function, since the plugin is pickled);
            :func:`registry_loader` by default.
    """

    idempotent = False
    name = PLUGIN_NAME

    def __init__(
        self,
        model: str,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.model_name = model
        self.checkpoint = checkpoint
        self.device = device
        self.threads = threads
        self.loader = loader or registry_loader
        self.model: SegmentationModel | None = None
        self.error: str | None = None
        self.load_seconds = 0.0
        self.warnings: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["model"] = None  # never ship a loaded model
        return state

    async def setup(self, worker: Any) -> None:
        """Load the model in a thread, so the worker keeps answering the scheduler."""
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.model = self.loader(self.model_name, self.checkpoint, self.device)
            self.warnings = sorted({str(w.message) for w in caught})
        except SliceSamError as exc:
            self.error = str(exc)
        except Exception as exc:  # reported with each task, the worker stays up
            self.error = f"{type(exc).__name__}: {exc}"
        self.load_seconds = time.perf_counter() - t0

    def teardown(self, worker: Any) -> None:
        """Drop the model (the worker is closing or the plugin is replaced)."""
        self.model = None

    def info(self) -> dict[str, Any]:
        """What this worker loaded: name, device, encoder variant, seconds, error, warnings."""
        model = self.model
        return {
            "model": self.model_name,
            "device": getattr(model, "device", None),
            "encoder": model.capabilities.encoder if model is not None else None,
            "seconds": round(self.load_seconds, 2),
            "error": self.error,
            "warnings": self.warnings,
        }


def worker_plugin() -> ModelPlugin:
    """The :class:`ModelPlugin` of the worker running the calling task."""
    plugin = get_worker().plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, ModelPlugin):
        raise SliceSamError("this dask worker has no slicesam model (the plugin is not registered)")
    return plugin


def worker_model() -> tuple[SegmentationModel, int | None]:
    """The model of the worker running the calling task, and its thread count setting.

    Raises:
        SliceSamError: the model failed to load on this worker (the loader's message).
    """
    plugin = worker_plugin()
    if plugin.model is None:
        raise SliceSamError(
            f"model {plugin.model_name} did not load on this worker: {plugin.error or 'unknown'}"
        )
    return plugin.model, plugin.threads


def plugin_info(dask_worker: Any) -> dict[str, Any]:
    """For :meth:`distributed.Client.run`: the plugin's :meth:`ModelPlugin.info` on a worker."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.info() if isinstance(plugin, ModelPlugin) else {"error": "no plugin"}
