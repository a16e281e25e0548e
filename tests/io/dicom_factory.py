"""Synthetic DICOM series for the tests: single-frame CT/MR slices written with pydicom.

File names and InstanceNumbers are shuffled so that neither can give the slice order. Patient
fields hold :data:`SECRETS`, which no message or file slicesam writes may show.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    MRImageStorage,
    generate_uid,
)

#: Header values no message may ever show (patient identifiers).
SECRETS = ("SECRET^PATIENT", "SECRET-ID-42", "SECRET")

AXIAL = (1, 0, 0, 0, 1, 0)


def cosines(rot_deg: float = 20.0) -> tuple[float, ...]:
    """An oblique axial orientation: rows rotated ``rot_deg`` about z, then tilted about x."""
    a, b = np.deg2rad(rot_deg), np.deg2rad(rot_deg / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    r = rx @ rz
    return tuple(r[:, 0]) + tuple(r[:, 1])


def ds_text(values) -> list[str]:
    """Decimal strings (DS) of at most 16 characters."""
    return [f"{float(v):.10g}" for v in values]


def normal_of(iop) -> np.ndarray:
    iop = np.asarray(iop, dtype=float)
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def lps_affine(iop, origin, pixel_spacing, step) -> np.ndarray:
    """(i = column, j = row, k = slice of the written stack) -> LPS mm."""
    iop = np.asarray(iop, dtype=float)
    aff = np.eye(4)
    aff[:3, 0] = iop[:3] * pixel_spacing[1]
    aff[:3, 1] = iop[3:] * pixel_spacing[0]
    aff[:3, 2] = normal_of(iop) * step
    aff[:3, 3] = origin
    return aff


def ras_affine(iop, origin, pixel_spacing, step) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine(iop, origin, pixel_spacing, step)


def make_slice(
    pixels: np.ndarray,
    *,
    ipp,
    iop=AXIAL,
    pixel_spacing=(0.8, 0.7),
    modality: str = "CT",
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    series_uid: str,
    study_uid: str = "1.2.826.0.1.3680043.8.498.1",
    frame_uid: str = "1.2.826.0.1.3680043.8.498.2",
    description: str = "synthetic series",
    instance: int = 1,
    thickness: float = 5.0,
    syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """One single-frame CT/MR slice (uncompressed; see :func:`compressed`)."""
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.Modality = modality
    ds.SeriesDescription = description
    ds.PatientName = "SECRET^PATIENT"
    ds.PatientID = "SECRET-ID-42"
    ds.InstanceNumber = instance
    ds.ImageOrientationPatient = ds_text(iop)
    ds.ImagePositionPatient = ds_text(ipp)
    ds.PixelSpacing = ds_text(pixel_spacing)
    ds.SliceThickness = f"{thickness:g}"  # deliberately not the step between slices
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if slope is not None:
        ds.RescaleSlope = f"{slope:g}"
    if intercept is not None:
        ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if syntax != ExplicitVRLittleEndian:
        compressed(ds, syntax)
    return ds


def compressed(ds: Dataset, syntax: str) -> None:
    """Compress ``ds`` in place: RLE / JPEG-LS with pydicom's encoders, JPEG 2000 lossless
    with Pillow (OpenJPEG), as PACS exports such as the shared CT are stored."""
    if syntax == JPEG2000Lossless:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(ds.pixel_array.astype(np.uint16)).save(
            buf, format="JPEG2000", no_jp2=True, irreversible=False
        )
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        return
    ds.compress(syntax)


def write_series(
    folder: Path,
    stack: np.ndarray,
    *,
    iop=AXIAL,
    origin=(-20.0, -30.0, 40.0),
    step: float = 2.5,
    pixel_spacing=(0.8, 0.7),
    modality: str = "CT",
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    series_uid: str | None = None,
    description: str = "synthetic series",
    positions=None,
    seed: int = 0,
    prefix: str = "IM",
    **kwargs,
) -> list[Path]:
    """Write ``stack`` (slice k, row, column; stored values) as a series in ``folder``.

    Slice k lies at ``origin + k * step * normal`` (or at ``positions[k]``), ``step`` may be
    negative. File names and InstanceNumbers are shuffled independently. Returns the files in
    stack order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = stack.shape[0]
    names = rng.permutation(n)
    numbers = rng.permutation(n) + 1
    series_uid = series_uid or generate_uid()
    normal = normal_of(iop)
    files = []
    for k in range(n):
        ipp = (
            np.asarray(positions[k], float)
            if positions is not None
            else np.asarray(origin, float) + k * step * normal
        )
        ds = make_slice(
            stack[k],
            ipp=ipp,
            iop=iop,
            pixel_spacing=pixel_spacing,
            modality=modality,
            slope=slope,
            intercept=intercept,
            series_uid=series_uid,
            description=description,
            instance=int(numbers[k]),
            **kwargs,
        )
        path = folder / f"{prefix}{names[k]:04d}"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def ct_stack(shape=(5, 6, 7), seed: int = 0) -> np.ndarray:
    """Stored CT values (uint16, 0..3000: HU -1024..1976 with intercept -1024)."""
    return np.random.default_rng(seed).integers(0, 3000, size=shape).astype(np.uint16)


#: What pydicom's JPEG Lossless decoder reports on a machine without GDCM or pylibjpeg-libjpeg
#: (its ``_unavailable``; with ``_available`` empty it has no plugin).
NO_JPEG_LOSSLESS_PLUGINS = {
    "gdcm": ("gdcm>=3.0.10",),
    "pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1"),
}


def as_jpeg_lossless(files: list[Path]) -> None:
    """Rewrite each file's pixel data as a (tiny, undecodable) JPEG Lossless stream."""
    import pydicom

    for f in files:
        ds = pydicom.dcmread(f)
        ds.PixelData = encapsulate([b"\xff\xd8" + bytes(30) + b"\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLossless
        ds.save_as(f)
