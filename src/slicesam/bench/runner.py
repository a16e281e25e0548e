"""Run the accuracy protocols over the benchmark datasets and write JSON, Markdown and PNG."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SliceSamError
from ..models.base import SegmentationModel
from .datasets import discover, load_dataset
from .protocols import BASELINES, PROTOCOLS, Runner
from .report import markdown, plot, summarize

ALL_PROTOCOLS = tuple(PROTOCOLS)


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(model: SegmentationModel) -> dict:
    """Versions, threads and CPU of this run."""
    import numpy as np

    from .. import __version__

    env = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["slicesam", *sys.argv[1:]]) if sys.argv else "",
        "slicesam": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "model": model.name,
        "weights_sha256": model.weights_sha256,
        "encoder": model.capabilities.encoder,
        "click_decoder": model.capabilities.click_decoder,
        "device": model.device,
    }
    env["cpu"] = cpu_name()
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def parse_protocols(text: str | None) -> list[str]:
    if not text:
        return list(ALL_PROTOCOLS)
    chosen = [p.strip().upper() for p in text.split(",") if p.strip()]
    bad = [p for p in chosen if p not in PROTOCOLS]
    if bad:
        raise SliceSamError(f"unknown protocol(s) {', '.join(bad)}; choose from P1,P2,P3,P4")
    return chosen


def run_benchmark(
    data: str | Path,
    out: str | Path,
    *,
    model: str | SegmentationModel = "litemedsam",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    protocols: Sequence[str] = ALL_PROTOCOLS,
    baselines: bool = True,
    datasets: list[str] | None = None,
    objects: list[int] | None = None,
    split: str = "reported",
    max_objects: int | None = None,
    all_objects: bool = False,
    p3_clicks: int = 10,
    p4_clicks: int = 20,
    progress: bool = True,
    session_kwargs: dict | None = None,
) -> dict:
    """Run the protocols on every dataset under ``data``; write ``out``/bench.json, bench.md,
    bench.png and return the result dictionary.

    ``split`` picks the structures (BENCHMARK.md "Splits": "reported", "validation",
    "training"); ``objects`` narrows them to these label ids. Results are written after each
    dataset, so an interrupted run keeps what it measured.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders = discover(data, datasets)
    if isinstance(model, str):
        from ..models.registry import load_model

        model = load_model(model, checkpoint=checkpoint, device=device)
    result: dict = {
        "environment": environment(model),
        "protocols": list(protocols),
        "split": split,
        "datasets": {},
    }
    loaded = [
        load_dataset(f, all_objects=all_objects, max_objects=max_objects, only=objects, split=split)
        for f in folders
    ]
    loaded = [ds for ds in loaded if ds.objects]  # e.g. no validation list in its meta.json
    tasks = list(protocols) + (list(BASELINES) if baselines else [])
    total = sum(len(d.objects) for d in loaded) * len(tasks)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="task", file=sys.stderr, dynamic_ncols=True)
    t_start = time.perf_counter()
    for ds in loaded:
        run = Runner(ds, model, dict(session_kwargs or {}))
        per_object: dict[str, dict] = {}
        t0 = time.perf_counter()
        for label in ds.objects:
            entry: dict = {"name": ds.names.get(label, str(label))}
            for task in tasks:
                if bar is not None:
                    bar.set_description(f"{ds.name} {entry['name']} {task}")
                fn = PROTOCOLS.get(task) or BASELINES[task]
                kwargs = {}
                if task == "P3":
                    kwargs["max_clicks"] = p3_clicks
                elif task == "P4":
                    kwargs["max_clicks"] = p4_clicks
                t1 = time.perf_counter()
                entry[task] = fn(run, label, **kwargs)
                entry[task]["seconds"] = round(time.perf_counter() - t1, 2)
                if bar is not None:
                    bar.update(1)
            per_object[str(label)] = entry
        result["datasets"][ds.name] = {
            "shape": list(ds.image.shape),
            "spacing": list(ds.image.spacing),
            "modality": ds.image.modality,
            "objects": per_object,
            "summary": summarize(per_object),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        _write(result, out)
    if bar is not None:
        bar.close()
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    _write(result, out)
    return result


def _write(result: dict, out: Path) -> None:
    tmp = out / "bench.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, allow_nan=True), encoding="utf-8")
    os.replace(tmp, out / "bench.json")
    (out / "bench.md").write_text(markdown(result), encoding="utf-8")
    plot(result, out / "bench.png")
