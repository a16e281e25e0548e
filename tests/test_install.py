"""Both install kinds give napari the plugin: ``pip install .`` and ``pip install -e .``.

napari (npe2) reads the manifest through the entry point ``slicesam:napari.yaml``, i.e. from
the folder ``slicesam`` is imported from; ``napari.yaml`` and ``sample_volumes/`` live at the
repository root and ``hatch_build.py`` puts them into the package (see its docstring).

- :func:`test_napari_finds_the_installed_plugin`: the install this suite runs against (the
  regular one under ``make test``; ``.ci/run`` runs it again after ``pip install -e .``).
- :func:`test_sdist_wheel_and_editable_wheel` (slow): builds the sdist, then the wheel and the
  editable wheel from the unpacked sdist, and resolves the manifest from each as npe2 does, in a
  child process whose ``sys.path`` is what the install would give.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tarfile
import types
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import slicesam
from slicesam.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
DIST = "napari-slicesam"


# -- the installed plugin ----------------------------------------------------------------------
def _why_not_installed() -> str | None:
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return f"{DIST} is not installed (make install, or pip install -e .)"
    installed = Path(str(dist.locate_file("slicesam/__init__.py")))
    imported = Path(slicesam.__file__)
    if installed.is_file() and installed.resolve() != imported.resolve():
        return f"slicesam is imported from {imported.parent}, not from the installed {installed}"
    return None


def test_napari_finds_the_installed_plugin():
    """npe2 discovers the plugin through its entry point; its manifest is the repository's;
    the sample data and the widget resolve (no display needed)."""
    reason = _why_not_installed()
    if reason:
        pytest.skip(reason)
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager()  # a fresh one: discovery as napari does it at start
    pm.discover()
    manifest = pm.get_manifest(DIST)
    pm.activate(DIST)  # registers its commands
    assert manifest.contributions == PluginManifest.from_file(ROOT / "napari.yaml").contributions, (
        "the installed manifest is not the repository's napari.yaml (reinstall)"
    )
    keys = {s.key for s in manifest.contributions.sample_data}
    assert keys == set(SAMPLES)
    ct = next(s for s in manifest.contributions.sample_data if s.key == "ct_abdomen")
    [(data, kwargs, kind)] = pm.commands.get(ct.command)()
    assert kind == "image" and data.shape == (30, 101, 122) and kwargs["scale"] == (3.0, 3.0, 3.0)
    widget = pm.commands.get(manifest.contributions.widgets[0].command)
    # napari passes the viewer only to a widget class whose __init__ takes `napari_viewer`.
    assert inspect.isclass(widget), widget
    assert "napari_viewer" in inspect.signature(widget.__init__).parameters


# -- the build hook ----------------------------------------------------------------------------
@pytest.fixture
def hook(monkeypatch) -> types.ModuleType:
    """``hatch_build.py`` as a module (with a stand-in for hatchling when it is not here)."""
    if importlib.util.find_spec("hatchling") is None:
        names = ["hatchling", "hatchling.builders", "hatchling.builders.hooks"]
        names += ["hatchling.builders.hooks.plugin", "hatchling.builders.hooks.plugin.interface"]
        for name in names:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        sys.modules[names[-1]].BuildHookInterface = object
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_editable_link_shows_the_root_manifest(tmp_path, hook, monkeypatch):
    (tmp_path / "src" / "slicesam").mkdir(parents=True)
    (tmp_path / "napari.yaml").write_text("name: one\n")
    link = hook.link_manifest(tmp_path)
    assert link == tmp_path / "src" / "slicesam" / "napari.yaml"
    assert link.is_symlink() and os.readlink(link) == "../../napari.yaml"
    (tmp_path / "napari.yaml").write_text("name: two\n")
    assert link.read_text() == "name: two\n", "an edit shows without reinstalling"
    assert hook.link_manifest(tmp_path) == link  # again: nothing to do

    def no_symlinks(self, target):
        raise OSError("symlinks need developer mode")

    link.unlink()
    link.write_text("name: stale copy\n")
    monkeypatch.setattr(Path, "symlink_to", no_symlinks)
    hook.link_manifest(tmp_path)
    assert not link.is_symlink() and link.read_text() == "name: two\n", "copied, refreshed"


# -- building: sdist, wheel and editable wheel -------------------------------------------------
RESOLVE = """
import json, sys
from pathlib import Path
from npe2 import PluginManifest

site = Path(sys.argv[1]).resolve()
def where(result):
    return result.distribution and Path(str(result.distribution.locate_file(""))).resolve()

found = [r for r in PluginManifest.discover() if where(r) == site]
assert found, "no napari.manifest entry point in " + str(site)
manifest, _, error = found[0]
import slicesam
from slicesam.samples import get_sample

image = get_sample("ct_abdomen").image
print(json.dumps({"error": repr(error) if error else None, "name": manifest and manifest.name,
                  "slicesam": slicesam.__file__, "sample": str(image), "exists": image.is_file()}))
"""


def _resolve(site: Path, path: list[Path]) -> dict:
    """Discover the plugin installed in ``site`` as npe2 does, with ``path`` first on sys.path
    (what the install puts there), in a child process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    out = subprocess.run(
        [sys.executable, "-c", RESOLVE, str(site)],
        capture_output=True,
        text=True,
        env=env,
        cwd=site.parent,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _build(source: Path, kind: str, out: Path, stack) -> Path:
    """Build ``kind`` ("sdist", "wheel", "editable") of ``source`` as pip does: in an isolated
    environment with the backend's requirements, or in this interpreter when hatchling is
    installed here; skips when neither can be had."""
    build = pytest.importorskip("build", reason="the `build` package (an npe2 dependency)")
    from build.env import DefaultIsolatedEnv
    from pyproject_hooks import quiet_subprocess_runner

    if importlib.util.find_spec("hatchling") is not None:
        builder = build.ProjectBuilder(source, runner=quiet_subprocess_runner)
        missing = builder.check_dependencies(kind)
        if missing:
            pytest.skip(f"missing build requirements for {kind}: {missing}")
        return Path(builder.build(kind, out))
    env = stack.enter_context(DefaultIsolatedEnv())
    builder = build.ProjectBuilder.from_isolated_env(env, source, runner=quiet_subprocess_runner)
    try:
        env.install(builder.build_system_requires)
        env.install(builder.get_requires_for_build(kind))
    except Exception as exc:  # e.g. no package index to get hatchling from
        pytest.skip(f"cannot install the build backend {builder.build_system_requires}: {exc}")
    return Path(builder.build(kind, out))


@pytest.mark.slow
def test_sdist_wheel_and_editable_wheel(tmp_path):
    from contextlib import ExitStack

    sample_files = {
        f"slicesam/sample_volumes/{folder}/{name}"
        for folder, image, labels in SAMPLES.values()
        for name in (image, labels, "meta.json")
    }
    manifest = (ROOT / "napari.yaml").read_bytes()
    with ExitStack() as stack:
        sdist = _build(ROOT, "sdist", tmp_path / "dist", stack)
        with tarfile.open(sdist) as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
            assert {"napari.yaml", "hatch_build.py", "sample_volumes/NOTICE"} <= names
            assert "src/slicesam/napari.yaml" not in names, "the editable link is never packaged"
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp_path, **safe)
        source = tmp_path / sdist.name.removesuffix(".tar.gz")

        # The wheel (pip install .): manifest and samples copied into the package.
        wheel = _build(source, "wheel", tmp_path / "dist", stack)
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            assert len(names) == len(set(names)), "no file twice"
            assert zf.read("slicesam/napari.yaml") == manifest
            assert sample_files <= set(names)
            zf.extractall(tmp_path / "site-wheel")
        found = _resolve(tmp_path / "site-wheel", [tmp_path / "site-wheel"])
        assert found["error"] is None and found["name"] == DIST, found
        assert found["slicesam"].startswith(str(tmp_path / "site-wheel"))
        assert found["exists"] and found["sample"].startswith(str(tmp_path / "site-wheel")), found

        # The editable wheel (pip install -e .): a .pth to src/, nothing of the package itself;
        # the build linked src/slicesam/napari.yaml to the root file.
        editable = _build(source, "editable", tmp_path / "dist", stack)
        with zipfile.ZipFile(editable) as zf:
            names = zf.namelist()
            assert not [n for n in names if n.startswith("slicesam/")], names
            [pth] = [n for n in names if n.endswith(".pth")]
            path = [Path(p) for p in zf.read(pth).decode().split("\n") if p.strip()]
            zf.extractall(tmp_path / "site-editable")
        assert path == [source / "src"]
        assert (source / "src" / "slicesam" / "napari.yaml").read_bytes() == manifest
        found = _resolve(tmp_path / "site-editable", [tmp_path / "site-editable", *path])
        assert found["error"] is None and found["name"] == DIST, found
        assert found["slicesam"] == str(source / "src" / "slicesam" / "__init__.py")
        assert found["exists"] and found["sample"].startswith(str(source / "sample_volumes"))
