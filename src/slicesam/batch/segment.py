"""One volume's work from a prompts file to a label volume, shared by ``slicesam segment`` and
every task of ``slicesam batch``: read the volume and its prompts (checked against the
volume's shape), then prompt and propagate each object in a :class:`Session`.

No dask and no torch here; progress is reported through optional callbacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.session import Session
from ..engine.walks import PropagationSummary
from ..errors import SliceSamError
from ..io import load_volume
from ..io.volume import Volume
from ..prompts import ObjectPrompts, read_prompts

#: ``bar(description)``: a context giving a ``callback(done, total)`` for one propagation
#: (or None), as :meth:`slicesam.cli_output.CliProgress.bar` does.
BarFactory = Callable[[str], AbstractContextManager[Callable[[int, int], None] | None]]


def load_inputs(
    image: str | Path,
    prompts: str | Path,
    *,
    series: str | None = None,
    channel: int | None = None,
    modality: str | None = None,
    fill_nonfinite: float | None = None,
) -> tuple[Volume, list[ObjectPrompts]]:
    """Read a volume and its prompts file, every prompt checked against the volume's shape.

    Args:
        image: a NIfTI or TIFF file or a DICOM series folder (see :func:`slicesam.load_volume`).
        prompts: a prompts JSON file (format in :mod:`slicesam.prompts`).
        series, channel, modality, fill_nonfinite: passed to :func:`slicesam.load_volume`.

    Returns:
        the :class:`Volume` ((z, y, x) data) and its objects' prompts, in file order.

    Raises:
        SliceSamError: the volume cannot be read or a prompt does not fit it (one line).
    """
    vol = load_volume(
        image, series=series, channel=channel, modality=modality, fill_nonfinite=fill_nonfinite
    )
    return vol, read_prompts(prompts, shape=vol.shape)


@dataclass
class Segmented:
    """What :func:`segment_objects` did.

    Attributes:
        objects: how many objects were segmented (one label id each).
        slices: how many slices of the label volume hold any object.
        summaries: one :class:`PropagationSummary` per object (None where not propagated).
    """

    objects: int
    slices: int
    summaries: list[PropagationSummary | None] = field(default_factory=list)


@contextlib.contextmanager
def _no_bar(desc: str) -> Iterator[None]:
    yield None


def segment_objects(
    sess: Session,
    objects: list[ObjectPrompts],
    *,
    propagate: bool = True,
    bar: BarFactory | None = None,
    note: Callable[[str], None] | None = None,
) -> Segmented:
    """Prompt every object of ``objects`` into ``sess`` (boxes, points, scribbles, lassos, in
    that order) and propagate it (within its ``z_range`` when given) into ``sess.labels``.

    Args:
        sess: the session on the volume the prompts were checked against.
        objects: from :func:`load_inputs` (or :func:`slicesam.read_prompts`).
        propagate: False to segment the prompted slices only.
        bar: progress per object (see :data:`BarFactory`); None for none.
        note: called with each propagation's summary line; None for none.

    Raises:
        SliceSamError: a prompt the session refuses, as ``prompts objects[i]: ...``.
    """
    bar = bar or _no_bar
    summaries: list[PropagationSummary | None] = []
    for i, obj in enumerate(objects):
        try:
            label = sess.new_object(obj.name, label_id=obj.label_id)
            name = obj.name or f"object {label}"
            with bar(f"{name} ({i + 1}/{len(objects)})") as callback:
                for box in obj.boxes:
                    sess.add_box(label, box.z, box.xyxy)
                for point in obj.points:
                    sess.add_point(label, point.z, point.y, point.x, point.positive)
                for st in obj.scribbles:
                    sess.add_scribble(label, st.z, [list(v) for v in st.points], st.positive)
                for st in obj.lassos:
                    sess.add_lasso(label, st.z, [list(v) for v in st.points], st.positive)
                summary = None
                if propagate:
                    summary = sess.propagate(label, z_range=obj.z_range, progress=callback)
            summaries.append(summary)
            if summary is not None and note is not None:
                note(str(summary))
        except SliceSamError as exc:
            raise SliceSamError(f"prompts objects[{i}]: {exc}") from None
    return Segmented(len(objects), labelled_slices(sess.labels), summaries)


def labelled_slices(labels: np.ndarray) -> int:
    """How many z slices of a (z, y, x) label volume hold any non-zero voxel."""
    return int(sum(bool(np.any(labels[z])) for z in range(labels.shape[0])))
