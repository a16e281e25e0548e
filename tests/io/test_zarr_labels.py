"""Label stores on disk (``ZarrLabels``) and labels saved as OME-Zarr (read back by ome-zarr-py,
validated by ome-zarr-models, and by ``load_volume``)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader
from ome_zarr_models import open_ome_zarr
from zarr_factory import blobs, ome_zarr, plain_zarr

from slicesam.errors import VolumeReadError, VolumeWriteError
from slicesam.io import Volume, load_volume, save_labels
from slicesam.io.zarr_labels import ZarrLabels, memory_label_store, open_label_store


def some_labels(shape: tuple[int, int, int]) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[1:3, 2:5, 3:7] = 1
    labels[4, 6:8, 1:3] = 7
    return labels


def test_label_store_round_trip_on_disk(tmp_path) -> None:
    path = tmp_path / "labels.zarr"
    store = open_label_store(path, (6, 10, 12))
    assert store.nonzero_slices() == [] and store.dtype == np.uint16
    expected = some_labels((6, 10, 12))
    for z in range(6):
        store[z] = expected[z]
    assert store.nonzero_slices() == [1, 2, 4]
    store[2] = np.zeros((10, 12), np.uint16)  # a cleared slice is dropped
    expected[2] = 0
    assert store.nonzero_slices() == [1, 4]
    again = open_label_store(path, (6, 10, 12))  # reopened: scanned once
    assert again.nonzero_slices() == [1, 4]
    assert np.array_equal(np.asarray(again), expected)
    raw = zarr.open_array(str(path), mode="r")
    assert raw.chunks == (1, 10, 12) and np.array_equal(raw[...], expected)
    copy = again.scratch_copy()
    copy[1] = np.zeros((10, 12), np.uint16)
    assert np.array_equal(again[1], expected[1])  # the copy is a copy


def test_label_store_takes_napari_style_coordinate_writes() -> None:
    store = memory_label_store((4, 5, 6))
    store[(np.array([2, 2]), np.array([1, 3]), np.array([0, 4]))] = 9
    assert store.nonzero_slices() == [2]
    assert store[(np.array([2]), np.array([3]), np.array([4]))].tolist() == [9]
    assert np.array_equal(store[2, 1:4, ::4], [[9, 0], [0, 0], [0, 9]])


def test_label_store_refuses_what_does_not_fit(tmp_path) -> None:
    open_label_store(tmp_path / "l.zarr", (3, 4, 5))
    with pytest.raises(VolumeReadError, match=r"has shape \(3, 4, 5\), the volume has"):
        open_label_store(tmp_path / "l.zarr", (3, 4, 6))
    plain_zarr(tmp_path / "f.zarr", np.zeros((3, 4, 5), np.float32))
    with pytest.raises(VolumeReadError, match="unsigned integers"):
        open_label_store(tmp_path / "f.zarr", (3, 4, 5))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(VolumeReadError, match="not a zarr store"):
        open_label_store(tmp_path / "file.txt", (3, 4, 5))


def _nodes(path):
    return list(Reader(parse_url(str(path)))())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_saved_next_to_the_ome_zarr_image(tmp_path, version) -> None:
    image = blobs((6, 10, 12))
    path = ome_zarr(
        tmp_path / "img.ome.zarr",
        np.stack([image, image]),
        "czyx",
        (1.0, 2.0, 0.5, 0.5),
        version=version,
        translation=(0.0, 5.0, 0.0, 0.0),
    )
    vol = load_volume(path, channel=0)
    labels = some_labels(vol.shape)
    written = save_labels(path, labels, like=vol, names={1: "cell", 7: "nucleus"})
    assert written == path / "labels" / "slicesam"
    # ome-zarr-py finds the label image under the image, with its own metadata
    label_nodes = [
        n
        for n in _nodes(path / "labels" / "slicesam")
        if any(isinstance(s, Label) for s in n.specs)
    ]
    assert label_nodes and label_nodes[0].data[0].shape == (1, 6, 10, 12)
    assert np.array_equal(np.asarray(label_nodes[0].data[0])[0], labels)
    model = open_ome_zarr(zarr.open_group(str(path / "labels" / "slicesam"), mode="r"))
    assert type(model).__name__ == "ImageLabel"
    group = zarr.open_group(str(path / "labels"), mode="r")
    attrs = dict(group.attrs)
    listed = attrs["ome"]["labels"] if version == "0.5" else attrs["labels"]
    assert listed == ["slicesam"]
    # and it loads back on the image's grid, through load_volume
    back = load_volume(path / "labels" / "slicesam")
    assert np.array_equal(np.asarray(back.data), labels)
    assert back.spacing == vol.spacing and back.geometry.translation[1] == 5.0
    # saving again replaces it (the list keeps one entry)
    save_labels(path, labels * 0, like=vol)
    assert not np.asarray(load_volume(path / "labels" / "slicesam").data).any()
    assert (dict(zarr.open_group(str(path / "labels")).attrs).get("labels") or ["slicesam"]) == [
        "slicesam"
    ]


def test_labels_saved_as_their_own_ome_zarr(tmp_path) -> None:
    vol = Volume(np.zeros((6, 10, 12), np.uint8), spacing=(3.0, 0.2, 0.2), unit="um")
    labels = some_labels(vol.shape).astype(np.int32)  # signed: written unsigned
    path = save_labels(tmp_path / "out" / "seg.ome.zarr", labels, like=vol)
    assert open_ome_zarr(zarr.open_group(str(path), mode="r")).__class__.__name__ == "ImageLabel"
    back = load_volume(path)
    assert back.data.dtype == np.uint32 and back.unit == "um" and back.spacing == vol.spacing
    assert np.array_equal(np.asarray(back.data), labels)
    assert (path / "0" / "1" / "0" / "0").is_file()  # NGFF 0.4: "/"-separated chunk keys


def test_a_label_store_saves_to_every_format(tmp_path) -> None:
    vol = Volume(np.zeros((6, 10, 12), np.uint8), spacing=(2.0, 1.0, 1.0), unit="um")
    store = memory_label_store(vol.shape)
    expected = some_labels(vol.shape)
    for z in range(6):
        store[z] = expected[z]
    for name in ("a.ome.zarr", "a.nii.gz", "a.tif"):
        out = save_labels(tmp_path / name, store, like=vol)
        assert np.array_equal(np.asarray(load_volume(out).data), expected), name


def test_bad_labels_for_ome_zarr(tmp_path) -> None:
    vol = Volume(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(VolumeWriteError, match="does not match the image shape"):
        save_labels(tmp_path / "x.zarr", np.zeros((2, 3, 5), np.uint8), like=vol)
    negative = np.zeros((2, 3, 4), np.int16)
    negative[1, 0, 0] = -2
    with pytest.raises(VolumeWriteError, match="non-negative"):
        save_labels(tmp_path / "x.zarr", negative, like=vol)
    assert not (tmp_path / "x.zarr").exists()  # nothing half-written stays
    plain_zarr(tmp_path / "other.zarr", np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(VolumeWriteError, match="neither an OME-Zarr image nor a label image"):
        save_labels(tmp_path / "other.zarr", np.zeros((2, 3, 4), np.uint8), like=vol)


def test_labels_next_to_an_image_of_another_grid_are_refused(tmp_path) -> None:
    path = ome_zarr(tmp_path / "img.ome.zarr", blobs((6, 10, 12)))
    vol = Volume(np.zeros((6, 10, 11), np.uint8))
    with pytest.raises(VolumeWriteError, match=r"image of shape \(6, 10, 12\)"):
        save_labels(path, np.zeros((6, 10, 11), np.uint8), like=vol)


def test_zarr_labels_shows_in_napari_through_dask(tmp_path) -> None:
    store = open_label_store(tmp_path / "l.zarr", (3, 4, 5))
    store[1] = np.full((4, 5), 2, np.uint16)
    shown = store.to_dask()
    assert isinstance(store, ZarrLabels) and shown.shape == (3, 4, 5)
    assert int(shown.sum().compute()) == 40


def test_load_labels_reads_a_zarr_label_store_lazily(tmp_path) -> None:
    from zarr_factory import ome_zarr

    from slicesam.io import load_labels, load_volume
    from slicesam.io.lazy import is_lazy

    labels = (np.arange(4 * 5 * 6) % 3).astype(np.uint8).reshape(4, 5, 6)
    image = ome_zarr(tmp_path / "img.ome.zarr", np.zeros((4, 5, 6), np.uint16))
    store = ome_zarr(tmp_path / "lab.ome.zarr", labels)
    back = load_labels(store, like=load_volume(image))
    assert is_lazy(back)
    np.testing.assert_array_equal(np.stack([np.asarray(back[z]) for z in range(4)]), labels)
