"""A lazy zarr volume in napari: the plugin's reader shows it as a dask array (nothing read
until drawn), and the widget segments it with labels kept in a compressed store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from zarr_factory import ome_zarr  # noqa: E402

from slicesam._napari.reader import get_reader  # noqa: E402
from slicesam.io import load_labels, load_volume  # noqa: E402


def block_volume() -> np.ndarray:
    """(12, 40, 48) uint16: a bright block (the fake model segments pixels > 127 of the
    window) on a dim background."""
    data = np.full((12, 40, 48), 20, np.uint16)
    data[3:9, 10:26, 12:30] = 1000
    return data


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return ome_zarr(tmp_path / "stack.ome.zarr", block_volume(), scale=(2.0, 0.5, 0.5))


def test_reader_shows_a_zarr_store_lazily(store) -> None:
    import dask.array as da

    [(data, kwargs, layer_type)] = get_reader(str(store))(str(store))
    assert layer_type == "image" and isinstance(data, da.Array)
    assert data.shape == (12, 40, 48) and kwargs["name"] == "stack"
    assert kwargs["scale"] == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(np.asarray(data[5]), block_volume()[5])


@pytest.mark.gui
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="napari needs an X server (Xvfb)")
def test_widget_segments_a_lazy_volume(make_napari_viewer, store, tmp_path, monkeypatch) -> None:
    import slicesam.models.registry as registry
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(store), plugin="napari-slicesam")
    _, widget = viewer.window.add_plugin_dock_widget("napari-slicesam", "SliceSAM")
    widget.autosave_check.setChecked(True)  # off for a lazy volume, with a note
    widget.start(restore="fresh").wait()
    widget.wait()
    assert widget.session.autosave is None
    z = 6
    corners = np.array([[z, 8, 10], [z, 8, 32], [z, 28, 32], [z, 28, 10]], float)
    widget.shapes_layer.add_rectangles(corners)
    widget.wait()
    widget.propagate().wait()
    widget.wait()
    truth = block_volume() > 100
    labels = widget.labels_layer.data
    assert not isinstance(labels, np.ndarray), "labels live in a store, not a full array"
    made = np.stack([np.asarray(labels[k]) for k in range(truth.shape[0])])
    assert np.array_equal(made == 1, truth)
    out = widget.save(tmp_path / "labels.nii.gz")
    np.testing.assert_array_equal(load_labels(out, like=load_volume(store)), made)


@pytest.mark.gui
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="napari needs an X server (Xvfb)")
def test_widget_starts_warm_from_the_disk_cache(make_napari_viewer, tmp_path, monkeypatch) -> None:
    """`slicesam embed` (or an earlier session with the box ticked) fills the cache; a widget
    session with "keep embeddings on disk" computes no embedding."""
    import nibabel as nib

    import slicesam.models.registry as registry
    from fakes import PackingModel
    from slicesam.engine.session import Session

    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(tmp_path / "cache"))
    data = np.where(block_volume() > 100, 200, -1000).astype(np.int16)
    image = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), np.diag([-1.0, -1.0, 2.0, 1.0])), image)
    vol = load_volume(image)
    from slicesam.intensity import default_window

    warm = Session(
        vol, model=PackingModel(), disk_cache=True, window=default_window(vol.data, "CT")
    )
    for z in range(vol.shape[0]):
        warm.embed(z)

    model = PackingModel()
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: model)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(image), plugin="napari-slicesam")
    _, widget = viewer.window.add_plugin_dock_widget("napari-slicesam", "SliceSAM")
    widget.autosave_check.setChecked(False)
    widget.disk_cache_check.setChecked(True)
    widget.start(restore="fresh").wait()
    widget.wait()
    for z in range(vol.shape[0]):
        widget.session.embed(z)
    assert model.embed_calls == [], "every slice came from the disk cache"


def test_writer_streams_a_label_store(store, tmp_path) -> None:
    """napari's File > Save of a labels layer that holds a zarr store: written slice by slice,
    never gathered into one array."""
    from slicesam._napari.writer import write_labels
    from slicesam.io.zarr_labels import memory_label_store

    volume = load_volume(store)
    labels = memory_label_store(volume.shape)
    labels[4] = (block_volume()[4] > 100).astype(np.uint16)
    meta = {"name": "stack labels", "metadata": {"slicesam_volume": volume}}
    [written] = write_labels(str(tmp_path / "labels.ome.zarr"), labels, meta)
    back = load_labels(written, like=volume)
    np.testing.assert_array_equal(np.asarray(back[4]), np.asarray(labels[4]))
    assert not np.asarray(back[3]).any()
