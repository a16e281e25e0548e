"""NIfTI-1/NIfTI-2 reading (reoriented to canonical LPS, (z, y, x)) and label writing.

Orientation convention: nibabel affines map voxel indices to RAS+ world millimetres. On load,
the on-disk array (i, j, k) is flipped/permuted (``nibabel.orientations``) so that its axes point
to patient Left, Posterior, Superior -- the closest canonical LPS orientation to the file's
affine -- and then transposed to (k, j, i) = (z, y, x). So in ``Volume.data``:

- z runs inferior -> superior,
- y runs anterior -> posterior,
- x runs right -> left (axial slices as radiologists read them).

Writing labels undoes exactly this (a pure flip/transpose, no resampling), so voxels line up
with the source, and reuses the source header so the geometry is bit-for-bit the same.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt2axcodes,
    ornt_transform,
)

from slicesam.errors import VolumeReadError, VolumeWriteError
from slicesam.io._common import (
    check_fits,
    content_mismatch_hint,
    describe_exception,
    not_3d_error,
    pick_channel,
    single_channel,
)
from slicesam.io.lazy import SourceSlices, wants_lazy

LPS_ORNT = axcodes2ornt(("L", "P", "S"))


class ReorientedGrid:
    """What a source grid's geometry derives from its ``affine`` (source voxel (i, j, k) ->
    RAS+ mm), ``shape`` (i, j, k) and ``ornt`` (the nibabel transform to LPS applied on load).
    Shared by the NIfTI and DICOM geometries."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    ornt: np.ndarray

    @property
    def source_axcodes(self) -> tuple[str, str, str]:
        """Closest axis codes of the source grid (i, j, k), e.g. ``("R", "A", "S")``."""
        return tuple(ornt2axcodes(io_orientation(self.affine)))  # type: ignore[return-value]

    @property
    def zyx_shape(self) -> tuple[int, int, int]:
        """Shape (z, y, x) of the reoriented data."""
        lps = [0, 0, 0]
        for src_axis, (dst_axis, _flip) in enumerate(self.ornt):
            lps[int(dst_axis)] = self.shape[src_axis]
        return (lps[2], lps[1], lps[0])

    @property
    def zyx_affine(self) -> np.ndarray:
        """(4, 4) affine mapping (z, y, x, 1) indices of ``Volume.data`` to RAS+ world mm."""
        # inv_ornt_aff maps reoriented (LPS-ordered) voxel coordinates to source ones.
        lps_to_source = inv_ornt_aff(self.ornt, self.shape)
        zyx_to_lps = np.zeros((4, 4))
        zyx_to_lps[0, 2] = zyx_to_lps[1, 1] = zyx_to_lps[2, 0] = zyx_to_lps[3, 3] = 1.0
        return self.affine @ lps_to_source @ zyx_to_lps


#: NIfTI ``xyzt_units`` spatial names -> slicesam unit strings.
_NIFTI_UNITS = {"mm": "mm", "micron": "um", "meter": "m", "unknown": "mm"}
_UNIT_TO_NIFTI = {"mm": "mm", "um": "micron", "m": "meter"}

#: NIfTI intent code for label volumes.
_INTENT_LABEL = 1002


@dataclass(eq=False)
class NiftiGeometry(ReorientedGrid):
    """Source geometry of a NIfTI volume, enough to write labels back onto the same grid.

    Attributes:
        header: a copy of the source header (``Nifti1Header`` or ``Nifti2Header``), as read.
        affine: (4, 4) float64, the image affine nibabel chose (sform if its code > 0, else
            qform if its code > 0, else the pixdim-based fallback): on-disk voxel (i, j, k)
            -> RAS+ world mm.
        shape: on-disk spatial shape (i, j, k) of the source (first three dimensions).
        ornt: (3, 2) nibabel orientation transform from the on-disk axes to LPS axes.
        nifti2: True when the source was NIfTI-2.
    """

    header: nib.Nifti1Header
    affine: np.ndarray
    shape: tuple[int, int, int]
    ornt: np.ndarray
    nifti2: bool = False

    def to_zyx(self, ijk: np.ndarray) -> np.ndarray:
        """On-disk (i, j, k) array -> (z, y, x) view in the canonical LPS orientation."""
        return apply_orientation(ijk, self.ornt).transpose(2, 1, 0)

    def to_source(self, zyx: np.ndarray) -> np.ndarray:
        """(z, y, x) array -> on-disk (i, j, k) view (inverse of :meth:`to_zyx`)."""
        back = ornt_transform(LPS_ORNT, io_orientation(self.affine))
        return apply_orientation(zyx.transpose(2, 1, 0), back)


def _gzip_problem(path: Path) -> str | None:
    """Why the gzip stream of ``path`` cannot be decompressed to the end, or ``None``."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return describe_exception(exc)
    return None


def _unreadable(path: Path, exc: BaseException) -> VolumeReadError:
    """The error for a file nibabel cannot open, saying what is wrong where we can tell."""
    hint = content_mismatch_hint(path, "nifti")
    if hint:
        return VolumeReadError(f"could not read {path} as NIfTI: {hint}")
    if path.name.lower().endswith(".gz"):
        problem = _gzip_problem(path)
        if problem:
            return VolumeReadError(
                f"could not read {path}: the gzip-compressed data is truncated or corrupt "
                f"({problem}); re-export or re-download the file"
            )
    text = describe_exception(exc)
    if "Cannot work out file type" in text:
        return VolumeReadError(
            f"could not read {path} as NIfTI: it has no valid NIfTI-1/NIfTI-2 header "
            "(the file is corrupt or in another format)"
        )
    return VolumeReadError(f"could not read {path} as NIfTI: {text}")


def _load_image(path: Path) -> nib.Nifti1Image:
    try:
        img = nib.load(str(path), mmap=False)
    except Exception as exc:  # nibabel, gzip, zlib, EOF, OSError, struct ...
        raise _unreadable(path, exc) from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeReadError(
            f"{path} is not a single-file NIfTI image (nibabel read it as {type(img).__name__})"
        )
    return img


def _checked_affine(path: Path, img: nib.Nifti1Image) -> np.ndarray:
    """The image affine (4, 4) float64, or an error naming the broken part of the header."""
    header = img.header
    try:
        affine = np.array(img.affine, dtype=np.float64)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} has an unreadable voxel-to-world affine: {describe_exception(exc)}"
        ) from exc
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    used = (
        f"sform (code {sform_code})"
        if sform_code > 0
        else f"qform (code {qform_code})"
        if qform_code > 0
        else "pixdim (no qform/sform code)"
    )
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise VolumeReadError(
            f"{path} has a corrupt header: its voxel-to-world affine, from the {used}, holds "
            "NaN or infinite values; fix that part of the header and retry"
        )
    norms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if not (norms > 0).all() or abs(float(np.linalg.det(affine[:3, :3]))) < 1e-12 * max(
        float(norms.prod()), 1e-300
    ):
        raise VolumeReadError(
            f"{path} has a degenerate voxel-to-world affine from the {used} (voxel sizes "
            f"{tuple(round(float(n), 6) for n in norms)}): a voxel axis has zero length or two "
            "axes are parallel; fix that part of the header (e.g. set pixdim) and retry"
        )
    return affine


def _peak_bytes(n_voxels: int, dtype: np.dtype, scaled: bool, all_channels: int) -> int:
    """Rough peak memory of reading ``n_voxels`` voxels of one channel (see read_nifti)."""
    raw = n_voxels * all_channels * dtype.itemsize
    if scaled:  # nibabel scales to float64, then float32, then the reoriented copy
        return max(raw + 8 * n_voxels, 12 * n_voxels)
    return raw + n_voxels * dtype.itemsize


def _is_scaled(img: nib.Nifti1Image) -> bool:
    """Whether the file's scl_slope/scl_inter change the values (the loaded header hides them;
    the array proxy holds them, 1/0 when absent or NaN)."""
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    return slope != 1.0 or inter != 0.0


def _space_unit(header: nib.Nifti1Header) -> str:
    """slicesam unit of the header's spatial ``xyzt_units`` ("mm" when unknown or invalid)."""
    try:
        space_unit = header.get_xyzt_units()[0]
    except (KeyError, ValueError):  # a code NIfTI does not define
        return "mm"
    return _NIFTI_UNITS.get(space_unit, "mm")


def _spacing_zyx(header: nib.Nifti1Header, affine: np.ndarray, ornt: np.ndarray) -> tuple:
    zooms = [float(z) for z in header.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))
    norms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    for i, z in enumerate(zooms):
        if not np.isfinite(z) or z <= 0:  # broken pixdim: fall back to the affine
            zooms[i] = float(norms[i]) if np.isfinite(norms[i]) and norms[i] > 0 else 1.0
    lps = [1.0, 1.0, 1.0]
    for src_axis, (dst_axis, _flip) in enumerate(ornt):
        lps[int(dst_axis)] = zooms[src_axis]
    return (lps[2], lps[1], lps[0])


def _lazy_zyx(
    path: Path, img: nib.Nifti1Image, index: tuple, ornt: np.ndarray, scaled: bool
) -> SourceSlices:
    """The reoriented (z, y, x) view of the file's array proxy, reading only the voxels
    indexed (the same flips and transposition as :meth:`NiftiGeometry.to_zyx`)."""
    dtype = np.dtype(img.header.get_data_dtype())
    if dtype.kind == "c":
        raise VolumeReadError(f"{path} holds complex voxels ({dtype}); not supported")
    proxy = img.dataobj
    offset = int(getattr(proxy, "offset", 0))
    if not path.name.lower().endswith(".gz"):  # a cut file is found now, as when read whole
        needed = offset + math.prod(int(n) for n in img.shape) * dtype.itemsize
        if path.stat().st_size < needed:
            raise VolumeReadError(
                f"could not read the voxel data of {path} (the file is truncated or corrupt): "
                f"the header needs {needed} bytes, the file has {path.stat().st_size}; "
                "re-export or re-download it"
            )
    plan: list[int | tuple[str, bool]] = [
        ("xyz"[int(dst)], bool(flip < 0)) for dst, flip in ornt
    ]  # LPS axis 0, 1, 2 = x, y, z of (z, y, x)
    plan += [int(i) for i in index[3:]]
    out = np.dtype(np.float32) if scaled else dtype.newbyteorder("=")
    return SourceSlices(
        proxy,
        plan,
        dtype=out,
        convert=(lambda a: a.astype(np.float32, copy=False)) if scaled else None,
        origin=str(path),
    )


def read_nifti(
    path: Path, channel: int | None, max_bytes: int | None = None, lazy: bool | None = False
) -> tuple[np.ndarray | SourceSlices, tuple[float, float, float], str, NiftiGeometry, dict]:
    """Read a NIfTI file into a (z, y, x) array in canonical LPS orientation.

    Args:
        path: an existing ``.nii`` / ``.nii.gz`` file (NIfTI-1 or NIfTI-2).
        channel: index along the single non-spatial dimension (4th, or 5th for vector
            images, or RGB components) for multichannel files; ``None`` for 3D files.
        max_bytes: memory the read may use; ``None``: the memory available now. Checked
            from the header before any voxel is read; only the chosen channel is read
            (nibabel array proxy slicing). Not used for lazy reads.
        lazy: True reads no voxel now: ``data`` is a lazy (z, y, x)
            :class:`~slicesam.io.lazy.SourceSlices` over nibabel's array proxy (slow on
            ``.nii.gz`` without indexed_gzip: each read decompresses up to its slice); None
            decides by size (:func:`~slicesam.io.lazy.wants_lazy`); False reads it all.
            RGB files are always read whole.

    Returns:
        ``(data, spacing, unit, geometry, meta)``: ``data`` (z, y, x), all voxels read into
        memory (unless lazy), file dtype when unscaled, float32 when
        ``scl_slope``/``scl_inter`` apply;
        ``spacing`` (z, y, x) from the header zooms; ``unit`` ("mm", "um", "m").

    Raises:
        VolumeReadError: unreadable/truncated file, corrupt header geometry, 2D image,
            multichannel without a valid ``channel``, or too large for ``max_bytes``.
    """
    img = _load_image(path)
    header = img.header
    source: object = img.dataobj
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3:
        raise not_3d_error(path, shape)
    if any(n <= 0 for n in shape):
        raise VolumeReadError(f"{path} is empty (shape {shape})")
    affine = _checked_affine(path, img)
    rgb_axis = None

    dtype = header.get_data_dtype()
    n_voxels = math.prod(shape[:3])
    n_all = math.prod(shape[3:]) if dtype.fields is not None else 1
    scaled = _is_scaled(img)
    nbytes = n_voxels * (4 if scaled else dtype.itemsize)
    read_lazily = dtype.fields is None and wants_lazy(lazy, nbytes)
    if not read_lazily:
        check_fits(
            path,
            _peak_bytes(n_voxels, dtype, scaled, n_all),
            f"one {shape[0]}x{shape[1]}x{shape[2]} volume of "
            + ("RGB" if dtype.fields is not None else str(dtype)),
            max_bytes,
        )
    if dtype.fields is not None:  # RGB / RGBA NIfTI: structured voxels -> trailing channels
        try:
            raw = np.asanyarray(img.dataobj)
        except Exception as exc:
            raise VolumeReadError(
                f"could not read the voxel data of {path} (the file may be truncated or "
                f"corrupt): {describe_exception(exc)}"
            ) from exc
        from numpy.lib import recfunctions

        source = recfunctions.structured_to_unstructured(raw)
        shape = tuple(int(s) for s in source.shape)  # type: ignore[attr-defined]
        rgb_axis = len(shape) - 1

    index: tuple = (slice(None),) * 3
    n_channels, axis_name = 1, None
    extra = [(ax, n) for ax, n in enumerate(shape[3:], start=3) if n != 1]
    if len(extra) > 1:
        dims = ", ".join(f"dimension {ax + 1} has {n}" for ax, n in extra)
        raise VolumeReadError(
            f"{path} has shape {shape}: more than one non-spatial dimension ({dims}); "
            "slicesam reads 3D volumes or 4D files with one channel dimension"
        )
    if extra:
        ch_axis, n = extra[0]
        axis_name = "RGB components" if ch_axis == rgb_axis else f"NIfTI dimension {ch_axis + 1}"
        ch = pick_channel(path, channel, n, axis_name)
        n_channels = n
        index += tuple(ch if ax == ch_axis else 0 for ax in range(3, len(shape)))
    else:
        single_channel(path, channel)
        index += (0,) * (len(shape) - 3)

    ornt = ornt_transform(io_orientation(affine), LPS_ORNT)
    if read_lazily:
        data = _lazy_zyx(path, img, index, ornt, scaled)
    else:
        data = _read_zyx(path, source, index, ornt, scaled)
    geometry = NiftiGeometry(
        header=header.copy(),
        affine=affine,
        shape=shape[:3],  # type: ignore[arg-type]
        ornt=ornt,
        nifti2=isinstance(img, nib.Nifti2Image),
    )
    spacing = _spacing_zyx(header, affine, ornt)
    unit = _space_unit(header)
    meta = {
        "format": "nifti2" if geometry.nifti2 else "nifti1",
        "source_shape": shape,
        "source_axcodes": "".join(geometry.source_axcodes),
        "channel": channel if extra else None,
        "n_channels": n_channels,
        "channel_axis": axis_name,
    }
    return data, spacing, unit, geometry, meta


def _read_zyx(
    path: Path, source: object, index: tuple, ornt: np.ndarray, scaled: bool
) -> np.ndarray:
    """The indexed voxels read into memory and reoriented to (z, y, x)."""
    try:
        data = np.asanyarray(source[index])  # type: ignore[index]
    except Exception as exc:  # EOFError, zlib.error, OSError("Expected n bytes") ...
        raise VolumeReadError(
            f"could not read the voxel data of {path} (the file may be truncated or corrupt): "
            f"{describe_exception(exc)}; re-export or re-download it"
        ) from exc
    data = np.asarray(data)
    if np.iscomplexobj(data):
        raise VolumeReadError(f"{path} holds complex voxels ({data.dtype}); not supported")
    if scaled and data.dtype != np.float32:
        data = data.astype(np.float32)
    return np.ascontiguousarray(apply_orientation(data, ornt).transpose(2, 1, 0))


def write_nifti(
    path: Path,
    labels: np.ndarray,
    geometry: NiftiGeometry | None,
    spacing: tuple[float, float, float],
    unit: str,
) -> None:
    """Write an integer (z, y, x) label array as NIfTI at ``path`` (not atomic; see writer).

    With a :class:`NiftiGeometry` the array is put back into the source's on-disk orientation
    and shape and written with a copy of the source header: affine, qform/sform (codes and
    values), pixdim and units are the source's bit for bit; the datatype becomes the labels'
    dtype with ``scl_slope=1``, ``scl_inter=0``, ``cal_min=0``, ``cal_max=max``; extensions
    are dropped and a non-label intent is cleared. A 4D source gives a 3D output.

    Without one (e.g. labels for a TIFF volume), the (z, y, x) array is written as (x, y, z)
    with the LPS affine ``diag(-sx, -sy, sz, 1)`` (sform and qform code 1) so that it loads
    back unchanged, with zooms = spacing and the unit as ``xyzt_units`` when known.
    """
    if geometry is not None:
        if geometry.zyx_shape != labels.shape:
            raise VolumeWriteError(
                f"labels shape {labels.shape} does not match the source grid "
                f"{geometry.zyx_shape} (z, y, x)"
            )
        klass = nib.Nifti2Image if geometry.nifti2 else nib.Nifti1Image
        ijk = np.ascontiguousarray(geometry.to_source(labels))
        # affine=None: nibabel keeps the header's qform/sform untouched. The image copies the
        # header; the shape is only rewritten when it differs (4D source), since
        # set_data_shape also resets the unused pixdim entries.
        img = klass(ijk, None, header=geometry.header)
        header = img.header
        if hasattr(header, "extensions"):
            del header.extensions[:]
        header.set_data_dtype(labels.dtype)
        header.set_slope_inter(1.0, 0.0)  # after construction: the constructor resets them
        header["cal_min"] = 0
        header["cal_max"] = float(labels.max()) if labels.size else 0.0
        if int(header["intent_code"]) not in (0, _INTENT_LABEL):
            header.set_intent("none")
    else:
        sz, sy, sx = (float(s) for s in spacing)
        affine = np.diag([-sx, -sy, sz, 1.0])
        img = nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine)
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
        img.header.set_data_dtype(labels.dtype)
        img.header.set_slope_inter(1.0, 0.0)
        img.header["cal_min"] = 0
        img.header["cal_max"] = float(labels.max()) if labels.size else 0.0
        img.header.set_xyzt_units(xyz=_UNIT_TO_NIFTI.get(unit, "unknown"))
    nib.save(img, str(path))
