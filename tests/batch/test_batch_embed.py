"""``run_embed``: the on-disk embedding cache of many volumes, computed on a 2-worker
LocalCluster, is the one a later interactive Session on a volume finds (it starts warm)."""

from __future__ import annotations

from batch_fakes import fake_loader

from fakes import PackingModel
from slicesam.batch.jobs import read_jobs
from slicesam.batch.runner import run_embed
from slicesam.batch.segment import load_inputs, segment_objects
from slicesam.batch.settings import BatchSettings
from slicesam.engine.session import Session

FAKE = BatchSettings(model="fake")


def embed(client, source, **kwargs):
    jobs, _ = read_jobs(source, prompts=False)
    run = run_embed(jobs, FAKE, client=client, loader=fake_loader, **kwargs)
    return {r.name: r for r in run.results}


def test_a_later_session_finds_every_slice_cached(client, jobs_dir, tmp_path):
    folder, _ = jobs_dir
    cache = tmp_path / "embeddings"
    results = embed(client, folder, cache_dir=cache)
    assert {n: r.status for n, r in results.items()} == {
        "a": "done",
        "b": "done",
        "broken": "failed",
        "c": "done",
    }
    assert results["a"].slices == results["a"].computed == 16
    assert "could not read" in results["broken"].error

    # an annotator opens volume a later: every embedding comes from disk, none is computed
    vol, objects = load_inputs(folder / "a.nii.gz", folder / "a.prompts.json")
    model = PackingModel(box_only=True)
    sess = Session(vol, model=model, disk_cache=cache)
    segment_objects(sess, objects)
    assert model.embed_calls == [], "the session started warm"
    assert sess.cache.disk_hits > 5
    assert str(sess.cache.store.folder) == results["a"].output

    again = embed(client, folder, cache_dir=cache)
    assert (again["a"].status, again["a"].computed) == ("skipped", 0)


def test_the_default_is_the_user_cache_that_disk_cache_true_reads(client, jobs_dir):
    folder, _ = jobs_dir
    (result,) = embed(client, folder / "c.tif").values()  # one volume, not a folder
    assert result.status == "done"
    vol, objects = load_inputs(folder / "c.tif", folder / "c.prompts.json")
    model = PackingModel(box_only=True)
    sess = Session(vol, model=model, disk_cache=True)
    sess.embed(3)
    assert model.embed_calls == [] and sess.cache.disk_hits == 1
    other = Session(vol, model=PackingModel(box_only=True), disk_cache=True, window=(0, 50))
    other.embed(3)
    assert other.cache.disk_hits == 0, "another window is another cache"
