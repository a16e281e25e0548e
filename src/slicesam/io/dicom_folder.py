"""DICOM folders: the series a folder holds (headers only), and choosing the one to load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slicesam.errors import VolumeReadError
from slicesam.io.dicom_headers import (
    has_dicm_magic,
    header_text,
    object_kind,
    read_header,
    shown,
    valid_uid,
)

# --------------------------------------------------------------------------- finding series


@dataclass
class Series:
    """The DICOM objects of a folder that share one SeriesInstanceUID."""

    uid: str
    items: list[tuple[Path, Any]]  # (file, header-only pydicom Dataset)
    description: str = ""
    modality: str = ""
    #: image series in the folder, this one included (set when it is chosen)
    image_series_in_folder: int = 1

    @property
    def kind(self) -> str:
        """What the series holds: "image" (some image objects), "segmentation" or
        "non-image"."""
        kinds = {object_kind(ds) for _f, ds in self.items}
        if "image" in kinds:
            return "image"
        return "segmentation" if kinds == {"segmentation"} else "non-image"

    @property
    def label(self) -> str:
        """The UID as shown in messages."""
        if not self.uid:
            return "(files without SeriesInstanceUID)"
        return valid_uid(self.uid) or "(damaged SeriesInstanceUID)"

    def summary(self) -> str:
        desc = repr(self.description) if self.description else "no description"
        n = len(self.items)
        if self.kind == "image":
            what = f"{n} slice{'s' if n != 1 else ''}"
        else:
            what = f"{n} {self.kind} object{'s' if n != 1 else ''}"
        return f"{self.label} ({desc}, {self.modality or 'no modality'}, {what})"


def scan_folder(folder: Path) -> tuple[dict[str, Series], int, bool]:
    """Series of ``folder`` (its own files, not subfolders), by SeriesInstanceUID ("" groups
    the files without one).

    Returns ``(series, n_subfolders, has_dicomdir)``.
    """
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise VolumeReadError(f"cannot list the folder {folder}: {exc.strerror or exc}") from exc
    found: dict[str, Series] = {}
    subfolders = 0
    has_dicomdir = False
    for entry in entries:
        if entry.is_dir():
            subfolders += 1
            continue
        if not entry.is_file():
            continue
        if entry.name.upper() == "DICOMDIR":
            has_dicomdir = True
        ds = read_header(entry)
        if ds is None:
            continue
        uid = header_text(ds, "SeriesInstanceUID", entry)  # "": none (files blanked by anonymisers)
        series = found.get(uid)
        if series is None:
            series = found[uid] = Series(
                uid=uid,
                items=[],
                description=shown(header_text(ds, "SeriesDescription", entry), 64),
                modality=shown(header_text(ds, "Modality", entry), 16, code=True),
            )
        series.items.append((entry, ds))
    return found, subfolders, has_dicomdir


def no_dicom_error(folder: Path, subfolders: int, has_dicomdir: bool) -> VolumeReadError:
    where = ""
    if has_dicomdir:
        where = (
            "; it holds a DICOMDIR index, whose images are in subfolders: pass the folder that "
            "holds the series' files"
        )
    elif subfolders:
        where = (
            f"; its {subfolders} subfolder{'s are' if subfolders != 1 else ' is'} not searched: "
            "pass the folder that holds the series' files"
        )
    return VolumeReadError(
        f"{folder} is a directory with no DICOM files in it{where}. slicesam reads a volume "
        "file (.nii.gz, .nii, .tif, .tiff) or a folder of one DICOM series"
    )


def series_of(folder: Path) -> dict[str, Series]:
    """:func:`scan_folder`'s series of ``folder``, or the error that it holds no DICOM files
    (naming a DICOMDIR or subfolders where the images may be)."""
    found, subfolders, has_dicomdir = scan_folder(folder)
    if not found:
        raise no_dicom_error(folder, subfolders, has_dicomdir)
    return found


def list_series(folder: str | Path) -> list[str]:
    """One line per DICOM series in ``folder`` (its own files, not subfolders): UID,
    description, modality and number of slices or objects. Only headers are read.

    Raises:
        VolumeReadError: the folder cannot be listed or holds no DICOM files.
    """
    folder = Path(folder)
    found = series_of(folder)
    return [s.summary() for s in found.values()]


def looks_like_dicom_folder(folder: str | Path, probe: int = 16) -> bool:
    """Whether ``folder`` holds DICOM files of its own: one of its first ``probe`` files
    (by name) starts like DICOM ("DICM" at byte 128). Reads 132 bytes per file probed."""
    try:
        files = sorted(e for e in Path(folder).iterdir() if e.is_file())
    except OSError:
        return False
    return any(has_dicm_magic(f) for f in files[:probe])


@dataclass(frozen=True)
class FolderContents:
    """What a folder of DICOM files holds (its own files; headers only).

    Attributes:
        image_series: (SeriesInstanceUID, SeriesDescription) of each image series, in
            UID order ("" for files without a SeriesInstanceUID).
        segmentations: the files holding DICOM Segmentation objects.
    """

    image_series: tuple[tuple[str, str], ...]
    segmentations: tuple[Path, ...]


def folder_contents(folder: str | Path) -> FolderContents:
    """The image series and segmentation files of ``folder`` (only headers are read).

    Raises:
        VolumeReadError: the folder cannot be listed or holds no DICOM files.
    """
    folder = Path(folder)
    found = series_of(folder)
    series = tuple(
        (s.uid, s.description) for header_uid, s in sorted(found.items()) if s.kind == "image"
    )
    segs = tuple(
        f for s in found.values() for f, ds in s.items if object_kind(ds) == "segmentation"
    )
    return FolderContents(series, tuple(sorted(segs)))


def choose_series(folder: Path, series: str | None) -> Series:
    """The series to load, or an error listing the choices."""
    found = series_of(folder)
    listing = "; ".join(s.summary() for s in found.values())
    image_series = [s for s in found.values() if s.kind == "image"]
    if series is not None:
        chosen = found.get(series)
        if chosen is None:
            raise VolumeReadError(
                f"{folder} has no DICOM series {series!r}; its series: {listing}. "
                "Pass one of these SeriesInstanceUIDs as series="
            )
        if chosen.kind != "image":
            raise VolumeReadError(
                f"series {series} in {folder} holds {chosen.kind} objects, not image slices; "
                f"its series: {listing}"
            )
        chosen.image_series_in_folder = len(image_series)
        return chosen
    if not image_series:
        raise VolumeReadError(
            f"{folder} holds no DICOM image series, only non-image objects: {listing}"
        )
    if len(image_series) > 1:
        blank = (
            " (files without SeriesInstanceUID cannot be picked: move them into a folder of "
            "their own)"
            if "" in found
            else ""
        )
        raise VolumeReadError(
            f"{folder} holds {len(image_series)} DICOM image series; pick one with "
            f"series=<SeriesInstanceUID> (load_volume(folder, series=...); on the command "
            f"line --series UID){blank}. "
            f"Series: {listing}"
        )
    return image_series[0]
