"""``slicesam demo``: five organs of the sample CT from one box each, with Dice against the
reference labels and a PNG of three axial slices."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .metrics import dice

DEMO_ORGANS = ("liver", "spleen", "kidney_right", "kidney_left", "aorta")


def tight_box_on_largest_slice(gt: np.ndarray) -> tuple[int, tuple[int, int, int, int]]:
    """(z, (x0, y0, x1, y1)) of the tight box on the slice where a (z, y, x) mask is largest."""
    z = int(np.argmax(gt.sum(axis=(1, 2))))
    ys, xs = np.nonzero(gt[z])
    return z, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def save_overlay_png(
    path: Path,
    image: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray | None,
    window: tuple[float, float],
    slices: list[int],
    names: dict[int, str],
) -> None:
    """PNG of axial slices: windowed image, labels as a colour overlay, reference as contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ids = sorted(names)
    colors = plt.get_cmap("tab10")(np.arange(len(ids)) % 10)
    fig, axes = plt.subplots(1, len(slices), figsize=(5 * len(slices), 5.2))
    for ax, z in zip(np.atleast_1d(axes), slices):
        ax.imshow(image[z], cmap="gray", vmin=window[0], vmax=window[1])
        for color, label in zip(colors, ids):
            mask = labels[z] == label
            if mask.any():
                ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([color]), alpha=0.45)
            if reference is not None and (reference[z] == label).any():
                ax.contour(reference[z] == label, levels=[0.5], colors=[color], linewidths=1)
        ax.set_title(f"axial slice z={z}")
        ax.axis("off")
    handles = [Patch(color=c, label=names[i]) for c, i in zip(colors, ids)]
    fig.legend(handles=handles, loc="lower center", ncol=len(ids), frameon=False)
    fig.suptitle("slicesam (filled) vs reference (contours); anterior up, patient right on left")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_demo(out_dir: Path, device: str = "auto") -> dict[str, float]:
    """Segment :data:`DEMO_ORGANS` in the sample CT, save labels and a PNG, print Dice.

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
    sess = Session(vol, device=device)
    print(f"{vol}\nmodel {sess.model.name} on {sess.model.device}, window {sess.window}")
    out_dir.mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}
    names: dict[int, str] = {}
    remap = np.zeros(int(ref.max()) + 1, dtype=np.uint16)
    for organ in DEMO_ORGANS:
        ref_id = sample.label_id(organ)
        gt = ref == ref_id
        z, box = tight_box_on_largest_slice(gt)
        t = time.perf_counter()
        obj = sess.new_object(organ)
        sess.add_box(obj, z, box)
        summary = sess.propagate(obj)
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
    save_overlay_png(png, vol.data, sess.labels, remap[ref], sess.window, picks, names)
    print(f"mean 3D Dice {np.mean(list(scores.values())):.3f} over {len(scores)} organs")
    print(f"wrote {labels_path}\nwrote {png}\ntotal {time.perf_counter() - t0:.1f} s")
    return scores
