"""The npe2 manifest and its reader / writer / sample-data hooks (no viewer needed)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from npe2 import PluginManager, PluginManifest
from npe2.io_utils import _read

from slicesam._napari import reader as reader_mod
from slicesam._napari import sample_data
from slicesam._napari.reader import MAX_CHANNELS, NOTE_KEY, PATH_KEY, VOLUME_KEY, get_reader
from slicesam._napari.writer import write_labels
from slicesam.errors import SliceSamError
from slicesam.intensity import default_window
from slicesam.io import Volume, load_volume

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "napari.yaml"

# --------------------------------------------------------------------------- manifest


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_file(MANIFEST)


def test_manifest_is_valid(manifest: PluginManifest) -> None:
    assert manifest.name == "napari-slicesam"
    contrib = manifest.contributions
    ids = {c.id for c in contrib.commands}
    assert {r.command for r in contrib.readers} <= ids
    assert {w.command for w in contrib.writers} <= ids
    assert {s.command for s in contrib.sample_data} <= ids
    assert set(contrib.readers[0].filename_patterns) == {
        "*.nii",
        "*.nii.gz",
        "*.tif",
        "*.tiff",
        "*.dcm",
    }
    assert contrib.readers[0].accepts_directories  # DICOM series folders
    assert contrib.writers[0].layer_types == ["labels"]
    assert {s.key for s in contrib.sample_data} == {"ct_abdomen", "mr_abdomen", "nuclei"}


def test_manifest_python_names_resolve(manifest: PluginManifest) -> None:
    manifest.validate_imports()
    for command in manifest.contributions.commands:
        module_name, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module_name), attr)), command.id


def test_npe2_validate_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST), "--imports"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def plugin_manager(manifest: PluginManifest) -> PluginManager:
    pm = PluginManager()
    pm.register(manifest)
    pm.activate(manifest.name)  # registers the commands (napari does this on first use)
    return pm


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz", "a.tif", "a.tiff", "A.NII.GZ", "b.TIF"])
def test_npe2_matches_reader(plugin_manager: PluginManager, name: str) -> None:
    readers = list(plugin_manager.iter_compatible_readers([name]))
    assert [r.command for r in readers] == ["napari-slicesam.get_reader"]


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii", "out.tif", "out.tiff"])
def test_npe2_picks_writer(plugin_manager: PluginManager, name: str) -> None:
    writer, path = plugin_manager.get_writer(name, ["labels"])
    assert writer is not None and writer.command == "napari-slicesam.write_labels"
    assert path == name
    image_writer, _ = plugin_manager.get_writer(name, ["image"])
    assert image_writer is None


def test_reader_and_writer_through_npe2(
    plugin_manager: PluginManager, ct_nifti: Path, tmp_path: Path
) -> None:
    """The hooks as napari calls them: commands resolved from the manifest by npe2."""
    layers = _read([ct_nifti], stack=False, plugin_name="napari-slicesam", _pm=plugin_manager)
    [(data, kwargs, layer_type)] = layers
    assert layer_type == "image" and data.shape == (6, 10, 12)
    labels = (data > 0).astype(np.uint8)
    # as npe2.io_utils.write calls a single-layer writer: (path, data, meta)
    for requested, expected in [("x.nii.gz", "x.nii.gz"), ("y", "y.nii.gz")]:
        writer, path = plugin_manager.get_writer(str(tmp_path / requested), ["labels"])
        assert path == str(tmp_path / expected)  # no ending: npe2 appends the first one
        written = writer.exec(args=(path, labels, kwargs), _registry=plugin_manager.commands)
        assert written == [path]
        np.testing.assert_array_equal(load_volume(path).data, labels)


def test_sample_data_through_npe2(plugin_manager: PluginManager) -> None:
    contributions = dict(plugin_manager.iter_sample_data())["napari-slicesam"]
    assert [c.key for c in contributions] == ["ct_abdomen", "mr_abdomen", "nuclei"]
    [(data, kwargs, layer_type)] = contributions[0].open(_registry=plugin_manager.commands)
    assert layer_type == "image" and data.shape == (30, 101, 122)


# --------------------------------------------------------------------------- reader


def test_reader_rejects_unsupported(tmp_path: Path, ct_nifti: Path) -> None:
    assert get_reader(str(tmp_path / "image.png")) is None
    assert get_reader(str(tmp_path / "archive.nii.zip")) is None
    assert get_reader([str(ct_nifti), str(tmp_path / "image.png")]) is None
    assert get_reader([]) is None
    assert get_reader(str(tmp_path)) is None  # a folder without DICOM files
    assert callable(get_reader(str(ct_nifti)))
    assert callable(get_reader(ct_nifti))  # Path objects too


def test_reader_ct_nifti(ct_nifti: Path) -> None:
    [(data, kwargs, layer_type)] = get_reader(str(ct_nifti))(str(ct_nifti))
    assert layer_type == "image"
    assert kwargs["name"] == "ct_case"
    # RAS on disk (i, j, k) = (12, 10, 6) -> LPS (z, y, x) = (6, 10, 12)
    assert data.shape == (6, 10, 12)
    assert data.dtype == np.int16
    assert kwargs["scale"] == pytest.approx((2.5, 0.7, 0.8))
    assert kwargs["contrast_limits"] == (-160.0, 240.0)
    volume = kwargs["metadata"][VOLUME_KEY]
    assert isinstance(volume, Volume)
    assert volume.modality == "CT"
    assert volume.data is data
    assert kwargs["metadata"][PATH_KEY] == str(ct_nifti)
    # the layer shows the volume as load_volume gives it
    np.testing.assert_array_equal(data, load_volume(ct_nifti).data)


def test_reader_mr_nifti_uses_percentiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 1000, size=(8, 9, 7)).astype(np.uint16)
    path = tmp_path / "t1.nii"
    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 1.0, 3.0, 1.0])), str(path))
    [(data, kwargs, layer_type)] = get_reader(str(path))(str(path))
    assert layer_type == "image"
    assert kwargs["name"] == "t1"
    assert kwargs["metadata"][VOLUME_KEY].modality == "MR"
    assert kwargs["contrast_limits"] == pytest.approx(default_window(data, "MR"))
    assert kwargs["contrast_limits"] != (-160.0, 240.0)


def test_reader_tiff_stack(tiff_stack: Path) -> None:
    [(data, kwargs, layer_type)] = get_reader(str(tiff_stack))(str(tiff_stack))
    assert layer_type == "image"
    assert kwargs["name"] == "cells"
    assert data.shape == (5, 8, 9)
    assert kwargs["scale"] == pytest.approx((2.0, 0.5, 0.5))
    volume = kwargs["metadata"][VOLUME_KEY]
    assert volume.modality == "microscopy" and volume.unit == "um"
    assert kwargs["contrast_limits"] == pytest.approx(default_window(data, "microscopy"))
    lo, hi = kwargs["contrast_limits"]
    assert 100 <= lo < hi <= 4000
    if "units" in kwargs:  # napari >= 0.6
        assert kwargs["units"] == ("um", "um", "um")


def test_reader_labels_by_name(tmp_path: Path) -> None:
    labels = np.zeros((4, 6, 7), dtype=np.uint16)
    labels[1:3, 2:4, 2:5] = 3
    seg = tmp_path / "case_seg.tif"
    tifffile.imwrite(seg, labels, imagej=True, metadata={"axes": "ZYX", "spacing": 1.5})
    [(data, kwargs, layer_type)] = get_reader(str(seg))(str(seg))
    assert layer_type == "labels"
    assert "contrast_limits" not in kwargs and "colormap" not in kwargs
    assert kwargs["scale"] == pytest.approx((1.5, 1.0, 1.0))
    assert isinstance(kwargs["metadata"][VOLUME_KEY], Volume)
    np.testing.assert_array_equal(data, labels)

    # the same integer data without a hint in the name is an image
    plain = tmp_path / "case.tif"
    tifffile.imwrite(plain, labels, imagej=True, metadata={"axes": "ZYX"})
    assert get_reader(str(plain))(str(plain))[0][2] == "image"

    # float data is never a label map
    floats = tmp_path / "labels_prob.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.float32), np.eye(4)), str(floats))
    assert get_reader(str(floats))(str(floats))[0][2] == "image"


def test_reader_multichannel_tiff(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, size=(4, 2, 6, 5), dtype=np.uint8)  # ZCYX
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "ZCYX", "spacing": 3.0})
    layers = get_reader(str(path))(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["two [c=0]", "two [c=1]"]
    assert [t for _, _, t in layers] == ["image", "image"]
    for c, (data, kwargs, _) in enumerate(layers):
        np.testing.assert_array_equal(data, arr[:, c])
        assert kwargs["scale"] == pytest.approx((3.0, 1.0, 1.0))
        assert kwargs["metadata"][VOLUME_KEY].meta["channel"] == c
        assert kwargs["blending"] == "additive"
    assert layers[0][1]["colormap"] != layers[1][1]["colormap"]


def test_reader_multichannel_nifti(tmp_path: Path) -> None:
    arr = np.stack([np.full((5, 4, 3), v, dtype=np.int16) for v in (10, 20, 30)], axis=-1)
    arr[0, 0, 0] = 0
    path = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    layers = get_reader(str(path))(str(path))
    assert len(layers) == 3
    assert [int(data.max()) for data, _, _ in layers] == [10, 20, 30]
    assert layers[2][1]["name"] == "dwi [c=2]"


def test_reader_opens_the_first_of_many_channels_and_says_how_to_pick(tmp_path: Path) -> None:
    arr = np.zeros((3, 3, 3, MAX_CHANNELS + 1), dtype=np.int16)
    arr[..., 0] = 5
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    with pytest.warns(UserWarning, match="channel=N"):
        layers = get_reader(str(path))(str(path))
    assert len(layers) == 1
    data, kwargs, layer_type = layers[0]
    assert layer_type == "image" and int(data.max()) == 5
    assert f"of {MAX_CHANNELS + 1}" in kwargs["name"]
    assert "channel=N" in kwargs["metadata"][NOTE_KEY]


@pytest.mark.parametrize("name", ["broken.nii.gz", "broken.nii", "broken.tif"])
def test_reader_garbage_raises_slicesam_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not an image" * 20)
    read = get_reader(str(path))
    assert read is not None
    with pytest.raises(SliceSamError, match="broken"):
        read(str(path))


def test_reader_2d_image_raises(tmp_path: Path) -> None:
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.zeros((8, 9), dtype=np.uint8))
    with pytest.raises(SliceSamError, match="2D"):
        get_reader(str(path))(str(path))


def test_reader_list_of_files(ct_nifti: Path, tiff_stack: Path) -> None:
    paths = [str(ct_nifti), str(tiff_stack)]
    layers = get_reader(paths)(paths)
    assert [kw["name"] for _, kw, _ in layers] == ["ct_case", "cells"]


def test_file_stem() -> None:
    assert reader_mod.file_stem("/a/b/ct.nii.gz") == "ct"
    assert reader_mod.file_stem("x.NII.GZ") == "x"
    assert reader_mod.file_stem("cells.ome.tiff") == "cells.ome"
    assert reader_mod.file_stem("scan.nii") == "scan"


def test_reader_does_not_import_torch() -> None:
    code = (
        "import sys, slicesam._napari.reader, slicesam._napari.writer, "
        "slicesam._napari.sample_data; "
        "bad = sorted(m for m in ('torch', 'napari', 'qtpy', 'PyQt6') if m in sys.modules); "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- writer


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_writer_nifti_round_trip_keeps_source_geometry(
    ct_nifti: Path, tmp_path: Path, suffix: str
) -> None:
    [(data, kwargs, _)] = get_reader(str(ct_nifti))(str(ct_nifti))
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[data > 0] = 1
    labels[0, 0, :3] = 2  # asymmetric, so any flip would show
    meta = {**kwargs, "name": "ct_case labels"}
    out = tmp_path / f"labels{suffix}"
    assert write_labels(str(out), labels, meta) == [str(out)]

    back = load_volume(out)
    np.testing.assert_array_equal(back.data, labels)
    src, dst = nib.load(str(ct_nifti)), nib.load(str(out))
    np.testing.assert_array_equal(dst.affine, src.affine)
    np.testing.assert_array_equal(dst.header.get_qform(), src.header.get_qform())
    np.testing.assert_array_equal(dst.header.get_sform(), src.header.get_sform())
    assert int(dst.header["qform_code"]) == int(src.header["qform_code"])
    assert int(dst.header["sform_code"]) == int(src.header["sform_code"])
    assert dst.header.get_zooms() == src.header.get_zooms()
    assert dst.shape == src.shape


def test_writer_tiff_from_tiff_source(tiff_stack: Path, tmp_path: Path) -> None:
    [(data, kwargs, _)] = get_reader(str(tiff_stack))(str(tiff_stack))
    labels = (data > 2000).astype(np.uint16) * 7
    out = tmp_path / "cells_labels.tiff"
    assert write_labels(str(out), labels, kwargs) == [str(out)]
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, labels)
    assert back.spacing == pytest.approx((2.0, 0.5, 0.5))
    assert back.unit == "um"


@pytest.mark.parametrize("suffix", [".nii.gz", ".tif"])
def test_writer_without_source_volume_uses_scale(tmp_path: Path, suffix: str) -> None:
    labels = np.zeros((3, 5, 4), dtype=np.int32)  # napari's default labels dtype is signed
    labels[1, 2:4, 1:3] = 5
    meta = {"name": "drawn", "scale": (2.0, 0.5, 0.25), "metadata": {}}
    out = tmp_path / f"drawn{suffix}"
    assert write_labels(str(out), labels, meta) == [str(out)]
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, labels)
    assert back.spacing == pytest.approx((2.0, 0.5, 0.25))
    if suffix == ".nii.gz":
        assert back.unit == "mm"


def test_writer_errors(ct_nifti: Path, tmp_path: Path) -> None:
    [(data, kwargs, _)] = get_reader(str(ct_nifti))(str(ct_nifti))
    out = tmp_path / "out"
    with pytest.raises(SliceSamError, match="3D"):
        write_labels(str(out / "flat.nii.gz"), np.zeros((4, 5), np.uint8), {"name": "x"})
    with pytest.raises(SliceSamError, match="does not match"):
        write_labels(str(out / "wrong.nii.gz"), np.zeros((2, 3, 4), np.uint8), kwargs)
    with pytest.raises(SliceSamError, match="non-negative"):
        write_labels(str(out / "neg.nii.gz"), -np.ones(data.shape, np.int16), kwargs)
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------- sample data


@pytest.mark.parametrize(
    ("func", "shape", "modality", "dtype"),
    [
        (sample_data.ct_abdomen, (30, 101, 122), "CT", np.int16),
        (sample_data.mr_abdomen, (20, 91, 117), "MR", np.int16),
        (sample_data.nuclei, (100, 100, 100), "microscopy", np.uint8),
    ],
)
def test_sample_data(func, shape: tuple[int, int, int], modality: str, dtype) -> None:
    [(data, kwargs, layer_type)] = func()
    assert layer_type == "image"
    assert data.shape == shape and data.dtype == dtype
    volume = kwargs["metadata"][VOLUME_KEY]
    assert isinstance(volume, Volume) and volume.modality == modality
    assert kwargs["scale"] == pytest.approx(volume.spacing)
    lo, hi = kwargs["contrast_limits"]
    assert lo < hi
    if modality == "CT":
        assert (lo, hi) == (-160.0, 240.0)
        assert kwargs["scale"] == pytest.approx((3.0, 3.0, 3.0))
    assert Path(kwargs["metadata"][PATH_KEY]).is_file()
