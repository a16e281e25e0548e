"""Weights downloads on request only: cache folder, atomic fetch, hashes, offline errors."""

from __future__ import annotations

import hashlib
import io
import sys
import urllib.error
from pathlib import Path

import pytest

from slicesam.errors import CheckpointError, ModelError
from slicesam.models import download
from slicesam.models.download import (
    cache_path,
    cached_checkpoint,
    default_cache_dir,
    fetch,
    recorded_sha256,
    resolve_checkpoint,
)
from slicesam.models.registry import MODELS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def payload(tmp_path):
    """(file:// URL, bytes, sha256) of a 3.5 MB file (several read chunks)."""
    data = bytes(range(256)) * (14 * 1024)
    path = tmp_path / "served.bin"
    path.write_bytes(data)
    return path.as_uri(), data, hashlib.sha256(data).hexdigest()


def test_cache_dir_env_and_platform_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SLICESAM_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_dir() == tmp_path / "xdg" / "slicesam" / "models"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert default_cache_dir() == Path.home() / ".cache" / "slicesam" / "models"
    assert cache_path("medsam", tmp_path) == tmp_path / "medsam_vit_b.pth"


def test_fetch_from_a_file_url_records_the_hash(cache, payload):
    url, data, sha = payload
    calls = []
    path = fetch("mobilesam", progress=lambda done, total: calls.append((done, total)), url=url)
    assert path == cache / "mobile_sam.pt" and path.read_bytes() == data
    assert recorded_sha256(path) == sha  # no published hash: recorded on first fetch
    assert (cache / "mobile_sam.pt.sha256").read_text() == f"{sha}  mobile_sam.pt\n"
    assert calls[0] == (0, len(data)) and calls[-1] == (len(data), len(data))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) > 3
    assert [p.name for p in cache.iterdir()] != [] and not list(cache.glob("*.part"))
    assert MODELS["mobilesam"].weights_present()
    # Already there and verified: nothing is downloaded again.
    assert fetch("mobilesam", url="file:///nonexistent/never/read") == path
    assert cached_checkpoint("mobilesam") == (path, sha)


def test_a_published_hash_is_enforced_and_nothing_is_left_behind(cache, payload, monkeypatch):
    url, _, _ = payload
    with pytest.raises(CheckpointError, match="fails the sha256 check for sam_vit_b.*nothing"):
        fetch("sam_vit_b", url=url)
    assert not cache_path("sam_vit_b").exists()
    assert list(cache.iterdir()) == []  # no partial or temporary file
    # With the published hash equal to the file's, the same download is accepted.
    from dataclasses import replace

    from slicesam.models.weights import WEIGHTS

    sha = hashlib.sha256(Path(url[len("file://") :]).read_bytes()).hexdigest()
    monkeypatch.setitem(WEIGHTS, "sam_vit_b", replace(WEIGHTS["sam_vit_b"], sha256=sha))
    assert fetch("sam_vit_b", url=url).is_file()


def test_offline_error_says_the_url_and_where_to_put_the_file(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(CheckpointError) as info:
        fetch("medsam")
    text = str(info.value)
    assert MODELS["medsam"].weights.url in text
    assert str(cache / "medsam_vit_b.pth") in text and "Name or service not known" in text
    assert list(cache.iterdir()) == []


class _Broken(io.BytesIO):
    headers = {"Content-Length": "1000"}

    def read(self, n=-1):
        if self.tell() >= 200:
            raise OSError("connection reset")
        return super().read(100)


def test_interrupted_download_leaves_no_file(cache, monkeypatch):
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: _Broken(b"x" * 1000))
    with pytest.raises(CheckpointError, match="broke off after 200 bytes"):
        fetch("mobilesam")
    assert list(cache.iterdir()) == []

    class Short(io.BytesIO):  # the server closes early: 300 of 1000 bytes
        headers = {"Content-Length": "1000"}

        def read(self, n=-1):
            return super().read(100) if self.tell() < 300 else b""

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: Short(b"x" * 1000))
    with pytest.raises(CheckpointError, match="incomplete"):
        fetch("mobilesam")
    assert list(cache.iterdir()) == []


def test_missing_weights_error_gives_the_fetch_command(cache):
    with pytest.raises(CheckpointError) as info:
        cached_checkpoint("medsam")
    text = str(info.value)
    assert "slicesam models fetch medsam" in text and str(cache / "medsam_vit_b.pth") in text
    with pytest.raises(CheckpointError, match="slicesam models fetch sam_vit_h"):
        resolve_checkpoint("sam_vit_h", None)
    with pytest.raises(ModelError, match="no weights file"):
        cached_checkpoint("grabcut")
    with pytest.raises(ModelError, match="'nope' has no weights file to fetch"):
        fetch("nope")


def test_first_use_hash_is_recorded_then_enforced(cache):
    cache.mkdir()
    placed = cache / "medsam_vit_b.pth"
    placed.write_bytes(b"weights v1")
    path, sha = cached_checkpoint("medsam")  # put there by hand: recorded on first load
    assert path == placed and recorded_sha256(placed) == sha
    assert cached_checkpoint("medsam") == (placed, sha)
    placed.write_bytes(b"weights v2, corrupted")
    with pytest.raises(CheckpointError, match="fails its sha256 check.*--force"):
        cached_checkpoint("medsam")


def test_a_given_checkpoint_is_hashed_not_checked(tmp_path, cache):
    own = tmp_path / "finetuned.pth"
    own.write_bytes(b"abc")
    path, sha = resolve_checkpoint("medsam", own)
    assert path == own and sha == hashlib.sha256(b"abc").hexdigest()
    assert not (tmp_path / "finetuned.pth.sha256").exists()
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint("medsam", tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        resolve_checkpoint("medsam", tmp_path)
