"""``slicesam models`` (listing with weights presence) and ``slicesam models fetch NAME``."""

from __future__ import annotations

import hashlib
import io

import pytest

from slicesam.cli import main
from slicesam.cli_models import ProgressBar
from slicesam.models.registry import MODELS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(folder))
    return folder


def _rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}


def test_models_lists_every_backend_with_its_weights(cache, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    for name in MODELS:
        assert name in rows
    assert "present" in rows["litemedsam"] and "[default]" in rows["litemedsam"]
    assert "missing: slicesam models fetch medsam" in rows["medsam"]
    assert "none needed" in rows["grabcut"] and "none needed" in rows["random_walker"]
    assert str(cache) in out


def test_fetch_downloads_with_a_progress_bar_then_lists_present(cache, tmp_path, capsys):
    data = b"\x01" * (3 * 1024 * 1024 + 17)
    served = tmp_path / "mobile_sam_mirror.pt"
    served.write_bytes(data)
    assert main(["models", "fetch", "mobilesam", "--url", served.as_uri()]) == 0
    captured = capsys.readouterr()
    target = cache / "mobile_sam.pt"
    assert target.read_bytes() == data
    assert str(target) in captured.out and "recorded" in captured.out
    assert "[##############################] 100%" in captured.err
    assert f"fetching mobilesam from {served.as_uri()}" in captured.err
    sha = hashlib.sha256(data).hexdigest()
    assert (cache / "mobile_sam.pt.sha256").read_text().startswith(sha)
    assert main(["models"]) == 0
    assert "present" in _rows(capsys.readouterr().out)["mobilesam"]


def test_fetch_into_another_folder_quietly(tmp_path, cache, capsys):
    served = tmp_path / "w.pth"
    served.write_bytes(b"abc")
    other = tmp_path / "elsewhere"
    args = ["models", "fetch", "medsam", "--url", served.as_uri(), "--cache-dir", str(other)]
    assert main([*args, "--quiet"]) == 0
    assert (other / "medsam_vit_b.pth").read_bytes() == b"abc"
    assert "%" not in capsys.readouterr().err
    assert not cache.exists()


def test_fetch_errors_are_one_line(tmp_path, cache, capsys):
    assert main(["models", "fetch", "nope"]) == 2
    assert capsys.readouterr().err.startswith("slicesam: error: unknown model 'nope'")
    missing = (tmp_path / "missing.pth").as_uri()
    assert main(["models", "fetch", "sam_vit_b", "--url", missing, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "slicesam: error: cannot download sam_vit_b" in err and "Traceback" not in err
    assert str(cache / "sam_vit_b_01ec64.pth") in err
    assert main(["models", "fetch", "grabcut"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_progress_bar_without_a_known_size():
    stream = io.StringIO()
    bar = ProgressBar("f.pt", stream=stream, interval=0.0)
    bar(0, None)
    bar(5 * 1024 * 1024, None)
    bar.close()
    assert "f.pt 5.0 MB" in stream.getvalue() and stream.getvalue().endswith("\n")
