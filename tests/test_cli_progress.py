"""What ``slicesam`` shows while it works: tqdm progress on stderr (``--quiet`` silences it),
``--version``, the CPU-fallback note as one line, and ``--checkpoint``'s help."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import slicesam.models.registry as registry
from slicesam.cli import build_parser, main
from slicesam.cli_output import CPU_FALLBACK_LINE, CliProgress

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def ball_ct(tmp_path):
    """A CT-like NIfTI with a 200 HU ball (which the fake model segments) and its prompts."""
    from fakes import ball
    from slicesam.io import load_volume

    shape = (24, 40, 48)
    data = np.where(ball(shape, (12, 20, 24), 8), 200, -1000).astype(np.int16)
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), np.diag([-1.0, -1.0, 2.0, 1.0])), path)
    vol = load_volume(path)
    z = vol.shape[0] // 2
    ys, xs = np.nonzero(vol.data[z] > 0)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    prompts = tmp_path / "prompts.json"
    objects = [
        {"id": 1, "name": "ball", "boxes": [{"z": z, "box": box}]},
        {"id": 2, "points": [{"z": z, "y": float(ys.mean()), "x": float(xs.mean())}]},
    ]
    prompts.write_text(json.dumps({"objects": objects}))
    return path, prompts


@pytest.fixture
def fake_model(monkeypatch):
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))


def run_segment(capsys, ball_ct, tmp_path, *extra):
    image, prompts = ball_ct
    out = tmp_path / "labels.nii.gz"
    code = main(["segment", str(image), "--prompts", str(prompts), "--out", str(out),
                 "--device", "cpu", *extra])  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_segment_shows_progress_on_stderr_and_results_on_stdout(
    tmp_path, capsys, ball_ct, fake_model
):
    code, out, err, written = run_segment(capsys, ball_ct, tmp_path)
    assert code == 0, err
    assert written.is_file()
    # stdout: only the result, parseable
    assert out.splitlines() == [out.strip()] and out.startswith(f"wrote {written} (2 objects, ")
    # stderr: the model loading, then one bar per object that ends full
    lines = err.splitlines()
    assert any(line.startswith("loading model litemedsam") for line in lines), err
    assert any(line.startswith("model fake on cpu") for line in lines), err
    for desc in ("ball (1/2)", "object 2 (2/2)"):
        bars = [line for line in lines if line.startswith(desc)]
        assert bars, err
        assert "100%" in bars[-1] and "slice" in bars[-1], bars
    assert "\r" not in err  # stderr is not a terminal here: one line per update


def test_quiet_silences_the_progress_but_not_the_result(tmp_path, capsys, ball_ct, fake_model):
    code, out, err, written = run_segment(capsys, ball_ct, tmp_path, "--quiet")
    assert code == 0 and written.is_file()
    assert err == ""
    assert out.startswith(f"wrote {written}")


def test_quiet_keeps_errors(tmp_path, capsys, ball_ct, fake_model):
    image, _ = ball_ct
    code = main(["segment", str(image), "--prompts", str(tmp_path / "nope.json"),
                 "--out", str(tmp_path / "o.nii.gz"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("slicesam: error: prompts file not found")


def test_demo_has_quiet_too():
    args = build_parser().parse_args(["demo", "--quiet"])
    assert args.quiet is True


def test_progress_on_a_terminal_redraws_in_place_and_off_it_writes_lines():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, tty in ((Terminal(), True), (io.StringIO(), False)):
        progress = CliProgress(stream=stream)
        assert progress.tty is tty
        with progress.bar("liver (1/1)") as callback:
            for done in range(1, 6):
                callback(done, 5)
        text = stream.getvalue()
        assert "liver (1/1)" in text and "5/5" in text
        assert ("\r" in text) is tty
        if not tty:  # a log file reads top to bottom, one status per line, no repeats
            lines = text.splitlines()
            assert len(lines) == len(set(lines)) and lines[-1].startswith("liver (1/1): 100%")


def test_quiet_progress_prints_nothing():
    stream = io.StringIO()
    progress = CliProgress(quiet=True, stream=stream)
    progress.note("hello")
    with progress.waiting("loading model"):
        pass
    with progress.bar("x") as callback:
        assert callback is None
    assert stream.getvalue() == ""


def test_version(capsys, monkeypatch):
    from importlib import metadata

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("slicesam ") and len(out.split()) == 2

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == "slicesam unknown"


def test_version_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "slicesam", "--version"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("slicesam ")


def test_checkpoint_help_names_the_cache():
    seg = build_parser()._subparsers._group_actions[0].choices["segment"]
    help_text = " ".join(seg.format_help().split())
    assert "required for SAM" not in help_text
    assert "the cached file from `slicesam models fetch NAME`" in help_text


def test_cpu_fallback_is_one_clean_line(tmp_path, ball_ct):
    """In a real process (Python's own warning filters): the note is one line with no source
    line under it; another warning still shows its content."""
    image, prompts = ball_ct
    script = textwrap.dedent(
        f"""
        import sys, warnings
        sys.path.insert(0, {str(TESTS)!r})
        from fakes import FakeModel
        import slicesam.models.registry as registry
        from slicesam.models.device import CPU_FALLBACK_NOTE, CpuFallbackWarning

        def load_model(name, checkpoint=None, device="auto"):
            warnings.warn(CPU_FALLBACK_NOTE, CpuFallbackWarning, stacklevel=2)
            warnings.warn("a third-party note", RuntimeWarning)
            return FakeModel(box_only=True)

        registry.load_model = load_model
        from slicesam.cli import main
        sys.exit(main(["segment", {str(image)!r}, "--prompts", {str(prompts)!r},
                       "--out", {str(tmp_path / "o.nii.gz")!r}, "--quiet"]))
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": ""}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines.count(CPU_FALLBACK_LINE) == 1, proc.stderr
    assert "warnings.warn" not in proc.stderr and "CpuFallbackWarning" not in proc.stderr
    assert any("RuntimeWarning: a third-party note" in line for line in lines), proc.stderr
