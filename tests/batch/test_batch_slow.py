"""End to end with the real LiteMedSAM: ``slicesam batch`` over the three sample volumes (two
structures each, boxed on their largest slice) on a LocalCluster of two worker processes, as a
subprocess; then a re-run that skips them all without starting a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slicesam.batch.sample_jobs import write_sample_jobs
from slicesam.io import load_volume
from slicesam.metrics import dice
from slicesam.samples import SAMPLES, get_sample

SRC = Path(__file__).resolve().parents[2] / "src"


def slicesam_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "slicesam", *args],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        cwd=cwd,
    )


@pytest.mark.slow
def test_batch_over_the_samples_with_litemedsam(tmp_path):
    manifest = write_sample_jobs(tmp_path / "jobs", max_objects=2)
    out = tmp_path / "labels"
    args = ["batch", str(manifest), "--out", str(out), "--workers", "2", "--device", "cpu"]
    done = slicesam_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 workers: model litemedsam on cpu" in done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:4]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [(key, "2", "done") for key in SAMPLES]

    for key, suffix in (("ct_abdomen", ".nii.gz"), ("mr_abdomen", ".nii.gz"), ("nuclei", ".tif")):
        sample = get_sample(key)
        vol = load_volume(sample.image)
        labels = load_volume(out / f"{key}{suffix}", like=vol).data
        reference = load_volume(sample.labels).data
        prompts = json.loads((manifest.parent / f"{key}.prompts.json").read_text())
        for obj in prompts["objects"]:
            score = dice(labels == obj["id"], reference == obj["id"])
            assert score > 0.6, (key, obj["name"], score)
        assert np.unique(labels).tolist() == [0] + [o["id"] for o in prompts["objects"]]

    again = slicesam_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[-1].startswith("3 volumes: 3 skipped")
    assert "dask dashboard" not in again.stderr, "nothing to do: no cluster started"
