"""``slicesam batch`` and ``slicesam embed`` on the command line: the summary on stdout, the
dashboard link and dask's progress bar on stderr, exit status 1 when a volume failed, and bad
input refused in one line before any cluster starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from batch_fakes import LOADS, fake_loader

import slicesam.models.registry as registry
from slicesam.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def fake_registry(monkeypatch):
    """`--model litemedsam` loads the fake on the (in-process) workers."""
    monkeypatch.setattr(registry, "load_model", lambda name, **k: fake_loader(name, None, "cpu"))


def test_batch_on_a_scheduler_by_address(cluster, jobs_dir, tmp_path, capsys, fake_registry):
    folder, _ = jobs_dir
    out = tmp_path / "labels"
    args = ["batch", str(folder), "--out", str(out), "--scheduler", cluster.scheduler_address]
    assert main(args) == 1, "a volume failed"
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["volume", "objects", "slices", "seconds", "status"]
    assert [line.split()[0] for line in lines[1:5]] == ["a", "b", "broken", "c"]
    assert lines[3].split()[4:6] == ["failed:", "could"]
    assert lines[-1].startswith("4 volumes: 3 done, 1 failed in ")
    assert "dask dashboard: http" in captured.err
    assert "2 workers: model litemedsam on cpu (fake)" in captured.err
    assert "100% Completed" in captured.err
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a.nii.gz", "b.nii.gz"]
    assert len(LOADS) == 2

    (folder / "broken.nii.gz").unlink()
    (folder / "broken.prompts.json").unlink()
    assert main([*args, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith("3 volumes: 3 skipped")
    assert captured.err == "", "quiet, and no cluster was needed"


def test_embed_on_a_scheduler(cluster, jobs_dir, tmp_path, capsys, fake_registry):
    folder, _ = jobs_dir
    (folder / "broken.nii.gz").unlink()
    cache = tmp_path / "cache"
    args = ["embed", str(folder), "--cache-dir", str(cache), "--scheduler"]
    assert main([*args, cluster.scheduler_address]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["volume", "slices", "embedded", "seconds", "status"]
    assert out[1].split()[:3] == ["a", "16", "16"] and out[1].split()[-1] == "done"
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "sam_vit_q"], "unknown model 'sam_vit_q'"),
        (["--checkpoint", "/no/such.pth"], "checkpoint not found"),
        (["--window", "1,2,3"], "--window expects LO,HI"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_options_stop_before_any_cluster(jobs_dir, tmp_path, capsys, extra, message):
    folder, _ = jobs_dir
    out = tmp_path / "labels"
    assert main(["batch", str(folder), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slicesam: error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_jobs_stop_before_any_cluster(jobs_dir, tmp_path, capsys):
    folder, _ = jobs_dir
    assert main(["batch", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "jobs not found" in capsys.readouterr().err
    (folder / "jobs.csv").write_text("image,prompts\nmissing.nii.gz,a.prompts.json\n")
    assert main(["batch", str(folder / "jobs.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "jobs.csv line 2: image not found" in capsys.readouterr().err
    assert main(["batch", str(folder), "--out", str(folder)]) == 2
    assert "would replace its image" in capsys.readouterr().err
    assert main(["embed", str(folder), "--model", "grabcut"]) == 2
    assert "grabcut computes no image embeddings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["batch", str(folder), "--out", "o", "--workers", "2", "--scheduler", "tcp://x:1"])


def test_the_default_local_cluster_of_processes(jobs_dir, tmp_path):
    """The real thing, as a user runs it: `slicesam batch` starting a LocalCluster of two
    worker processes (GrabCut: a registered model that needs no weights)."""
    folder, _ = jobs_dir
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "slicesam", "batch", str(folder), "--out", str(tmp_path / "o")]
    done = subprocess.run(
        [*cmd, "--workers", "2", "--model", "grabcut"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "2 workers: model grabcut on cpu" in done.stderr
    assert "1 thread each" in done.stderr
    assert done.stdout.splitlines()[-1].startswith("4 volumes: 3 done, 1 failed")
    assert (tmp_path / "o" / "c.tif").is_file()


def test_the_readme_commands_parse():
    import re
    import shlex

    from slicesam.cli import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Command line\n") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [
        line.split("#")[0]
        for line in block.splitlines()
        if line.startswith(("slicesam batch", "slicesam embed"))
    ]
    assert len(commands) == 2
    for line in commands:
        argv = shlex.split(line)
        assert argv[0] == "slicesam"
        args = build_parser().parse_args(argv[1:])
        assert args.command in ("batch", "embed")
