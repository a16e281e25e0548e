"""Fuzzing the NIfTI and TIFF readers: damaged files load as a Volume or raise SliceSamError.

Each example mutates the bytes of a small valid file (header fields set to odd values, random
bytes overwritten, truncation, gzip damage) and loads it with :func:`slicesam.load_volume`.
Anything other than a valid :class:`~slicesam.io.Volume` or a
:class:`~slicesam.errors.SliceSamError` (with a one-line, non-empty message) is a bug. A volume
that loads must also survive ``save_labels(..., like=volume)`` (or refuse with a
``SliceSamError``).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from slicesam.errors import SliceSamError
from slicesam.io import Volume, load_volume, save_labels

#: Keeps one damaged file from asking for gigabytes (the limit is checked before reading).
MAX_BYTES = 64 * 1024**2

#: Examples per fuzz test; raise it (e.g. SLICESAM_FUZZ_EXAMPLES=2000) for a deeper local run.
EXAMPLES = int(os.environ.get("SLICESAM_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="SLICESAM_FUZZ_EXAMPLES" not in os.environ,  # deep runs explore new inputs
)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="slicesam-fuzz-") as folder:
        yield Path(folder)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """nibabel / tifffile / numpy warn (and tifffile logs) a lot about damaged files."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield
    logger.setLevel(level)


def event(value: str) -> None:
    """Record a hypothesis statistics event; a no-op in the plain (non-fuzz) tests."""
    if currently_in_test_context():
        hypothesis_event(value)


def check_load(path: Path, channel: int | None = None) -> Volume | None:
    """Load ``path``; return the volume, or None after a proper SliceSamError."""
    try:
        vol = load_volume(path, channel=channel, max_bytes=MAX_BYTES)
    except SliceSamError as exc:
        msg = str(exc)
        assert msg.strip(), "empty error message"
        assert "Traceback" not in msg
        event(f"refused: {type(exc).__name__}: {msg.split(':')[1][:40] if ':' in msg else msg}")
        return None
    event("loaded")
    assert isinstance(vol, Volume)
    assert vol.data.ndim == 3 and all(n > 0 for n in vol.data.shape)
    assert vol.data.flags.c_contiguous
    assert len(vol.spacing) == 3
    assert all(np.isfinite(s) and s > 0 for s in vol.spacing), vol.spacing
    if np.issubdtype(vol.data.dtype, np.floating):
        assert np.isfinite(vol.data).all()
    out = path.with_name("labels" + ("".join(path.suffixes) or ".nii"))
    try:
        save_labels(out, np.zeros(vol.shape, np.uint8), like=vol)
    except SliceSamError as exc:
        assert str(exc).strip()
    return vol


# --------------------------------------------------------------------------- NIfTI


def _nifti_bytes(shape: tuple[int, ...] = (5, 4, 3), nifti2: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 1000, size=shape).astype(np.int16)
    aff = np.array(
        [[0.9, 0.1, 0.0, -10.0], [-0.1, 0.8, 0.2, 5.0], [0.0, -0.2, 2.5, 3.0], [0, 0, 0, 1]]
    )
    klass = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    img = klass(data, aff)
    img.header.set_qform(aff, code=1)
    img.header.set_sform(aff, code=2)
    img.header.set_xyzt_units("mm")
    return img.to_bytes()


NIFTI_BASES = {
    "3d": _nifti_bytes(),
    "4d": _nifti_bytes((5, 4, 3, 2)),
    "nifti2": _nifti_bytes(nifti2=True),
}
HEADER1 = nib.Nifti1Header.template_dtype

#: Odd values to put into numeric header fields.
SPECIAL = [0, 1, -1, 2, 3, 7, 255, 2**15 - 1, -(2**15), 2**31 - 1, 1e-30, 1e30, -0.5]
SPECIAL_FLOATS = SPECIAL + [float("nan"), float("inf"), float("-inf")]


@st.composite
def header_edit(draw: st.DrawFn) -> tuple[int, bytes]:
    """(offset, bytes): one NIfTI-1 header field (or one element of it) set to an odd value."""
    name = draw(st.sampled_from([n for n in HEADER1.names if n not in ("magic",)]))
    dtype, offset = HEADER1.fields[name][:2]
    base = dtype.base
    count = int(np.prod(dtype.shape)) if dtype.shape else 1
    k = draw(st.integers(0, count - 1))
    offset += k * base.itemsize
    if base.kind == "f":
        value = draw(st.sampled_from(SPECIAL_FLOATS) | st.floats(width=32))
        return offset, np.array([value], dtype=base).tobytes()
    if base.kind in "iu":
        info = np.iinfo(base)
        value = draw(st.sampled_from(SPECIAL) | st.integers(int(info.min), int(info.max)))
        value = int(value) if isinstance(value, int) else 0
        value = min(max(value, int(info.min)), int(info.max))
        return offset, np.array([value], dtype=base).tobytes()
    return offset, draw(st.binary(min_size=base.itemsize, max_size=base.itemsize))


@st.composite
def mutated_nifti(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes) of a damaged NIfTI file."""
    base = draw(st.sampled_from(sorted(NIFTI_BASES)))
    blob = bytearray(NIFTI_BASES[base])
    if base != "nifti2":
        for offset, value in draw(st.lists(header_edit(), max_size=4)):
            blob[offset : offset + len(value)] = value
    for pos, byte in draw(
        st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=6)
    ):
        blob[pos] = byte
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    compressed = draw(st.booleans())
    if not compressed:
        return "image.nii", bytes(blob)
    packed = bytearray(gzip.compress(bytes(blob), mtime=0))
    damage = draw(st.sampled_from(["none", "truncate", "flip"]))
    if damage == "truncate":
        packed = packed[: draw(st.integers(0, len(packed)))]
    elif damage == "flip":
        pos = draw(st.integers(0, len(packed) - 1))
        packed[pos] ^= draw(st.integers(1, 255))
    return "image.nii.gz", bytes(packed)


@FUZZ
@given(case=mutated_nifti(), channel=st.sampled_from([None, 0, 1]))
def test_fuzz_nifti_reader(workdir: Path, case: tuple[str, bytes], channel: int | None) -> None:
    name, blob = case
    for old in workdir.iterdir():
        old.unlink()
    path = workdir / name
    path.write_bytes(blob)
    check_load(path, channel)


# --------------------------------------------------------------------------- TIFF


def _tiff_bytes(**kwargs: object) -> bytes:
    rng = np.random.default_rng(1)
    shape = kwargs.pop("shape", (3, 6, 5))
    data = rng.integers(0, 4000, size=shape).astype(kwargs.pop("dtype", np.uint16))
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, **kwargs)
    return buf.getvalue()


TIFF_BASES = {
    "imagej": _tiff_bytes(
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.3),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"},
    ),
    "imagej_zcyx": _tiff_bytes(
        shape=(3, 2, 6, 5), imagej=True, metadata={"axes": "ZCYX", "spacing": 2.0}
    ),
    "shaped_uint32": _tiff_bytes(
        dtype=np.uint32, photometric="minisblack", metadata={"axes": "ZYX", "spacing": 2.0}
    ),
    "zlib": _tiff_bytes(compression="zlib", photometric="minisblack"),
    "ome": _tiff_bytes(ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.5}),
}


@st.composite
def mutated_tiff(draw: st.DrawFn) -> bytes:
    """Bytes of a damaged TIFF file: tag area edits, random bytes, truncation, insertion."""
    base = draw(st.sampled_from(sorted(TIFF_BASES)))
    blob = bytearray(TIFF_BASES[base])
    head = min(len(blob), 512)  # header, first IFD and tags: where damage matters most
    for pos, byte in draw(
        st.lists(st.tuples(st.integers(0, head - 1), st.integers(0, 255)), max_size=6)
    ):
        blob[pos] = byte
    for pos, word in draw(
        st.lists(st.tuples(st.integers(0, head - 4), st.sampled_from(WORDS)), max_size=3)
    ):
        blob[pos : pos + 4] = word
    for pos, byte in draw(
        st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=3)
    ):
        blob[pos] = byte
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    if draw(st.integers(0, 9)) == 0:
        pos = draw(st.integers(0, len(blob)))
        blob[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(blob)


#: 32-bit words that make tag counts, offsets and sizes extreme.
WORDS = [
    struct.pack("<I", v) for v in (0, 1, 2, 3, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, 1 << 24)
]


@FUZZ
@given(blob=mutated_tiff(), channel=st.sampled_from([None, 0, 1]))
def test_fuzz_tiff_reader(workdir: Path, blob: bytes, channel: int | None) -> None:
    for old in workdir.iterdir():
        old.unlink()
    path = workdir / "image.tif"
    path.write_bytes(blob)
    check_load(path, channel)


# --------------------------------------------------------------------------- bases


@pytest.mark.parametrize("base", sorted(NIFTI_BASES))
def test_fuzz_nifti_bases_load(workdir: Path, base: str) -> None:
    """The unmutated fuzz seeds are valid files (so the fuzzing starts from real data)."""
    path = workdir / "base.nii"
    path.write_bytes(NIFTI_BASES[base])
    assert check_load(path, 0) is not None


@pytest.mark.parametrize("base", sorted(TIFF_BASES))
def test_fuzz_tiff_bases_load(workdir: Path, base: str) -> None:
    path = workdir / "base.tif"
    path.write_bytes(TIFF_BASES[base])
    assert check_load(path, 0) is not None


def test_gzip_of_nothing(workdir: Path) -> None:
    """A valid gzip stream with no content, and raw deflate data named .nii.gz."""
    path = workdir / "empty.nii.gz"
    path.write_bytes(gzip.compress(b""))
    assert check_load(path) is None
    path.write_bytes(zlib.compress(NIFTI_BASES["3d"]))
    assert check_load(path) is None
