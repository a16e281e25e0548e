"""The README's examples run as written: the prompts file, the Python API and the napari script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slicesam.prompts import parse_prompts
from slicesam.samples import get_sample

README = Path(__file__).resolve().parents[1] / "README.md"


def code_block(heading: str, language: str) -> str:
    """The first ``language`` code block under the README section ``heading``."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(f"## {heading}\n") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    found = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert found, f"no {language} block under '## {heading}'"
    return found.group(1)


def test_the_prompts_example_fits_the_sample_ct():
    doc = json.loads(code_block("Command line", "json"))
    shape = (30, 101, 122)  # the sample CT, as load_volume gives it
    (obj,) = parse_prompts(doc, shape=shape)
    assert obj.name == "liver" and obj.z_range == (2, 29)


def test_the_readme_stays_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path, monkeypatch):
    from slicesam.io import load_volume
    from slicesam.metrics import dice

    sample = get_sample("ct_abdomen")
    shutil.copy(sample.image, tmp_path / "ct.nii.gz")
    monkeypatch.chdir(tmp_path)
    exec(compile(code_block("Python API", "python"), "README.md", "exec"), {})
    labels = load_volume(tmp_path / "liver.nii.gz").data
    truth = load_volume(sample.labels).data == sample.label_id("liver")
    assert dice(labels == 1, truth) > 0.8


@pytest.mark.slow
@pytest.mark.gui
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="napari needs an X server (Xvfb)")
def test_the_scripting_napari_example_runs(tmp_path):
    from slicesam.io import load_volume

    script = code_block("Scripting napari", "python")
    assert script.rstrip().endswith("napari.run()")
    # the same script, unattended: close the viewer instead of handing it to the user
    (tmp_path / "script.py").write_text(script.replace("napari.run()", "viewer.close()"))
    out = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "slices written" in out.stdout
    labels = load_volume(tmp_path / "liver_labels.nii.gz").data
    assert np.unique(labels).tolist() == [0, 1] and (labels == 1).sum() > 1000
