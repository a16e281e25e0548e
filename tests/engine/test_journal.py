"""Autosave journal: the sidecar format, restore, compaction, locations (fake model, no torch)."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from slicesam.engine import Session
from slicesam.engine import autosave as autosave_mod
from slicesam.engine.autosave import find_autosave, sidecar_for
from slicesam.engine.journal import JOURNAL, JournalError, load_labels, read_journal
from slicesam.engine.session import restore_session
from slicesam.io import load_volume


def box_of(mask2d: np.ndarray, pad: int = 1):
    ys, xs = np.nonzero(mask2d)
    return (int(xs.min()) - pad, int(ys.min()) - pad, int(xs.max()) + pad, int(ys.max()) + pad)


def work(sess: Session, a: np.ndarray, b: np.ndarray) -> None:
    """Every kind of action once (objects, prompts, propagation, brush, undo/redo)."""
    liver = sess.new_object("liver")
    sess.add_box(liver, 10, box_of(a[10]))
    sess.propagate(liver, z_range=(5, 14))
    spleen = sess.new_object("spleen")
    sess.add_point(spleen, 8, 24, 46)
    sess.add_point(spleen, 8, 24, 47, positive=False)
    sess.labels[2, 1:4, 1:6] = 9  # a brush stroke with a new label
    sess.labels[10, 20, 18] = 0  # an erasure on an anchor
    sess.sync_external_edits()
    sess.undo()
    sess.redo()
    sess.rename_object(liver, "Liver")
    sess.lock_object(spleen)
    sess.lock_object(spleen, False)
    sess.delete_object(9)
    sess.undo()


def assert_same_session(restored: Session, sess: Session) -> None:
    assert np.array_equal(restored.labels, sess.labels)
    assert restored.labels.dtype == sess.labels.dtype
    assert restored.objects == sess.objects  # names, locks, prompts, sources, confidences


@pytest.fixture
def image_file(tmp_path: Path, two_balls) -> Path:
    vol, _, _ = two_balls
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0).copy(), np.eye(4)), str(path))
    return path


def test_restore_gives_back_labels_objects_and_prompts(tmp_path, two_balls, fake_model):
    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    work(sess, a, b)
    sess.autosave.flush()
    restored = Session.restore(side, model=fake_model, volume=vol)
    assert_same_session(restored, sess)
    assert restored.objects[1].name == "Liver"
    assert restored.objects[2].prompts[8].points[1].positive is False
    assert not restored.can_undo  # undo history is not part of a restore
    # the restored session goes on autosaving into the same sidecar
    restored.add_box(1, 12, box_of(a[12]))
    restored.autosave.flush()
    again = Session.restore(side, model=fake_model, volume=vol)
    assert_same_session(again, restored)
    again.autosave.flush()
    ops = [r["op"] for r in read_journal(side).records]
    assert ops.count("restore") == 2 and ops[-2:] == ["add_box", "restore"]


def test_every_action_is_logged_with_its_arguments(tmp_path, two_balls, fake_model):
    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    work(sess, a, b)
    sess.autosave.flush()
    state = read_journal(side)
    ops = [(r["op"], r.get("args")) for r in state.actions]
    assert ops[0] == ("new_object", {"name": "liver", "label_id": None})
    assert ops[1] == ("add_box", {"obj": 1, "z": 10, "box": list(box_of(a[10]))})
    assert ops[2][0] == "propagate" and ops[2][1]["z_range"] == [5, 14]
    assert ops[4] == ("add_point", {"obj": 2, "z": 8, "y": 24, "x": 46, "positive": True})
    assert [op for op, _ in ops[6:]] == [
        "sync_external_edits",
        "undo",
        "redo",
        "rename_object",
        "lock_object",
        "lock_object",
        "delete_object",
        "undo",
    ]
    sync = state.actions[6]
    assert sync["result"] == [2, 10] and sync["edits"].startswith("edits/")
    assert state.records[0]["op"] == "open"
    assert all(r["seq"] == i for i, r in enumerate(state.records))


def test_sidecar_is_json_and_npz_without_pickle(tmp_path, two_balls, fake_model):
    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    work(sess, a, b)
    sess.autosave.flush()
    header = json.loads((side / "session.json").read_text())
    settings = header["settings"]
    assert settings["model"] == "fake" and settings["weights_sha256"] == "0" * 64
    assert settings["window"] == list(sess.window) and settings["device"] == "cpu"
    assert settings["params"]["min_score"] == sess.params.min_score
    assert settings["overwrite"] == "propagated" and "torch_threads" in settings
    assert header["image"]["shape"] == list(vol.shape)
    for line in (side / JOURNAL).read_text().splitlines():
        json.loads(line)
    npz = sorted(side.rglob("*.npz"))
    assert npz
    for path in npz:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                assert data[key].dtype != object
    assert not list(side.rglob("*.pkl")) and not list(side.rglob("*.tmp"))


def test_only_changed_slices_are_written_per_action(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.rename_object(obj, "x")
    sess.autosave.flush()
    box, rename = read_journal(side).actions[1:]
    assert box["labels"]["slices"] == [10]
    with np.load(side / box["labels"]["file"], allow_pickle=False) as data:
        assert data["slices"].shape == (1, *vol.shape[1:])
    assert "labels" not in rename
    assert set(rename["objects"]) == {"1"} and rename["objects"]["1"]["name"] == "x"


def test_torn_line_and_orphan_files_are_ignored(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.autosave.flush()
    expected = sess.labels.copy()
    objects = sess.objects
    # a crash while the next action was being written: its npz landed, its line is torn
    np.savez_compressed(side / "labels" / "000003.npz", z=np.array([11]), slices=vol[11:12] * 0)
    with open(side / JOURNAL, "ab") as f:
        f.write(b'{"seq":3,"op":"add_box","args":{"obj":1,"z":11')
    restored = restore_session(side, model=fake_model, volume=vol)
    assert np.array_equal(restored.labels, expected) and restored.objects == objects
    # resuming truncated the torn line and removed the orphan
    assert not (side / "labels" / "000003.npz").exists()
    restored.add_box(obj, 11, box_of(a[11]))
    restored.autosave.flush()
    assert [r["op"] for r in read_journal(side).records][-2:] == ["restore", "add_box"]


def test_a_record_whose_file_is_missing_ends_the_journal(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    before = sess.labels.copy()
    sess.add_box(obj, 11, box_of(a[11]))
    sess.autosave.flush()
    (side / "labels" / "000003.npz").unlink()
    state = read_journal(side)
    assert state.last_seq == 2
    assert np.array_equal(load_labels(side, state), before)


def test_full_snapshots_replace_old_deltas(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model)
    autosave_mod.start_autosave(sess, side, snapshot_every=3)
    obj = sess.new_object()
    for z in range(6, 15):
        sess.add_box(obj, z, box_of(a[z]))
        sess.autosave.flush()
    state = read_journal(side)
    files = sorted(p.name for p in (side / "labels").iterdir())
    assert "000000-full.npz" in files  # the initial labels stay (replay starts there)
    assert len(files) <= 1 + 1 + 3, files
    assert any(r["op"] == "snapshot" for r in state.records)
    assert np.array_equal(load_labels(side, state), sess.labels)


def test_sidecar_next_to_the_image_and_found_again(image_file, fake_model):
    volume = load_volume(image_file)
    assert find_autosave(image_file) is None
    sess = Session(volume, model=fake_model, autosave=True)
    obj = sess.new_object("a")
    sess.add_box(obj, 10, (8, 8, 30, 30))
    sess.autosave.flush()
    side = image_file.with_name("case.nii.gz.slicesam")
    assert sess.autosave.path == side and find_autosave(image_file) == side
    assert json.loads((side / "session.json").read_text())["image"]["path"] == str(image_file)
    restored = Session.restore(image_file, model=fake_model)  # the image path finds it
    assert_same_session(restored, sess)


def test_read_only_folder_goes_to_the_cache(image_file, fake_model, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(cache))
    monkeypatch.setattr(autosave_mod, "_writable_dir", lambda folder: False)
    volume = load_volume(image_file)
    sess = Session(volume, model=fake_model, autosave=True)
    sess.new_object("a")
    sess.autosave.flush()
    assert sess.autosave.path.parent == cache / "sessions"
    assert not image_file.with_name("case.nii.gz.slicesam").exists()
    assert find_autosave(image_file) == sess.autosave.path
    assert sidecar_for(image_file) == sess.autosave.path


def test_in_memory_volume_goes_to_the_cache_by_content(
    two_balls, fake_model, tmp_path, monkeypatch
):
    vol, _, _ = two_balls
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(tmp_path / "cache"))
    sess = Session(vol, model=fake_model, autosave=True)
    sess.new_object("a")
    sess.autosave.flush()
    assert find_autosave(vol) == sess.autosave.path
    assert sess.autosave.path.name.startswith("volume-")
    restored = restore_session(sess.autosave.path, model=fake_model, volume=vol)
    assert_same_session(restored, sess)


def test_a_new_session_keeps_the_old_sidecar_aside(tmp_path, two_balls, fake_model):
    vol, _, _ = two_balls
    side = tmp_path / "s.slicesam"
    first = Session(vol, model=fake_model, autosave=side)
    first.new_object("old")
    first.autosave.close()
    second = Session(vol, model=fake_model, autosave=side)
    second.autosave.close()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("s.slicesam-")]
    assert len(kept) == 1
    old = restore_session(kept[0], model=fake_model, volume=vol, resume=False)
    assert old.objects[1].name == "old"
    assert restore_session(side, model=fake_model, volume=vol).objects == {}


def test_restore_keeps_the_sessions_click_edits(tmp_path, two_balls, fake_model):
    from slicesam.engine.clicks import ClickEdits

    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    mine = ClickEdits(remove_tolerance=0.2, add_tolerance=0.0)
    sess = Session(vol, model=fake_model, autosave=side, click_edits=mine)
    work(sess, a, b)
    sess.autosave.flush()
    restored = Session.restore(side, model=fake_model, volume=vol)
    assert restored.click_edits == mine
    assert Session(vol, model=fake_model).click_edits == ClickEdits()  # the CT/None default


def test_a_sidecar_from_before_an_edit_existed_replays_without_it():
    """Click edits recorded before ``remnant_width`` existed restore with it off (the
    behaviour they were recorded with); recorded ones keep their value."""
    from dataclasses import asdict

    from slicesam.engine.autosave import click_edits_of
    from slicesam.engine.clicks import ClickEdits

    old = {k: v for k, v in asdict(ClickEdits()).items() if not k.startswith("remnant_")}
    assert click_edits_of({"click_edits": old}).remnant_width == 0
    assert click_edits_of({"click_edits": asdict(ClickEdits())}) == ClickEdits()
    assert click_edits_of({}) is None


def test_params_recorded_before_the_removal_extent_rule_replay_without_it():
    """Propagation params recorded before ``removal_within_extent`` existed restore with it
    off (a negative correction's re-walk could then pass the object's ends); recorded ones
    keep their value."""
    from dataclasses import asdict

    from slicesam.engine.autosave import params_of
    from slicesam.engine.propagation import PropagationParams

    old = {k: v for k, v in asdict(PropagationParams()).items() if k != "removal_within_extent"}
    assert params_of(old).removal_within_extent is False
    assert params_of(asdict(PropagationParams())) == PropagationParams()
    assert PropagationParams().removal_within_extent is True


def test_a_sidecar_with_the_fields_of_deleted_rules_restores_and_replays(
    tmp_path, two_balls, fake_model
):
    """A sidecar written before some rules were deleted records their propagation params,
    click edits and object and slice record fields (``last_edit``): restoring and replaying
    ignore them."""
    from dataclasses import replace

    from slicesam.replay import replay_session

    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    work(sess, a, b)
    sess.params = replace(sess.params, min_score=0.4)  # a record with settings
    sess.add_box(1, 12, box_of(a[12]))
    sess.autosave.close()
    deleted = {"bridge_gap": 2, "box_jitter_model_px": [0.0, 2.0, 4.0], "trim_brighter": 0.3}

    def aged(settings: dict) -> None:
        settings["params"].update(deleted)
        if "click_edits" in settings:
            settings["click_edits"]["far_area_limit"] = 4.0

    header = json.loads((side / "session.json").read_text())
    aged(header["settings"])
    (side / "session.json").write_text(json.dumps(header))
    lines, aged_records = [], 0
    for line in (side / JOURNAL).read_text().splitlines():
        rec = json.loads(line)
        if rec.get("settings"):
            aged(rec["settings"])
            aged_records += 1
        for doc in (rec.get("objects") or {}).values():
            if doc:  # an object field and a slice record field of a deleted rule
                doc["last_edit"] = {z: "remove" for z in doc["slices"]}
                for record in doc["slices"].values():
                    record["last_edit"] = "remove"
        lines.append(json.dumps(rec))
    (side / JOURNAL).write_text("\n".join(lines) + "\n")
    assert aged_records >= 2  # the opening record and the params change

    restored = Session.restore(side, model=fake_model, volume=vol)
    assert_same_session(restored, sess)
    assert restored.params == sess.params
    assert restored.click_edits == sess.click_edits
    restored.autosave.close()
    result = replay_session(side, model=fake_model, volume=vol)
    assert result.identical, str(result)
    assert result.session.params == sess.params


#: An object as sidecars wrote it before slice records: one dict keyed by slice per field.
OLD_OBJECT = {
    "name": "liver",
    "locked": True,
    "prompts": {"10": {"box": [8.0, 10.0, 28.0, 30.0], "points": [[20.0, 18.0, False]]}},
    "source": {"2": "user", "9": "interpolated", "10": "user", "11": "propagated"},
    "confidence": {"2": 1.0, "9": 0.5, "10": 0.93, "11": 0.81},
    "evidence": {
        "9": {"interpolated": 1.0},
        "10": {"iou": 0.93, "stability": 0.97},
        "11": {"iou": 0.85, "stability": 0.9, "agreement": 0.81},
    },
    "z_range": [5, 14],
    "overshoot": {"10": 1.0},
    "last_edit": {"10": "remove"},  # a field of a deleted rule
}


def test_an_object_in_the_form_before_slice_records_is_read():
    from slicesam.engine.journal import object_from_json, object_to_json
    from slicesam.prompts import Box, Point

    obj = object_from_json(3, OLD_OBJECT)
    assert (obj.label_id, obj.name, obj.locked, obj.z_range) == (3, "liver", True, (5, 14))
    assert obj.anchors == [2, 10]
    assert obj.source == {2: "user", 9: "interpolated", 10: "user", 11: "propagated"}
    assert obj.confidence == {2: 1.0, 9: 0.5, 10: 0.93, 11: 0.81}
    boxed = obj.slices[10]
    assert boxed.prompts.box == Box(10, 8.0, 10.0, 28.0, 30.0)
    assert boxed.prompts.points == [Point(10, 20.0, 18.0, False)]
    assert boxed.overshoot == 1.0 and boxed.evidence == {"iou": 0.93, "stability": 0.97}
    assert obj.slices[11].evidence == {"iou": 0.85, "stability": 0.9, "agreement": 0.81}
    painted = obj.slices[2]  # a brush stroke: no prompts, no evidence
    assert painted.prompts is None and painted.evidence is None and painted.overshoot is None
    assert obj.prompts == {10: boxed.prompts} and obj.overshoot == {10: 1.0}
    doc = object_to_json(obj)  # written back in the new form, read back the same
    assert set(doc) == {"name", "locked", "slices", "z_range", "propagated"}
    assert obj.propagated  # the old form had propagated slices
    assert doc["slices"]["10"]["prompts"] == OLD_OBJECT["prompts"]["10"]
    assert object_from_json(3, json.loads(json.dumps(doc))) == obj


def _old_form(doc: dict) -> dict:
    """An object's journal JSON as written before slice records."""
    out = {k: v for k, v in doc.items() if k != "slices"}
    for key in ("prompts", "source", "confidence", "evidence", "overshoot"):
        out[key] = {z: r[key] for z, r in doc["slices"].items() if key in r}
    return out


def test_a_sidecar_written_before_slice_records_restores_and_replays(
    tmp_path, two_balls, fake_model
):
    """A sidecar whose objects are in the form before slice records (every object of every
    record rewritten so) restores to the same session and replays identically."""
    from slicesam.replay import replay_session

    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    work(sess, a, b)
    sess.add_point(1, 12, 20, 18, positive=False)
    sess.autosave.close()
    lines, rewritten = [], 0
    for line in (side / JOURNAL).read_text().splitlines():
        rec = json.loads(line)
        for key, doc in (rec.get("objects") or {}).items():
            if doc:
                rec["objects"][key] = _old_form(doc)
                rewritten += 1
        lines.append(json.dumps(rec))
    (side / JOURNAL).write_text("\n".join(lines) + "\n")
    assert rewritten >= 5
    docs = [d for r in map(json.loads, lines) for d in (r.get("objects") or {}).values() if d]
    assert all("slices" not in d and "source" in d for d in docs)

    restored = Session.restore(side, model=fake_model, volume=vol, resume=False)
    assert_same_session(restored, sess)
    assert restored.objects[1].prompts and restored.objects[1].overshoot
    result = replay_session(side, model=fake_model, volume=vol)
    assert result.identical, str(result)


def test_restore_checks_the_image_and_warns_about_other_weights(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    sess.new_object()
    sess.autosave.flush()
    with pytest.raises(JournalError, match="content differs"):
        restore_session(side, model=fake_model, volume=vol[::-1].copy())
    with pytest.raises(JournalError, match="shape"):
        restore_session(side, model=fake_model, volume=vol[:5])
    with pytest.raises(JournalError, match="in-memory volume"):
        restore_session(side, model=fake_model)
    with pytest.raises(JournalError, match="no autosaved session"):
        restore_session(tmp_path / "nothing.nii.gz", model=fake_model)
    other = type(fake_model)()
    other.weights_sha256 = "1" * 64
    with pytest.warns(UserWarning, match="weights"):
        restore_session(side, model=other, volume=vol, resume=False)


def test_failed_and_cancelled_actions(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    obj = sess.new_object()
    with pytest.raises(Exception, match="outside"):
        sess.add_box(obj, 10, (500, 500, 600, 600))
    sess.add_box(obj, 10, box_of(a[10]))
    summary = sess.propagate(obj, cancel=lambda: True)
    assert summary.cancelled
    assert sess.undo()  # the box is undone (the cancelled propagation is no undo step)
    sess.autosave.flush()
    actions = read_journal(side).actions
    assert [r["op"] for r in actions] == ["new_object", "add_box", "propagate", "undo"]
    assert actions[2]["result"]["cancelled"] is True and "labels" not in actions[2]


def test_writer_failure_warns_and_the_session_goes_on(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    obj = sess.new_object()
    sess.autosave.flush()
    import shutil

    shutil.rmtree(side)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess.add_box(obj, 10, box_of(a[10]))
        sess.autosave.flush()
        sess.add_box(obj, 11, box_of(a[11]))
    assert sess.autosave.error is not None
    assert any("autosave" in str(w.message) for w in caught)
    assert sess.labels[11].any()


def test_a_click_stays_fast_with_autosave(tmp_path, two_balls, fake_model):
    vol, a, _ = two_balls
    plain = Session(vol, model=type(fake_model)())
    saved = Session(vol, model=type(fake_model)(), autosave=tmp_path / "s.slicesam")

    def clicks(sess: Session) -> float:
        obj = sess.new_object()
        sess.add_box(obj, 10, box_of(a[10]))  # embeds slice 10
        times = []
        for i in range(10):
            t0 = time.perf_counter()
            sess.add_point(obj, 10, 20, 18, positive=bool(i % 2))
            times.append(time.perf_counter() - t0)
            time.sleep(0.02)  # the user between two clicks
        return float(np.median(times))

    base, with_autosave = clicks(plain), clicks(saved)
    saved.autosave.flush()
    assert with_autosave - base < 0.02, (base, with_autosave)


def test_no_sidecar_inside_installed_packages(tmp_path):
    from slicesam.engine.autosave import sessions_cache_dir, sidecar_for

    image = tmp_path / "lib" / "site-packages" / "pkg" / "image.nii.gz"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")
    assert sidecar_for(image).parent == sessions_cache_dir()
    ordinary = tmp_path / "data" / "image.nii.gz"
    ordinary.parent.mkdir()
    assert sidecar_for(ordinary) == ordinary.with_name("image.nii.gz.slicesam")


def test_replay_with_another_encoder_variant_says_so(tmp_path, two_balls, fake_model):
    """The journal records the encoder variant; a replay with another one (e.g. bf16 against
    the float32 session) names both before its labels are compared."""
    import dataclasses

    from slicesam.replay import replay_session

    vol, a, _ = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_model, autosave=side)
    obj = sess.new_object()
    z = int(np.argmax(a.sum(axis=(1, 2))))
    sess.add_box(obj, z, box_of(a[z]))
    sess.autosave.flush()

    class OtherEncoder(type(fake_model)):
        @property
        def capabilities(self):
            return dataclasses.replace(super().capabilities, encoder="fast-bf16")

    same = replay_session(side, model=type(fake_model)(), volume=vol)
    assert same.identical and not any("encoder" in w for w in same.warnings)
    with pytest.warns(UserWarning, match="fast-bf16"):
        other = replay_session(side, model=OtherEncoder(), volume=vol)
    note = next(w for w in other.warnings if "encoder" in w)
    assert "fast-bf16" in note and fake_model.capabilities.encoder in note
