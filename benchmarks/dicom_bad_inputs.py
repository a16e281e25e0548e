"""What a user sees for bad DICOM input: one synthetic case per refusal, through the CLI.

Builds each case in a temporary folder with the tests' series factory
(``tests/io/dicom_factory.py``), runs ``slicesam segment DIR --prompts P --out OUT`` in-process
and prints a Markdown table of the case and the error line the command printed.

Usage::

    python benchmarks/dicom_bad_inputs.py > docs/dicom_bad_inputs.md
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLossless, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))
from dicom_factory import (  # noqa: E402
    NO_JPEG_LOSSLESS_PLUGINS,
    as_jpeg_lossless,
    cosines,
    ct_stack,
    ds_text,
    make_slice,
    write_series,
)

from slicesam.cli import main  # noqa: E402


def several_series(d: Path) -> None:
    write_series(d, ct_stack((3, 4, 5)), description="CT abdomen")
    write_series(d, ct_stack((4, 6, 6)), modality="MR", description="T2 axial", prefix="MR")


def missing_slice(d: Path) -> None:
    files = write_series(d, ct_stack((6, 4, 4)), step=3.0)
    files[2].unlink()


def duplicated_slice(d: Path) -> None:
    files = write_series(d, ct_stack((4, 4, 4)))
    ds = pydicom.dcmread(files[1])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(d / "copy_of_a_slice", enforce_file_format=True)


def uneven(d: Path) -> None:
    z = [0.0, 2.0, 4.0, 6.5, 8.5]
    write_series(d, ct_stack((5, 4, 4)), positions=[(0.0, 0.0, v) for v in z])


def tilt(d: Path) -> None:
    t = np.deg2rad(15.0)
    positions = [(0, 3 * k * np.tan(t), 3 * k) for k in range(4)]
    write_series(d, ct_stack((4, 4, 4)), positions=positions)


def non_parallel(d: Path) -> None:
    files = write_series(d, ct_stack((4, 4, 4)))
    ds = pydicom.dcmread(files[2])
    ds.ImageOrientationPatient = ds_text(cosines(5.0))
    ds.save_as(files[2])


def multi_frame(d: Path) -> None:
    d.mkdir(parents=True)
    ds = make_slice(np.zeros((4, 4), np.uint16), ipp=(0, 0, 0), series_uid=generate_uid())
    ds.NumberOfFrames = 3
    ds.PixelData = np.zeros((3, 4, 4), np.uint16).tobytes()
    ds.save_as(d / "multi.dcm", enforce_file_format=True)


def colour(d: Path) -> None:
    files = write_series(d, ct_stack((2, 3, 3)))
    ds = pydicom.dcmread(files[0])
    ds.SamplesPerPixel = 3
    ds.save_as(files[0])


def non_image(d: Path) -> None:
    files = write_series(d, ct_stack((3, 4, 4)))
    ds = pydicom.dcmread(files[0])
    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID
    sr.SeriesInstanceUID = ds.SeriesInstanceUID
    sr.Modality = "SR"
    sr.save_as(d / "report", enforce_file_format=True)


def truncated(d: Path) -> None:
    files = write_series(d, ct_stack((3, 8, 8)))
    files[1].write_bytes(files[1].read_bytes()[:-60])


def undecodable(d: Path) -> None:
    """JPEG Lossless on a machine without its decoders (pydicom told it has no plugin)."""
    from pydicom.pixels import get_decoder

    as_jpeg_lossless(write_series(d, ct_stack((3, 4, 4))))
    decoder = get_decoder(JPEGLossless)
    decoder._available = {}
    decoder._unavailable = NO_JPEG_LOSSLESS_PLUGINS


def empty(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)


def seg_for_blank_uids(d: Path) -> str:
    files = write_series(d, ct_stack((4, 8, 8)))
    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ds.SeriesInstanceUID = ""
        ds.save_as(f)
    return "seg.dcm"


def seg_for_nifti(d: Path) -> str:
    import nibabel as nib

    d.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.full((8, 8, 4), -1000, np.int16), np.eye(4)), d / "ct.nii.gz")
    return "seg.dcm"


#: (what, build(folder) -> None, or the output file name when it is not out.nii.gz).
CASES: list[tuple[str, Callable[[Path], str | None]]] = [
    ("several series in the folder, no --series", several_series),
    ("a slice missing", missing_slice),
    ("a slice duplicated", duplicated_slice),
    ("uneven slice spacing", uneven),
    ("gantry tilt (15 degrees)", tilt),
    ("slices not parallel", non_parallel),
    ("a multi-frame object", multi_frame),
    ("a colour image", colour),
    ("a non-image object (SR) in the series", non_image),
    ("a truncated slice file", truncated),
    ("JPEG Lossless without a decoder installed", undecodable),
    ("an empty folder", empty),
    ("--out seg.dcm for a series whose Study/Series UIDs were blanked", seg_for_blank_uids),
    ("--out seg.dcm for a NIfTI volume", seg_for_nifti),
]


def run(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("slicesam: error")]
    return code, lines[-1] if lines else err.getvalue().strip()


def main_table() -> None:
    print("| bad input | exit | what the user sees |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (what, build) in enumerate(CASES):
            folder = Path(tmp) / f"case{i}"
            prompts = Path(tmp) / "prompts.json"
            box = {"z": 0, "box": [0, 0, 2, 2]}
            prompts.write_text(json.dumps({"objects": [{"id": 1, "boxes": [box]}]}))
            out = build(folder) or "out.nii.gz"
            image = folder / "ct.nii.gz" if (folder / "ct.nii.gz").exists() else folder
            args = [
                "segment", str(image), "--prompts", str(prompts), "--out", str(folder / out),
                "--model", "grabcut", "--quiet",
            ]  # fmt: skip
            code, line = run(args)
            shown = line.replace(tmp, "…").replace("|", "\\|")
            print(f"| {what} | {code} | `{shown}` |")


if __name__ == "__main__":
    main_table()
