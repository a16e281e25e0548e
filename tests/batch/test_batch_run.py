"""``run_batch`` on a 2-worker LocalCluster with the fake model: every volume segmented as
``slicesam segment`` would, a broken one reported without stopping the others, the model
loaded once per worker, and re-runs that skip what is current."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from batch_fakes import LOADS, failing_loader, fake_loader

from fakes import PackingModel
from slicesam.batch.jobs import read_jobs
from slicesam.batch.runner import run_batch
from slicesam.batch.segment import load_inputs, segment_objects
from slicesam.batch.settings import BatchSettings
from slicesam.engine.session import Session
from slicesam.errors import SliceSamError
from slicesam.io import load_volume

FAKE = BatchSettings(model="fake")


def batch(client, folder, out, settings=FAKE, **kwargs):
    jobs, _ = read_jobs(folder)
    run = run_batch(jobs, out, settings, client=client, loader=fake_loader, **kwargs)
    return {r.name: r for r in run.results}, run


def test_each_volume_is_segmented_and_the_broken_one_reported(client, jobs_dir, tmp_path):
    folder, masks = jobs_dir
    out = tmp_path / "out"
    results, run = batch(client, folder, out)
    assert {n: r.status for n, r in results.items()} == {
        "a": "done",
        "b": "done",
        "broken": "failed",
        "c": "done",
    }
    assert (
        "could not read" in results["broken"].error and "broken.nii.gz" in results["broken"].error
    )
    assert "Traceback" in (out / "broken.error.txt").read_text()
    assert len(LOADS) == 2, "the model is loaded once per worker, not per volume"
    assert sorted(run.workers) == sorted(client.scheduler_info()["workers"])
    for name, suffix in (("a", ".nii.gz"), ("b", ".nii.gz"), ("c", ".tif")):
        # the same labels as one session on the volume gives (what `slicesam segment` does)
        vol, objects = load_inputs(folder / f"{name}{suffix}", folder / f"{name}.prompts.json")
        sess = Session(vol, model=PackingModel(box_only=True))
        segment_objects(sess, objects)
        labels = load_volume(out / f"{name}{suffix}", like=vol).data
        assert np.array_equal(labels, sess.labels)
        assert (labels == 1).sum() > 0.8 * masks[name].sum()
        record = json.loads((out / f"{name}.batch.json").read_text())
        assert record["objects"] == results[name].objects == 1
        slices = int(sess.labels.any(axis=(1, 2)).sum())
        assert record["slices"] == results[name].slices == slices > 5
    assert not list(out.glob(".tmp-*")), "no temporary file left behind"


def test_a_rerun_skips_what_is_current(client, jobs_dir, tmp_path):
    folder, _ = jobs_dir
    out = tmp_path / "out"
    batch(client, folder, out)
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}

    again, _ = batch(client, folder, out)
    assert {n: r.status for n, r in again.items()} == {
        "a": "skipped",
        "b": "skipped",
        "broken": "failed",  # a failed volume is tried again
        "c": "skipped",
    }
    assert again["a"].worker == "" and again["a"].objects == 1, "decided in the client"
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")} == written

    # the same bytes with another modification time: hashed on a worker, still skipped
    os.utime(folder / "a.nii.gz", ns=(10**18, 10**18))
    # other prompts for b: segmented again
    doc = json.loads((folder / "b.prompts.json").read_text())
    doc["objects"][0]["boxes"][0]["box"][2] += 2
    (folder / "b.prompts.json").write_text(json.dumps(doc))
    (folder / "broken.nii.gz").unlink()
    (folder / "broken.prompts.json").unlink()
    third, _ = batch(client, folder, out)
    assert {n: r.status for n, r in third.items()} == {"a": "skipped", "b": "done", "c": "skipped"}
    assert third["a"].worker != "", "the changed stat sent it to a worker, which hashed it"
    fourth, _ = batch(client, folder, out)
    assert fourth["a"].worker == "", "the record took the new stat"

    # other settings, or --force: everything again
    other, _ = batch(client, folder, out, BatchSettings(model="fake", window=(-200.0, 300.0)))
    assert {r.status for r in other.values()} == {"done"}
    forced, _ = batch(client, folder, out, force=True)
    assert {r.status for r in forced.values()} == {"done"}


def test_a_bad_prompts_file_fails_its_volume_only(client, jobs_dir, tmp_path):
    folder, _ = jobs_dir
    (folder / "a.prompts.json").write_text('{"objects": [{"boxes": [{"z": 2, "box": [1, 2]}]}]}')
    doc = json.loads((folder / "b.prompts.json").read_text())
    doc["objects"][0]["boxes"][0]["z"] = 99  # valid JSON, but off the volume: found on a worker
    (folder / "b.prompts.json").write_text(json.dumps(doc))
    results, _ = batch(client, folder, tmp_path / "out")
    assert results["a"].status == "failed" and "a.prompts.json" in results["a"].error
    assert results["b"].status == "failed" and "objects[0].boxes[0].z" in results["b"].error
    assert results["c"].status == "done"


def test_a_model_that_loads_nowhere_stops_the_batch(client, jobs_dir, tmp_path):
    folder, _ = jobs_dir
    jobs, _ = read_jobs(folder)
    with pytest.raises(SliceSamError, match="did not load on any worker: no weights for fake"):
        run_batch(jobs, tmp_path / "out", FAKE, client=client, loader=failing_loader)


def test_labels_never_replace_an_image(client, jobs_dir):
    folder, _ = jobs_dir
    jobs, _ = read_jobs(folder)
    with pytest.raises(SliceSamError, match="would replace its image"):
        run_batch(jobs, folder, FAKE, client=client, loader=fake_loader)
