"""DICOM pixels: decoding one slice (pydicom and its decoder plugins) and the rescale to
physical values."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io.dicom_headers import exception_text, valid_uid

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
PIP_NAMES = {"gdcm": "python-gdcm"}


def decoder_problem(syntax: str) -> str | None:
    """Why pixel data in ``syntax`` cannot be decoded here (naming the packages), or None."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(syntax)
    if not uid.is_transfer_syntax:  # damaged, private or made up
        shown = valid_uid(syntax) or "a damaged UID"
        return f"its file meta names {shown} as transfer syntax, which pydicom does not know"
    if not uid.is_compressed:
        return None
    name = uid.name if uid.name != syntax else "an unknown transfer syntax"
    try:
        decoder = get_decoder(uid)
    except Exception:  # NotImplementedError: no pydicom decoder for this syntax at all
        return f"its pixel data are stored as {name} ({syntax}), which pydicom cannot decode"
    if decoder.is_available:
        return None
    options = []
    for text in decoder.missing_dependencies:
        _plugin, _sep, needs = text.partition("requires ")
        pkgs = [
            PIP_NAMES.get(p, p)
            for p in (
                re.split(r"[<>=!~ ]", part.strip())[0] for part in re.split(r",| and ", needs)
            )
            if p and p != "numpy"
        ]
        if pkgs:
            options.append(" ".join(pkgs))
    how = (
        "; install one of: " + ", or ".join(f"`pip install {o}`" for o in options)
        if options
        else ""
    )
    return (
        f"its pixel data are compressed as {name} ({syntax}) and no installed package can "
        f"decode it{how}"
    )


# --------------------------------------------------------------------------- pixels


def read_pixels(path: Path, rows: int, columns: int) -> np.ndarray:
    """The stored (rows, columns) pixel values of the slice file ``path`` (no rescale)."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            has_pixels = any(k in ds for k in PIXEL_KEYWORDS)
            arr = ds.pixel_array if has_pixels else None
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(
            f"could not read the pixel data of {path} (the file may be truncated or corrupt): "
            f"{exception_text(exc)}; re-export or re-copy the series"
        ) from exc
    if arr is None:
        raise VolumeReadError(
            f"{path} is not an image: it has no pixel data (a non-image object in the series); "
            "remove it from the folder"
        )
    arr = np.asarray(arr)
    if arr.shape != (rows, columns):
        raise VolumeReadError(
            f"the pixel data of {path} have shape {tuple(arr.shape)}, the header says "
            f"{rows}x{columns}; the file is damaged"
        )
    if arr.dtype.kind not in "uif":
        raise VolumeReadError(f"{path} holds pixel data of unsupported type {arr.dtype}")
    return arr


def rescaled(raw: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """Apply RescaleSlope/Intercept per slice: int16 when exact and in range, else float32."""
    if (slopes == 1).all() and (intercepts == 0).all():
        return raw
    integral = (
        raw.dtype.kind in "ui"
        and np.array_equal(slopes, np.round(slopes))
        and np.array_equal(intercepts, np.round(intercepts))
    )
    if integral:
        lo = hi = None
        for k in range(raw.shape[0]):
            a, b = float(raw[k].min()) * slopes[k], float(raw[k].max()) * slopes[k]
            a, b = min(a, b) + intercepts[k], max(a, b) + intercepts[k]
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        info = np.iinfo(np.int16)
        if lo is not None and hi is not None and info.min <= lo and hi <= info.max:
            out = np.empty(raw.shape, np.int16)
            for k in range(raw.shape[0]):
                out[k] = raw[k].astype(np.int32) * int(slopes[k]) + int(intercepts[k])
            return out
    out = np.empty(raw.shape, np.float32)
    for k in range(raw.shape[0]):
        out[k] = raw[k].astype(np.float64) * slopes[k] + intercepts[k]
    return out
