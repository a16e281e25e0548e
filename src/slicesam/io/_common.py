"""Helpers shared by the NIfTI and TIFF readers/writers: file types and user-facing messages."""

from __future__ import annotations

import operator
import os
from pathlib import Path

from slicesam.errors import VolumeReadError

#: File name endings slicesam reads and writes, by format.
NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")
SUPPORTED_SUFFIXES = NIFTI_SUFFIXES + TIFF_SUFFIXES


def as_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`Path` with ``~`` expanded."""
    return Path(os.fspath(path)).expanduser()


def file_format(path: Path) -> str | None:
    """Return ``"nifti"``, ``"tiff"`` or ``None`` from the (case-insensitive) file name ending."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    return None


def format_suffix(path: Path) -> str:
    """The file-type ending of ``path`` as written (``.nii.gz`` counts as one ending)."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[-7:]
    return path.suffix


def supported_list() -> str:
    """Human-readable list of the supported endings."""
    return ", ".join(SUPPORTED_SUFFIXES)


def join_choices(n: int) -> str:
    """``"0, 1 or 2"`` for ``n=3``; ``"0, 1, ..., 299"`` style ranges for long lists."""
    if n <= 1:
        return "0"
    if n <= 6:
        return ", ".join(str(i) for i in range(n - 1)) + f" or {n - 1}"
    return f"0, 1, ..., {n - 1}"


def channel_hint(path: Path, n: int, axis: str) -> str:
    """Message telling the user how to pick one of ``n`` channels along ``axis``."""
    return (
        f"{path} has {n} channels ({axis}); pass channel={join_choices(n)} "
        f"(load_volume(path, channel=N), CLI --channel N)"
    )


def check_channel_arg(channel: int | None) -> int | None:
    """Validate the ``channel=`` argument (``None`` or a non-negative integer)."""
    if channel is None:
        return None
    try:
        value = operator.index(channel)
    except TypeError:
        raise VolumeReadError(f"channel must be a non-negative integer, got {channel!r}") from None
    if isinstance(channel, bool) or value < 0:
        raise VolumeReadError(f"channel must be a non-negative integer, got {channel!r}")
    return value


def pick_channel(path: Path, channel: int | None, n: int, axis: str) -> int:
    """Return the channel index to take among ``n`` along ``axis`` or raise a helpful error.

    ``channel=None`` with ``n > 1`` raises; an index outside ``0..n-1`` raises.
    """
    if channel is None:
        if n == 1:
            return 0
        raise VolumeReadError(channel_hint(path, n, axis))
    if channel >= n:
        if n == 1:
            raise VolumeReadError(
                f"channel={channel} is out of range: {path} has a single channel "
                "(pass channel=0 or leave it out)"
            )
        raise VolumeReadError(f"channel={channel} is out of range: {channel_hint(path, n, axis)}")
    return channel


def single_channel(path: Path, channel: int | None) -> None:
    """Check ``channel`` for a file with one channel (only ``None`` or 0 are valid)."""
    pick_channel(path, channel, 1, "")


def not_3d_error(path: Path, shape: tuple[int, ...]) -> VolumeReadError:
    """Error for an image that is not a volume (2D plane, 1D line, ...)."""
    shape_txt = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return VolumeReadError(
            f"{path} is a 2D image (shape {shape_txt}); slicesam needs a 3D volume (z, y, x)"
        )
    return VolumeReadError(
        f"{path} has {len(shape)} dimension(s) (shape {shape_txt}); "
        "slicesam needs a 3D volume (z, y, x)"
    )


def describe_exception(exc: BaseException) -> str:
    """``"EOFError: Compressed file ended ..."`` (first line only, kept short)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
