"""Importing the package (and its public names' modules) must not import torch or napari."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "statement",
    [
        "import slicesam",
        "import slicesam; slicesam.load_volume; slicesam.save_labels; slicesam.Session",
        "import slicesam.cli",
        "import slicesam.engine",
    ],
)
def test_no_torch_on_import(statement):
    code = f"{statement}\nimport sys\nprint('torch' in sys.modules, 'napari' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout


def test_public_api():
    import slicesam

    for name in ("load_volume", "save_labels", "Session", "Volume", "dice", "MODELS"):
        assert hasattr(slicesam, name)
    with pytest.raises(AttributeError):
        slicesam.does_not_exist  # noqa: B018
