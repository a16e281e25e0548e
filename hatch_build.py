"""Hatch build hook: puts the napari manifest and the sample volumes into the package.

``napari.yaml`` and ``sample_volumes/`` live at the repository root (one copy each); napari
(npe2) reads the manifest through the entry point ``napari-slicesam = "slicesam:napari.yaml"``,
i.e. from the folder the package ``slicesam`` is imported from, and ``slicesam.samples`` looks
for ``sample_volumes/`` next to the package or in the source checkout.

- Wheels (``pip install .``, also from the sdist): both are copied into the package, as
  ``slicesam/napari.yaml`` and ``slicesam/sample_volumes/`` (``force_include``).
- Editable installs (``pip install -e .``): ``slicesam`` is imported from ``src/slicesam``, so
  this hook links ``src/slicesam/napari.yaml`` to the root file (a copy where symlinks are not
  allowed, refreshed by every editable install), which pyproject.toml keeps out of wheels and
  sdists. The sample volumes need nothing: ``slicesam.samples`` finds them in the checkout.
  Nothing is copied into site-packages: a ``slicesam/`` folder there without ``__init__.py``
  would not be the package Python imports (``src/slicesam`` is), so npe2 would not look in it.

(hatchling's ``force-include`` table in pyproject.toml would copy into editable wheels too, which
is why the copies are made here, for regular wheels only.)
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MANIFEST = "napari.yaml"
SAMPLES = "sample_volumes"
PACKAGE = "src/slicesam"
#: Where an editable install needs the manifest: relative to the root, and the link's target.
EDITABLE_MANIFEST = f"{PACKAGE}/{MANIFEST}"
LINK_TARGET = f"../../{MANIFEST}"


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        if version == "editable":
            link_manifest(Path(self.root))
        else:
            build_data["force_include"][MANIFEST] = f"slicesam/{MANIFEST}"
            build_data["force_include"][SAMPLES] = f"slicesam/{SAMPLES}"


def link_manifest(root: Path) -> Path:
    """Make ``src/slicesam/napari.yaml`` show the root ``napari.yaml``: a relative symlink, or
    a copy where symlinks cannot be made (Windows without developer mode)."""
    source, link = root / MANIFEST, root / EDITABLE_MANIFEST
    if link.is_symlink() and os.readlink(link) == LINK_TARGET:
        return link
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(LINK_TARGET)
    except OSError:
        shutil.copyfile(source, link)
    if not filecmp.cmp(source, link, shallow=False):  # pragma: no cover - defensive
        raise RuntimeError(f"{link} does not show {source}")
    return link
