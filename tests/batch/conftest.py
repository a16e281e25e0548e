"""Fixtures of the batch tests: an in-process dask cluster of two workers and a jobs folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # batch_fakes, for every test here

from batch_fakes import LOADS, make_jobs  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded workers in this process (threads, not processes:
    it starts in a fraction of a second and the workers see the test's fake models)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cl:
        yield cl


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster) as cl:
        yield cl


@pytest.fixture
def jobs_dir(tmp_path):
    """(folder of 4 jobs: a, b (NIfTI), c (TIFF), broken (not a NIfTI); reference masks)."""
    LOADS.clear()
    folder = tmp_path / "jobs"
    masks = make_jobs(folder)
    return folder, masks
