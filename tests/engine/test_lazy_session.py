"""A session on a lazy zarr volume reads only the slices it embeds (plus the window's sample),
keeps its labels in a zarr store, and gives the same labels as a session on the array."""

from __future__ import annotations

import re

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from fakes import ball
from slicesam.engine import Session
from slicesam.errors import SliceSamError
from slicesam.io import Volume, load_volume, save_labels
from slicesam.io.lazy import LazyArray, sample_indices
from slicesam.io.zarr_labels import ZarrLabels, open_label_store

SHAPE = (40, 32, 36)
CENTER, RADIUS = (20, 16, 18), 9


@pytest.fixture
def image() -> np.ndarray:
    """A bright ball on a dark background, (40, 32, 36) uint16."""
    return np.where(ball(SHAPE, CENTER, RADIUS), 900, 100).astype(np.uint16)


@pytest.fixture
def zarr_path(tmp_path, image):
    path = tmp_path / "image.zarr"
    array = zarr.create_array(str(path), shape=SHAPE, chunks=(1, 32, 36), dtype=np.uint16)
    array[...] = image
    return path


@pytest.fixture
def chunk_reads(monkeypatch):
    """The z index of every chunk zarr reads from a local store (``c/<z>/0/0`` keys)."""
    reads: list[int] = []
    original = LocalStore.get

    async def counting_get(self, key, *args, **kwargs):
        found = re.fullmatch(r"c/(\d+)/0/0", key)
        if found and "image.zarr" in str(self.root):
            reads.append(int(found.group(1)))
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", counting_get)
    return reads


def box_of(mask2d: np.ndarray, pad: int = 2) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask2d)
    return (xs.min() - pad, ys.min() - pad, xs.max() + pad, ys.max() + pad)


def test_box_and_propagation_read_only_the_slices_they_use(
    zarr_path, image, chunk_reads, fake_box_model, tmp_path
):
    vol = load_volume(zarr_path)
    assert isinstance(vol.data, LazyArray) and chunk_reads == []  # opening reads no voxel
    sess = Session(vol, model=fake_box_model, labels_store=tmp_path / "labels.zarr")
    sample = set(sample_indices(SHAPE[0], SHAPE[1] * SHAPE[2]))
    assert set(chunk_reads) == sample  # the window and the checks: the sample only
    assert len(sample) < SHAPE[0]
    chunk_reads.clear()

    obj = sess.new_object("ball")
    sess.add_box(obj, 20, box_of(image[20] > 500))
    summary = sess.propagate(obj, z_range=(15, 25))
    touched = set(chunk_reads)
    assert touched <= set(range(15, 26)), sorted(touched)  # nothing outside the range
    assert 20 in touched and len(touched) <= 11
    assert summary.slices  # it wrote something
    assert isinstance(sess.labels, ZarrLabels)
    assert set(sess.labels.nonzero_slices()) <= set(range(15, 26))
    # the volume was never materialised: every chunk read at most a couple of times
    assert max(chunk_reads.count(z) for z in touched) <= 3


def test_lazy_session_labels_equal_the_in_memory_session(zarr_path, image, fake_box_model):
    window = (100.0, 900.0)
    eager = Session(Volume(image, unit="px"), model=fake_box_model, window=window)
    lazy = Session(load_volume(zarr_path), model=fake_box_model, window=window)
    assert isinstance(lazy.labels, ZarrLabels)  # lazy volume: labels in a compressed store
    for sess in (eager, lazy):
        obj = sess.new_object("ball")
        sess.add_box(obj, 20, box_of(image[20] > 500))
        sess.propagate(obj)
    assert np.array_equal(np.asarray(lazy.labels), eager.labels)
    assert lazy.stats(1) == eager.stats(1)
    # clean-up, undo and delete work slice-wise on the store, with the same result
    assert lazy.postprocess(1, fill_holes=True, per_slice=False) == eager.postprocess(
        1, fill_holes=True, per_slice=False
    )
    for sess in (eager, lazy):
        sess.undo()
        sess.delete_object(1)
    assert not np.asarray(lazy.labels).any() and not eager.labels.any()
    for sess in (eager, lazy):
        assert sess.undo()  # the delete comes back
    assert np.array_equal(np.asarray(lazy.labels), eager.labels) and eager.labels.any()


def test_labels_store_round_trip(zarr_path, image, fake_box_model, tmp_path):
    store = tmp_path / "labels.zarr"
    vol = load_volume(zarr_path)
    sess = Session(vol, model=fake_box_model, labels_store=store)
    obj = sess.new_object("ball")
    sess.add_box(obj, 20, box_of(image[20] > 500))
    sess.propagate(obj, z_range=(18, 22))
    written = np.asarray(sess.labels)
    on_disk = zarr.open_array(str(store), mode="r")[...]
    assert np.array_equal(on_disk, written) and set(np.unique(on_disk)) == {0, obj}
    # a later session on the same store finds the object and goes on from there
    again = Session(vol, model=fake_box_model, labels_store=store)
    assert again.object_ids == [obj] and again.new_object() == obj + 1
    # a brush stroke painted into the store is adopted, like napari's brush on an array
    again.labels[(np.array([30]), np.array([3]), np.array([4]))] = obj + 1
    assert again.sync_external_edits() == [30]
    # and the store saves as OME-Zarr labels readable as a volume
    out = save_labels(tmp_path / "seg.ome.zarr", again.labels, like=vol)
    assert np.array_equal(np.asarray(load_volume(out).data), np.asarray(again.labels))


def test_store_and_labels_together_or_with_autosave_are_refused(zarr_path, fake_model, tmp_path):
    vol = load_volume(zarr_path)
    with pytest.raises(SliceSamError, match="not both"):
        Session(vol, model=fake_model, labels=np.zeros(SHAPE, np.uint16), labels_store="x.zarr")
    with pytest.raises(SliceSamError, match="autosave is not available"):
        Session(vol, model=fake_model, labels_store=tmp_path / "l.zarr", autosave=tmp_path / "a")
    store = open_label_store(tmp_path / "l2.zarr", SHAPE)
    sess = Session(vol, model=fake_model, labels=store)
    with pytest.raises(SliceSamError, match="does not fit the label store's uint16"):
        sess.new_object(label_id=70000)


def test_a_constant_lazy_volume_warns_from_its_sample(tmp_path, fake_model):
    path = tmp_path / "flat.zarr"
    array = zarr.create_array(str(path), shape=(5, 8, 8), chunks=(1, 8, 8), dtype=np.uint8)
    array[...] = 3
    with pytest.warns(UserWarning, match="slices sampled is 3"):
        Session(load_volume(path), model=fake_model)


def test_a_zarr_array_given_directly_is_read_slice_by_slice(zarr_path, image, fake_model):
    array = zarr.open_array(str(zarr_path), mode="r")
    sess = Session(array, model=fake_model, window=(100.0, 900.0))
    assert isinstance(sess.volume.data, LazyArray)
    obj = sess.new_object()
    assert np.array_equal(sess.add_box(obj, 20, box_of(image[20] > 500)), image[20] > 500)
