"""DICOM in napari: a series folder and a DICOM-SEG open through the plugin's reader, labels
save as DICOM-SEG through its writer, and the widget's journey on a DICOM series.

Series are synthetic (``tests/io/dicom_factory.py``); nothing reads ``../shared``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManager, PluginManifest
from npe2.io_utils import _read
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from dicom_factory import write_series  # noqa: E402

from slicesam._napari.reader import get_reader  # noqa: E402
from slicesam._napari.writer import write_labels  # noqa: E402
from slicesam.errors import SliceSamError  # noqa: E402
from slicesam.io import load_labels, load_volume, save_labels  # noqa: E402
from slicesam.io.dicom_seg import read_dicom_seg  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


def block_series(folder: Path) -> Path:
    """8 axial slices of 32x40 with a 276 HU block (stored 1300, intercept -1024)."""
    stack = np.zeros((8, 32, 40), np.uint16)
    stack[2:6, 8:20, 10:26] = 1300
    write_series(folder, stack, series_uid=generate_uid(), description="CT block")
    return folder


@pytest.fixture
def series(tmp_path: Path) -> Path:
    return block_series(tmp_path / "study" / "CT")


@pytest.fixture
def plugin_manager() -> PluginManager:
    pm = PluginManager()
    manifest = PluginManifest.from_file(REPO_ROOT / "napari.yaml")
    pm.register(manifest)
    pm.activate(manifest.name)
    return pm


def block_labels(volume) -> np.ndarray:
    labels = np.zeros(volume.shape, np.uint8)
    labels[volume.data > 0] = 2
    return labels


def test_npe2_offers_the_reader_for_a_dicom_folder_and_a_seg(plugin_manager, series) -> None:
    readers = list(plugin_manager.iter_compatible_readers([str(series)]))
    assert [r.command for r in readers] == ["napari-slicesam.get_reader"]
    readers = list(plugin_manager.iter_compatible_readers([str(series.parent / "seg.dcm")]))
    assert [r.command for r in readers] == ["napari-slicesam.get_reader"]
    writer, path = plugin_manager.get_writer(str(series.parent / "out.dcm"), ["labels"])
    assert writer is not None and path.endswith("out.dcm")


def test_folder_opens_as_an_image_layer_with_its_segs(plugin_manager, series) -> None:
    [(data, kwargs, layer_type)] = _read(
        [str(series)], stack=False, plugin_name="napari-slicesam", _pm=plugin_manager
    )
    volume = load_volume(series)
    assert layer_type == "image" and kwargs["name"] == "CT"
    np.testing.assert_array_equal(data, volume.data)
    assert kwargs["scale"] == volume.spacing
    save_labels(series / "seg.dcm", block_labels(volume), like=volume, names={2: "block"})
    layers = get_reader(str(series))(str(series))
    assert [t for _d, _k, t in layers] == ["image", "labels"]
    labels, lkw, _ = layers[1]
    np.testing.assert_array_equal(labels, block_labels(volume))
    assert lkw["features"]["name"] == ["background", "block"]


@pytest.mark.parametrize("where", ["beside", "inside", "sibling"])
def test_seg_file_opens_on_its_series_grid(tmp_path, series, where) -> None:
    volume = load_volume(series)
    seg = {
        "beside": series.parent / "labels.dcm",
        "inside": series / "labels.dcm",
        "sibling": series.parent / "SEG" / "labels.dcm",
    }[where]
    save_labels(seg, block_labels(volume), like=volume, names={2: "block"})
    [(labels, kwargs, layer_type)] = get_reader(str(seg))(str(seg))
    assert layer_type == "labels" and kwargs["name"] == "labels"
    np.testing.assert_array_equal(labels, block_labels(volume))
    assert kwargs["scale"] == volume.spacing
    assert kwargs["metadata"]["slicesam_names"] == {2: "block"}


def test_seg_without_its_series_says_where_to_put_it(tmp_path, series) -> None:
    volume = load_volume(series)
    lonely = tmp_path / "elsewhere" / "labels.dcm"
    save_labels(lonely, block_labels(volume), like=volume)
    with pytest.raises(SliceSamError, match="not in .* nor in a folder beside it"):
        get_reader(str(lonely))(str(lonely))


def test_writer_saves_a_seg_with_names_from_the_layer(series, tmp_path) -> None:
    volume = load_volume(series)
    labels = block_labels(volume)
    meta = {
        "name": "CT labels",
        "metadata": {"slicesam_volume": volume},
        "features": {"index": [0, 2], "name": ["background", "block"]},
    }
    [written] = write_labels(str(tmp_path / "out.dcm"), labels, meta)
    back = read_dicom_seg(written, volume.geometry)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.names == {2: "block"}


def test_writer_refuses_a_seg_for_a_volume_not_from_dicom(tmp_path) -> None:
    meta = {"name": "x", "scale": (1.0, 1.0, 1.0)}
    with pytest.raises(SliceSamError, match="DICOM-SEG"):
        write_labels(str(tmp_path / "out.dcm"), np.ones((3, 4, 5), np.uint8), meta)
    assert not (tmp_path / "out.dcm").exists()


needs_display = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="napari needs an X server (Xvfb)"
)


@pytest.mark.gui
@needs_display
def test_dicom_journey_in_napari(make_napari_viewer, qtbot, series, monkeypatch) -> None:
    """Open the series folder with the plugin, box, propagate, save the default DICOM-SEG,
    open it again as a labels layer, and save it once more with napari's own layer.save."""
    import slicesam.models.registry as registry
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    volume = load_volume(series)
    truth = volume.data > 0
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(series), plugin="napari-slicesam")
    assert layer.data.shape == volume.shape
    _, widget = viewer.window.add_plugin_dock_widget("napari-slicesam", "SliceSAM")
    widget.start(restore="fresh").wait()
    widget.wait()
    z = 4
    ys, xs = np.nonzero(truth[z])
    x0, y0, x1, y1 = xs.min() - 2, ys.min() - 2, xs.max() + 2, ys.max() + 2
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)
    widget.shapes_layer.add_rectangles(corners)
    widget.wait()
    widget.propagate().wait()
    widget.wait()
    made = np.asarray(widget.labels_layer.data).copy()
    assert np.array_equal(made == 1, truth)

    default = widget.default_save_path()
    assert default == series.parent / "CT_labels.dcm"
    written = widget.save(default)
    assert written == default
    np.testing.assert_array_equal(load_labels(written, like=volume), made)
    assert read_dicom_seg(written, volume.geometry).names == {1: widget.session.objects[1].name}

    (back,) = viewer.open(str(written), plugin="napari-slicesam")
    assert back.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(back.data, made)
    again = series.parent / "again.dcm"
    back.save(str(again), plugin="napari-slicesam")
    np.testing.assert_array_equal(load_labels(again, like=volume), made)


@pytest.mark.gui
@needs_display
def test_default_save_is_nifti_when_the_series_cannot_get_a_seg(
    make_napari_viewer, series, monkeypatch
) -> None:
    import pydicom

    import slicesam.models.registry as registry
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ""
        ds.save_as(f)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(series), plugin="napari-slicesam")
    _, widget = viewer.window.add_plugin_dock_widget("napari-slicesam", "SliceSAM")
    widget.start(restore="fresh").wait()
    widget.wait()
    assert widget.default_save_path() == series.parent / "CT_labels.nii.gz"
