"""Reading JOBS (a folder, a CSV or JSON manifest), the skip record's hashes and the summary
table: no cluster needed."""

from __future__ import annotations

import json
import os

import pytest
from batch_fakes import SHAPE, ball_volume, box_prompts, write_nifti

from slicesam.batch.fingerprint import image_sha256, image_stat, recipe_sha256
from slicesam.batch.jobs import Job, read_jobs
from slicesam.batch.result import JobResult
from slicesam.batch.settings import BatchSettings, check_model, parse_window
from slicesam.batch.summary import summary_table
from slicesam.errors import ModelError, SliceSamError


def test_a_folder_pairs_each_volume_with_its_prompts(jobs_dir):
    folder, _ = jobs_dir
    (folder / "extra.nii.gz").write_bytes(b"")  # no prompts: left out, and said so
    jobs, notes = read_jobs(folder)
    assert [j.name for j in jobs] == ["a", "b", "broken", "c"]
    assert jobs[0].image == folder / "a.nii.gz" and jobs[0].prompts == folder / "a.prompts.json"
    assert [j.labels_suffix() for j in jobs] == [".nii.gz", ".nii.gz", ".nii.gz", ".tif"]
    assert notes == ["1 volume without a NAME.prompts.json left out: extra.nii.gz"]
    embed, _ = read_jobs(folder, prompts=False)  # embed takes every volume, no prompts
    assert [j.name for j in embed] == ["a", "b", "broken", "c", "extra"]
    assert all(j.prompts is None for j in embed)


def test_folder_errors(tmp_path):
    (tmp_path / "lonely.prompts.json").write_text("{}")
    with pytest.raises(SliceSamError, match="lonely.prompts.json has no volume next to it"):
        read_jobs(tmp_path)
    (tmp_path / "lonely.prompts.json").unlink()
    (tmp_path / "a.nii.gz").write_bytes(b"")
    with pytest.raises(SliceSamError, match="holds no NAME.prompts.json"):
        read_jobs(tmp_path)
    with pytest.raises(SliceSamError, match="jobs not found"):
        read_jobs(tmp_path / "nope")


def test_a_csv_manifest(jobs_dir):
    folder, _ = jobs_dir
    (folder / "jobs.csv").write_text(
        "# cohort 1\nimage,prompts,name\n\na.nii.gz,a.prompts.json,case-1\n"
        f"{folder / 'c.tif'},c.prompts.json,\n"
    )
    jobs, notes = read_jobs(folder / "jobs.csv")
    assert notes == []
    assert jobs == [
        Job("case-1", folder / "a.nii.gz", folder / "a.prompts.json"),
        Job("c", folder / "c.tif", folder / "c.prompts.json"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,prompts\nmissing.nii.gz,a.prompts.json\n", "line 2: image not found: .*missing"),
        ("image,prompts\na.nii.gz,missing.json\n", "line 2: prompts file not found"),
        ("image,prompts\na.nii.gz\n", "line 2: 1 fields, the header has 2"),
        ("image,prompts\na.nii.gz,\n", "line 2: no prompts file for a.nii.gz"),
        ("image,prompt\na.nii.gz,a.prompts.json\n", "line 2: unknown field 'prompt'"),
        ("a.nii.gz,a.prompts.json\n", "line 1: the first line must name the columns"),
        ("image,prompts\na.nii.gz,a.prompts.json\na.nii.gz,b.prompts.json\n", "line 3: name 'a'"),
        ("image,prompts,name\na.nii.gz,a.prompts.json,../x\n", "must be a plain file name"),
        ("# nothing\n", "lists no volumes"),
    ],
)
def test_csv_errors_name_the_line(jobs_dir, text, message):
    folder, _ = jobs_dir
    (folder / "jobs.csv").write_text(text)
    with pytest.raises(SliceSamError, match=message):
        read_jobs(folder / "jobs.csv")


def test_a_json_manifest(jobs_dir):
    folder, _ = jobs_dir
    entries = [{"image": "b.nii.gz", "prompts": "b.prompts.json", "name": "B"}]
    (folder / "jobs.json").write_text(json.dumps({"jobs": entries}))
    (jobs,), _ = read_jobs(folder / "jobs.json")
    assert jobs == Job("B", folder / "b.nii.gz", folder / "b.prompts.json")
    (folder / "list.json").write_text(json.dumps(entries))
    assert read_jobs(folder / "list.json")[0] == [jobs]
    for doc, message in [
        ({"objects": []}, "is a prompts file, not a manifest"),
        ({"jobs": [{"image": "b.nii.gz", "prompts": 3}]}, r"jobs\[0\]: prompts must be a string"),
        ({"jobs": ["b.nii.gz"]}, r"jobs\[0\]: expected an object"),
        ({"job": []}, "expected"),
    ]:
        (folder / "bad.json").write_text(json.dumps(doc))
        with pytest.raises(SliceSamError, match=message):
            read_jobs(folder / "bad.json")
    (folder / "bad.json").write_text("{")
    with pytest.raises(SliceSamError, match="not valid JSON"):
        read_jobs(folder / "bad.json")


def test_embed_takes_one_volume_but_batch_does_not(jobs_dir):
    folder, _ = jobs_dir
    assert read_jobs(folder / "a.nii.gz", prompts=False)[0] == [Job("a", folder / "a.nii.gz")]
    with pytest.raises(SliceSamError, match="give a folder, a .csv or a .json manifest$"):
        read_jobs(folder / "a.nii.gz")


def test_the_recipe_follows_prompts_and_settings_not_formatting(jobs_dir):
    folder, masks = jobs_dir
    job = Job("a", folder / "a.nii.gz", folder / "a.prompts.json")
    base = recipe_sha256(job, BatchSettings())
    doc = json.loads(job.prompts.read_text())
    job.prompts.write_text(json.dumps(doc, indent=4))  # the same prompts, laid out otherwise
    assert recipe_sha256(job, BatchSettings()) == base
    assert recipe_sha256(job, BatchSettings(device="cpu", threads=3)) == base  # where, not what
    assert recipe_sha256(job, BatchSettings(window=(0.0, 100.0))) != base
    assert recipe_sha256(job, BatchSettings(propagate=False)) != base
    doc["objects"][0]["boxes"][0]["box"][0] -= 1
    job.prompts.write_text(json.dumps(doc))
    assert recipe_sha256(job, BatchSettings()) != base


def test_image_hash_and_stat(tmp_path):
    data, _ = ball_volume((8, 20, 20), 5)
    write_nifti(tmp_path / "v.nii.gz", data)
    digest, stat = image_sha256(tmp_path / "v.nii.gz"), image_stat(tmp_path / "v.nii.gz")
    os.utime(tmp_path / "v.nii.gz", ns=(1, 1))
    assert image_sha256(tmp_path / "v.nii.gz") == digest
    assert image_stat(tmp_path / "v.nii.gz") != stat
    series = tmp_path / "series"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"one")
    (series / "2.dcm").write_bytes(b"two")
    first = image_sha256(series)
    assert [row[0] for row in image_stat(series)] == ["1.dcm", "2.dcm"]
    (series / "2.dcm").write_bytes(b"TWO")
    assert image_sha256(series) != first


def test_settings_checks():
    assert parse_window("-160,240") == (-160.0, 240.0) and parse_window("lung") == "lung"
    with pytest.raises(SliceSamError, match="LO,HI"):
        parse_window("1,2,3")
    with pytest.raises(ModelError, match="unknown model 'sam_vit_q'"):
        check_model(BatchSettings(model="sam_vit_q"))
    with pytest.raises(ModelError, match="computes no image embeddings"):
        check_model(BatchSettings(model="grabcut"), embeddings=True)
    with pytest.raises(SliceSamError, match="checkpoint not found"):
        check_model(BatchSettings(model="sam_vit_b", checkpoint="/no/such/file.pth"))
    check_model(BatchSettings(model="grabcut"))


def test_summary_table():
    results = [
        JobResult("case-1", "done", objects=2, slices=14, seconds=3.456),
        JobResult("b", "skipped", objects=1, slices=9),
        JobResult("broken", "failed", seconds=0.01, error="could not read broken.nii.gz"),
    ]
    assert summary_table(results, seconds=5.0).splitlines() == [
        "volume  objects  slices  seconds  status",
        "case-1        2      14      3.5  done",
        "b             1       9        -  skipped",
        "broken        -       -      0.0  failed: could not read broken.nii.gz",
        "3 volumes: 1 done, 1 skipped, 1 failed in 5.0 s",
    ]
    embed = summary_table([JobResult("a", "done", slices=16, computed=16, seconds=1.0)], "embed")
    assert embed.splitlines()[0] == "volume  slices  embedded  seconds  status"


def test_box_prompts_fit_the_volume():
    from slicesam.prompts import parse_prompts

    _, mask = ball_volume((8, 20, 22), 6)
    (obj,) = parse_prompts(box_prompts(mask), shape=SHAPE)
    assert obj.boxes[0].z == 8
