"""Helpers shared by the NIfTI and TIFF readers/writers: file types and user-facing messages."""

from __future__ import annotations

import operator
import os
from pathlib import Path

from slicesam.errors import VolumeReadError

#: File name endings slicesam reads and writes, by format.
NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")
#: zarr / OME-Zarr stores (folders), read lazily (``slicesam.io.zarr_volume``).
ZARR_SUFFIXES = (".ome.zarr", ".zarr")
SUPPORTED_SUFFIXES = NIFTI_SUFFIXES + TIFF_SUFFIXES + ZARR_SUFFIXES
#: Labels of a DICOM series can also be written as a DICOM Segmentation object.
DICOM_SEG_SUFFIXES = (".dcm",)
LABEL_SUFFIXES = SUPPORTED_SUFFIXES + DICOM_SEG_SUFFIXES


def as_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`Path` with ``~`` expanded."""
    return Path(os.fspath(path)).expanduser()


def file_format(path: Path) -> str | None:
    """Return ``"nifti"``, ``"tiff"``, ``"zarr"``, ``"dicom-seg"`` or ``None`` from the
    (case-insensitive) file name ending."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    if name.endswith(DICOM_SEG_SUFFIXES):
        return "dicom-seg"
    return None


def format_suffix(path: Path) -> str:
    """The file-type ending of ``path`` as written (``.nii.gz`` counts as one ending)."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[-7:]
    return path.suffix


def supported_list(labels: bool = False) -> str:
    """Human-readable list of the endings volumes are read from (``labels``: written to)."""
    return ", ".join(LABEL_SUFFIXES if labels else SUPPORTED_SUFFIXES)


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


# --------------------------------------------------------------------------- file contents

#: Leading bytes of formats users may hand over by mistake -> a short name.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x1f\x8b", "gzip"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"II+\x00", "tiff"),
    (0, b"MM\x00+", "tiff"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"NRRD", "NRRD"),
    (0, b"PK\x03\x04", "ZIP"),
    (0, b"\x89HDF\r\n\x1a\n", "HDF5"),
    (0, b"ObjectType", "MetaImage"),
    (128, b"DICM", "DICOM"),
)

#: Sniffed formats slicesam reads -> (name in a message, the file ending they need).
_READABLE = {
    "nifti": ("uncompressed NIfTI (not gzip)", ".nii"),
    "nifti-gz": ("gzip-compressed NIfTI", ".nii.gz"),
    "tiff": ("a TIFF file", ".tif"),
}


def sniff_format(path: Path) -> str | None:
    """Guess a file's format from its first bytes, whatever its name says.

    Returns:
        ``"nifti"`` (uncompressed NIfTI-1/2, either byte order), ``"nifti-gz"`` (gzip whose
        first bytes decompress to a NIfTI header), ``"gzip"`` (other or unreadable gzip),
        ``"tiff"`` (classic or BigTIFF), ``"empty"`` (0 bytes), another format's name
        (``"PNG"``, ``"DICOM"``, ...) or ``None`` when unknown or unreadable.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(544)
    except OSError:
        return None
    if not head:
        return "empty"
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name != "gzip":
                return name
            return "nifti-gz" if _is_nifti_header(_gunzip_head(path)) else "gzip"
    return "nifti" if _is_nifti_header(head) else None


def _gunzip_head(path: Path, n: int = 544) -> bytes:
    """First ``n`` decompressed bytes of a gzip file (fewer, or b"", when it is corrupt)."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error):
        return b""


def _is_nifti_header(head: bytes) -> bool:
    """Whether ``head`` starts with a NIfTI-1 (348) or NIfTI-2 (540) ``sizeof_hdr``."""
    if len(head) < 4:
        return False
    return any(int.from_bytes(head[:4], order) in (348, 540) for order in ("little", "big"))


def content_mismatch_hint(path: Path, expected: str) -> str | None:
    """A sentence saying what ``path`` really holds when its name says otherwise.

    Args:
        path: the file.
        expected: ``"nifti"`` or ``"tiff"``, from the file name.

    Returns:
        e.g. ``"its contents are a TIFF file: rename it to end in .tif"``, or ``None`` when
        the contents match the name or cannot be recognised.
    """
    found = sniff_format(path)
    if found in (None, "empty"):
        return None
    gz_name = path.name.lower().endswith(".gz")
    if expected == "nifti" and (
        (found == "nifti" and not gz_name)
        or (found == "nifti-gz" and gz_name)
        or (found == "gzip" and gz_name)  # damaged .nii.gz: the read error says more
    ):
        return None
    if expected == "tiff" and found == "tiff":
        return None
    if found in _READABLE:
        what, ending = _READABLE[found]
        return f"its contents are {what}: rename it to end in {ending}"
    if found == "gzip":
        return "its contents are gzip-compressed: decompress it or rename it to end in .nii.gz"
    return f"its contents look like a {found} file; convert it to NIfTI or TIFF first"


# --------------------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or ``None`` when unknown.

    Uses ``psutil.virtual_memory().available`` when psutil is installed, else ``MemAvailable``
    from ``/proc/meminfo`` (Linux), else ``os.sysconf`` free pages.
    """
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no support on this platform
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``"1.5 GiB"`` style size."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def check_max_bytes(max_bytes: int | None) -> int | None:
    """Validate the ``max_bytes=`` argument (``None`` or a positive integer)."""
    if max_bytes is None:
        return None
    try:
        value = operator.index(max_bytes)
    except TypeError:
        raise VolumeReadError(f"max_bytes must be a positive integer, got {max_bytes!r}") from None
    if isinstance(max_bytes, bool) or value <= 0:
        raise VolumeReadError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    return value


def check_fits(
    path: Path,
    needed: int,
    what: str,
    max_bytes: int | None,
) -> None:
    """Refuse to read ``needed`` bytes when they exceed the memory limit.

    Args:
        path: the file (for the message).
        needed: bytes the read will allocate at its peak.
        what: description of the data, e.g. ``"shape (600, 512, 512) int16"``.
        max_bytes: the limit; ``None`` means the memory available now (no check when that is
            unknown).

    Raises:
        VolumeReadError: naming the size, the limit and what to do.
    """
    if max_bytes is None:
        limit = available_memory()
        if limit is None:
            return
        source = "available"
    else:
        limit, source = max_bytes, "allowed (max_bytes)"
    if needed <= limit:
        return
    raise VolumeReadError(
        f"{path} is too large to load: {what} needs about {format_bytes(needed)} of memory, "
        f"but only {format_bytes(limit)} is {source}. Free memory, load one channel, or "
        "crop/downsample the file first (or raise max_bytes= if you know it fits)"
    )
