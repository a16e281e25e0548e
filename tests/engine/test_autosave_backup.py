"""A new session on an image with a sidecar keeps the earlier sidecar as ONE backup.

Each "No" to the widget's "restore the autosaved session?" starts a new session with autosave;
before, each left another ``<image>.slicesam-<date>-<time>`` folder next to the data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from slicesam.engine import Session
from slicesam.engine import autosave as autosave_mod
from slicesam.engine.autosave import (
    backup_for,
    find_autosave,
    is_sidecar,
    legacy_backups,
    start_autosave,
)
from slicesam.engine.journal import read_journal
from slicesam.engine.session import restore_session
from slicesam.io import load_volume


@pytest.fixture
def image_file(tmp_path: Path, two_balls) -> Path:
    vol, _, _ = two_balls
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0).copy(), np.eye(4)), str(path))
    return path


def new_session(image_file: Path, model, name: str) -> Session:
    """What the widget does after a "No": a fresh session that autosaves next to the image."""
    sess = Session(load_volume(image_file), model=model)
    start_autosave(sess, True, image_path=image_file)
    sess.new_object(name)
    sess.autosave.close()
    return sess


def object_names(folder: Path) -> list[str]:
    return [o["name"] for o in read_journal(folder).objects.values()]


def test_three_nos_leave_one_sidecar_and_one_backup(image_file, fake_model):
    side = image_file.with_name("case.nii.gz.slicesam")
    first = new_session(image_file, fake_model, "first")
    assert first.autosave.backup is None, "nothing was replaced"
    second = new_session(image_file, fake_model, "second")
    assert second.autosave.backup == backup_for(side) == side.with_name(side.name + "-previous")
    third = new_session(image_file, fake_model, "third")
    fourth = new_session(image_file, fake_model, "fourth")
    assert third.autosave.backup == fourth.autosave.backup == backup_for(side)
    assert sorted(p.name for p in image_file.parent.iterdir()) == [
        "case.nii.gz",
        "case.nii.gz.slicesam",
        "case.nii.gz.slicesam-previous",
    ]
    assert object_names(side) == ["fourth"]
    assert object_names(fourth.autosave.backup) == ["third"], "the latest replaced session"
    assert find_autosave(image_file) == side, "the backup is never offered for restore"


def test_the_backup_can_be_restored(image_file, fake_model):
    new_session(image_file, fake_model, "kept")
    replacing = new_session(image_file, fake_model, "new")
    restored = restore_session(replacing.autosave.backup, model=fake_model, resume=False)
    assert [o.name for o in restored.objects.values()] == ["kept"]


def test_resuming_keeps_no_backup(image_file, fake_model):
    new_session(image_file, fake_model, "a")
    restored = Session.restore(image_file, model=fake_model)
    assert restored.autosave.backup is None
    restored.autosave.close()
    assert not backup_for(image_file.with_name("case.nii.gz.slicesam")).exists()


def test_legacy_timestamped_sidecars_are_deleted(image_file, fake_model):
    side = image_file.with_name("case.nii.gz.slicesam")
    new_session(image_file, fake_model, "old")
    legacy = [side.with_name(side.name + s) for s in ("-20240101-120000", "-20240101-120000-1")]
    for folder in legacy:
        shutil.copytree(side, folder)
    not_ours = side.with_name(side.name + "-20240102-090000")  # no session.json / journal
    not_ours.mkdir()
    (not_ours / "notes.txt").write_text("the user's")
    assert legacy_backups(side) == legacy
    sess = new_session(image_file, fake_model, "new")
    assert not any(folder.exists() for folder in legacy)
    assert (not_ours / "notes.txt").is_file(), "only folders that are sidecars are deleted"
    assert is_sidecar(sess.autosave.backup) and object_names(sess.autosave.backup) == ["old"]


def test_backup_in_the_cache_when_the_folder_is_read_only(
    image_file, fake_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(autosave_mod, "_writable_dir", lambda folder: False)
    first = new_session(image_file, fake_model, "a")
    second = new_session(image_file, fake_model, "b")
    assert second.autosave.path == first.autosave.path
    assert second.autosave.backup == backup_for(first.autosave.path)
    assert sorted(p.name for p in second.autosave.path.parent.iterdir()) == [
        second.autosave.path.name,
        second.autosave.backup.name,
    ]
    assert sorted(p.name for p in image_file.parent.iterdir()) == ["cache", "case.nii.gz"]
