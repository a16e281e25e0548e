"""Screenshots of the real viewer for the README: ``make screenshots`` (runs under Xvfb).

Opens the sample CT with the plugin's reader, segments the liver, spleen and left kidney with
the SliceSAM widget (one box each, one positive click for the kidney), propagates, and saves
what the user sees: the whole window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from slicesam._napari.widget import SliceSamWidget
from slicesam.demo import tight_box_on_largest_slice
from slicesam.io import load_volume
from slicesam.samples import get_sample

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "images"


def settle(widget: SliceSamWidget, timeout: float = 600) -> None:
    app = QApplication.instance()
    t0 = time.time()
    while widget.busy and time.time() - t0 < timeout:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)


def box_prompt(widget: SliceSamWidget, z: int, box) -> None:
    x0, y0, x1, y1 = box
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)
    widget.shapes_layer.add_rectangles(corners)
    settle(widget)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sample = get_sample("ct_abdomen")
    ref = load_volume(sample.labels).data
    viewer = napari.Viewer(show=True, title="napari-slicesam")
    viewer.window._qt_window.resize(1500, 950)
    viewer.open(str(sample.image), plugin="napari-slicesam")
    widget = SliceSamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SliceSAM", area="right")
    widget.start()
    settle(widget)
    widget._run(lambda s: s.rename_object(widget.current_obj, "liver"), "rename")
    settle(widget)
    z, box = tight_box_on_largest_slice(ref == sample.label_id("liver"))
    viewer.dims.set_current_step(0, z)
    box_prompt(widget, z, box)
    widget.propagate()
    settle(widget)
    widget.new_object("spleen")
    settle(widget)
    z, box = tight_box_on_largest_slice(ref == sample.label_id("spleen"))
    box_prompt(widget, z, box)
    widget.propagate()
    settle(widget)
    widget.new_object("kidney left")
    settle(widget)
    kidney = ref == sample.label_id("kidney_left")
    z = int(np.argmax(kidney.sum(axis=(1, 2))))
    ys, xs = np.nonzero(kidney[z])
    widget.points_layer.add([[z, int(np.median(ys)), int(np.median(xs))]])
    settle(widget)
    widget.propagate()
    settle(widget)
    viewer.dims.set_current_step(0, 16)
    viewer.reset_view()
    settle(widget)
    viewer.screenshot(str(OUT / "widget_ct.png"), canvas_only=False)
    print("wrote", *sorted(str(p) for p in OUT.glob("*.png")))
    widget.close()
    viewer.close()


if __name__ == "__main__":
    main()
