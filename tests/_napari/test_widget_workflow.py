"""The real workflow in napari with the real LiteMedSAM on the sample CT: open via the plugin's
reader, box the liver, see the mask, propagate, undo, save, re-open and compare."""

from __future__ import annotations

import os

import numpy as np
import pytest

from slicesam._napari.widget import SliceSamWidget
from slicesam.demo import tight_box_on_largest_slice
from slicesam.io import load_volume
from slicesam.metrics import dice
from slicesam.samples import get_sample

pytestmark = [
    pytest.mark.gui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="napari needs an X server (Xvfb)"),
]


def test_liver_workflow_in_napari(make_napari_viewer, qtbot, tmp_path):
    sample = get_sample("ct_abdomen")
    ref = load_volume(sample.labels).data
    gt = ref == sample.label_id("liver")
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(sample.image), plugin="napari-slicesam")
    image = layers[0]
    assert image.data.shape == (30, 101, 122)
    assert np.allclose(image.scale, (3.0, 3.0, 3.0))
    assert tuple(image.contrast_limits) == (-160.0, 240.0)

    widget = SliceSamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.device_combo.setCurrentText("cpu")
    widget.start()
    qtbot.waitUntil(lambda: widget.session is not None and not widget.busy, timeout=60000)
    assert widget.session.model.name == "litemedsam"
    assert widget.session.window == (-160.0, 240.0)  # from the layer's contrast limits

    z, (x0, y0, x1, y1) = tight_box_on_largest_slice(gt)
    viewer.dims.set_current_step(0, z)
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)
    widget.shapes_layer.add_rectangles(corners)
    qtbot.waitUntil(lambda: not widget.busy, timeout=60000)
    assert dice(widget.labels_layer.data[z] == 1, gt[z]) > 0.9  # the mask is there at once

    widget.propagate()
    qtbot.waitUntil(lambda: not widget.busy, timeout=300000)
    after = widget.labels_layer.data.copy()
    assert dice(after == 1, gt) >= 0.85
    assert "slices written" in widget.status_label.text()

    widget.undo()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60000)
    assert np.flatnonzero((widget.labels_layer.data == 1).any(axis=(1, 2))).tolist() == [z]
    widget.redo()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60000)
    assert np.array_equal(widget.labels_layer.data, after)

    written = widget.save(tmp_path / "liver_labels.nii.gz")
    reopened = viewer.open(str(written), plugin="napari-slicesam")[0]
    assert reopened.__class__.__name__ == "Labels"
    assert np.array_equal(np.asarray(reopened.data), after)
    import nibabel as nib

    assert np.array_equal(nib.load(written).affine, nib.load(sample.image).affine)
