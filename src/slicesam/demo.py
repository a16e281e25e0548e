"""``slicesam demo``: five organs of the sample CT from one box each, with Dice against the
reference labels and a PNG of three axial slices."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import dice

DEMO_ORGANS = ("liver", "spleen", "kidney_right", "kidney_left", "aorta")


def tight_box_on_largest_slice(gt: np.ndarray) -> tuple[int, tuple[int, int, int, int]]:
    """(z, (x0, y0, x1, y1)) of the tight box on the slice where a (z, y, x) mask is largest."""
    z = int(np.argmax(gt.sum(axis=(1, 2))))
    ys, xs = np.nonzero(gt[z])
    return z, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


#: Colour of the reference contours: bright yellow with a thin black edge, unlike any fill.
REFERENCE_COLOR = "#ffff00"


def save_overlay_png(
    path: Path,
    image: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray | None,
    window: tuple[float, float],
    slices: list[int],
    names: dict[int, str],
    scores: dict[int, float] | None = None,
) -> None:
    """PNG of axial slices: windowed image, labels as colour fills, reference as contours.

    Fills are tab10 colours at alpha 0.45; every reference contour is bright yellow with a
    black edge, so it stands out from the fills and from the image. ``scores`` (label id ->
    3D Dice) go into the legend ("liver 0.95").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as pe
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ids = sorted(names)
    colors = plt.get_cmap("tab10")(np.arange(len(ids)) % 10)
    edge = [pe.withStroke(linewidth=2.6, foreground="black")]
    fig, axes = plt.subplots(1, len(slices), figsize=(5 * len(slices), 5.6))
    for ax, z in zip(np.atleast_1d(axes), slices):
        ax.imshow(image[z], cmap="gray", vmin=window[0], vmax=window[1])
        for color, label in zip(colors, ids):
            mask = labels[z] == label
            if mask.any():
                ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([color]), alpha=0.45)
        if reference is not None:
            for label in ids:
                ref = reference[z] == label
                if ref.any():
                    contour = ax.contour(
                        ref, levels=[0.5], colors=[REFERENCE_COLOR], linewidths=1.3
                    )
                    contour.set(path_effects=edge)
        ax.set_title(f"axial slice z={z}")
        ax.axis("off")
    handles: list = []
    for c, i in zip(colors, ids):
        dice_text = f" {scores[i]:.2f}" if scores and i in scores else ""
        handles.append(Patch(facecolor=c, alpha=0.8, label=f"{names[i]}{dice_text}"))
    if reference is not None:
        handles.append(
            Line2D([], [], color=REFERENCE_COLOR, lw=1.6, path_effects=edge, label="reference")
        )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        frameon=False,
        fontsize=12,
        title="slicesam fill: organ and 3D Dice vs the reference" if scores else None,
    )
    fig.suptitle(
        "slicesam (coloured fill) vs reference (yellow contour); anterior up, patient right on left"
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_demo(out_dir: Path, device: str = "auto", progress: Any = None) -> dict[str, float]:
    """Segment :data:`DEMO_ORGANS` in the sample CT, save labels and a PNG, print Dice.

    Args:
        out_dir: folder for ``ct_abdomen_labels.nii.gz`` and ``ct_abdomen_overlay.png``.
        device: "auto", "cpu", "cuda" or "mps".
        progress: shows the model loading and one bar per organ on stderr (the CLI passes
            :class:`slicesam.cli.CliProgress`): an object with ``note(text)`` and the context
            managers ``waiting(desc)`` and ``bar(desc)`` (which yields a
            ``callback(done, total)`` or None); None shows nothing.

    Returns:
        organ name -> 3D Dice against the reference labels.
    """
    from .engine.session import Session
    from .io import load_volume, save_labels
    from .samples import get_sample

    t0 = time.perf_counter()
    sample = get_sample("ct_abdomen")
    vol = load_volume(sample.image)
    ref = load_volume(sample.labels).data
    waiting = progress.waiting if progress is not None else _no_progress
    bar = progress.bar if progress is not None else _no_progress
    with waiting("loading model litemedsam"):
        sess = Session(vol, device=device)
    print(f"{vol}\nmodel {sess.model.name} on {sess.model.device}, window {sess.window}")
    sys.stdout.flush()
    out_dir.mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}
    names: dict[int, str] = {}
    remap = np.zeros(int(ref.max()) + 1, dtype=np.uint16)
    for k, organ in enumerate(DEMO_ORGANS):
        ref_id = sample.label_id(organ)
        gt = ref == ref_id
        z, box = tight_box_on_largest_slice(gt)
        t = time.perf_counter()
        with bar(f"{organ} ({k + 1}/{len(DEMO_ORGANS)})") as callback:
            obj = sess.new_object(organ)
            sess.add_box(obj, z, box)
            summary = sess.propagate(obj, progress=callback)
        scores[organ] = dice(sess.labels == obj, gt)
        names[obj] = organ
        remap[ref_id] = obj
        print(
            f"  {organ:13s} box on z={z:2d} {box}  ->  3D Dice {scores[organ]:.3f}  "
            f"({len(summary.slices)} slices propagated, {time.perf_counter() - t:.1f} s)"
        )
        sys.stdout.flush()
    labels_path = save_labels(out_dir / "ct_abdomen_labels.nii.gz", sess.labels, like=vol)
    organ_voxels = np.flatnonzero((sess.labels > 0).sum(axis=(1, 2)))
    picks = [int(v) for v in np.percentile(organ_voxels, [25, 50, 75]).round()]
    png = out_dir / "ct_abdomen_overlay.png"
    by_id = {obj: scores[name] for obj, name in names.items()}
    save_overlay_png(png, vol.data, sess.labels, remap[ref], sess.window, picks, names, by_id)
    print(f"mean 3D Dice {np.mean(list(scores.values())):.3f} over {len(scores)} organs")
    print(f"wrote {labels_path}\nwrote {png}\ntotal {time.perf_counter() - t0:.1f} s")
    return scores


@contextlib.contextmanager
def _no_progress(desc: str) -> Iterator[None]:
    yield None
