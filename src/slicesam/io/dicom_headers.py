"""DICOM headers: reading one file's header (no pixels), its UIDs and texts, and what it holds.

Values shown in messages go through :func:`shown` / :func:`valid_uid` so that no header text
other than UIDs, descriptions and codes reaches the user (no patient identifiers).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from slicesam.errors import VolumeReadError
from slicesam.io._common import describe_exception

#: Media Storage Directory (DICOMDIR): an index of a disc or export, skipped quietly.
MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
#: Segmentation Storage SOP classes: label objects that may sit next to their series; a folder
#: with one image series and such objects still loads without ``series=``.
SEGMENTATION_SOP_CLASSES = frozenset(
    {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
)

_UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
_CODE_RE = re.compile(r"[A-Z0-9 _]{1,16}")


def valid_uid(text: str) -> str:
    """``text`` when it is a well-formed UID (digits and dots, at most 64), else ""."""
    return text if len(text) <= 64 and _UID_RE.fullmatch(text) else ""


def shown(text: str, max_len: int, code: bool = False) -> str:
    """A header string fit to show: a damaged length can make one value swallow the next
    elements (patient name included), so anything too long, with control characters or (for
    a code string) other than A-Z, 0-9, space and _ is replaced by a placeholder."""
    if not text:
        return ""
    ok = _CODE_RE.fullmatch(text) if code else len(text) <= max_len and text.isprintable()
    return text if ok else "(damaged value)"


def exception_text(exc: BaseException) -> str:
    """``describe_exception`` with quoted parts masked (they may quote header bytes)."""
    return re.sub(r"b?'[^']*'|b?\"[^\"]*\"", "'...'", describe_exception(exc))


def has_dicm_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def header_text(ds: Any, keyword: str, path: Path) -> str:
    """A string attribute ("" when absent), or an error naming a damaged header."""
    try:
        value = ds.get(keyword)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} has a damaged DICOM header: its {keyword} cannot be read "
            f"({type(exc).__name__}); remove or replace the file"
        ) from exc
    return "" if value is None else str(value).strip()


def header_uid(ds: Any, keyword: str, meta_keyword: str, path: Path) -> str:
    """A UID of the dataset, else the file meta's (anonymisers may blank the former); "" when
    neither is a well-formed UID."""
    value = header_text(ds, keyword, path)
    if value:
        return valid_uid(value)
    try:
        return valid_uid(str(ds.file_meta.get(meta_keyword, "") or "").strip())
    except Exception:
        return ""


def sop_class_name(ds: Any) -> str:
    """The SOP class of a header by name ("CT Image Storage"), or its UID, or "unknown"."""
    from pydicom.uid import UID

    try:
        uid = header_uid(ds, "SOPClassUID", "MediaStorageSOPClassUID", Path())
    except VolumeReadError:
        return "unknown SOP class"
    return UID(uid).name if uid else "unknown SOP class"


def object_kind(ds: Any) -> str:
    """What a header read without pixels describes: "image", "segmentation" or
    "non-image"."""
    try:
        sop_class = header_uid(ds, "SOPClassUID", "MediaStorageSOPClassUID", Path())
        has_grid = ds.get("Rows") is not None and ds.get("Columns") is not None
    except Exception:  # a damaged value: the header checks name it
        return "image"
    if sop_class in SEGMENTATION_SOP_CLASSES:
        return "segmentation"
    if has_grid:
        return "image"
    # an image class without Rows/Columns is a damaged image: the header checks name it
    return "image" if is_image_class(sop_class) else "non-image"


def is_image_class(sop_class: str) -> bool:
    """Whether a SOP Class UID is one of DICOM's "... Image Storage" classes."""
    from pydicom.uid import UID

    return bool(sop_class) and UID(sop_class).name.endswith("Image Storage")


def read_header(path: Path) -> Any | None:
    """The header (no pixels) of a DICOM file, ``None`` for a file that is not DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():  # pydicom's value warnings may quote header values
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            meta_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
    except InvalidDicomError:
        if has_dicm_magic(path):
            raise VolumeReadError(
                f"{path} is a damaged DICOM file (it starts like DICOM but its header cannot "
                "be read); remove or replace it"
            ) from None
        return None
    except Exception as exc:  # struct.error, EOFError, ValueError, OSError ...
        if has_dicm_magic(path):
            raise VolumeReadError(
                f"{path} is a damaged or truncated DICOM file ({exception_text(exc)}); "
                "remove or replace it"
            ) from exc
        return None
    if meta_class == MEDIA_DIRECTORY_SOP_CLASS:
        return None
    return ds
