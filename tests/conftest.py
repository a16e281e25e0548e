"""Shared fixtures: the fake model of :mod:`fakes` and synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeModel, ball


@pytest.fixture
def two_balls():
    """(volume uint8 (20, 48, 64), ball A mask, ball B mask): two bright balls on black."""
    shape = (20, 48, 64)
    a = ball(shape, (10, 20, 18), 7)
    b = ball(shape, (8, 24, 46), 5)
    vol = np.where(a | b, 200, 20).astype(np.uint8)
    return vol, a, b


@pytest.fixture
def fake_model():
    return FakeModel()


@pytest.fixture
def fake_box_model():
    return FakeModel(box_only=True)


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path_factory, monkeypatch):
    """Autosave sidecars, embeddings and model downloads of a test go to its own folder, never
    the user's cache (a sidecar left there would make the next widget offer a restore)."""
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
