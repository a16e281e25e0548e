"""Importing the package (and its public names' modules) must not import torch or napari."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "statement",
    [
        "import slicesam",
        "import slicesam; slicesam.load_volume; slicesam.save_labels; slicesam.Session",
        "import slicesam.cli",
        "import slicesam.engine",
    ],
)
def test_no_torch_on_import(statement):
    code = f"{statement}\nimport sys\nprint('torch' in sys.modules, 'napari' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "import slicesam",
        "import slicesam; slicesam.load_volume; slicesam.save_labels; slicesam.Session",
        "import slicesam.engine",
    ],
)
def test_no_zarr_dask_or_ome_zarr_on_import(statement):
    """zarr, dask and ome-zarr are imported when a zarr store or lazy volume is used, never
    by importing the package or its public names."""
    code = (
        f"{statement}\nimport sys\n"
        "print([m for m in ('zarr', 'dask', 'ome_zarr', 'numcodecs') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_public_api():
    import slicesam

    for name in ("load_volume", "save_labels", "Session", "Volume", "dice", "MODELS"):
        assert hasattr(slicesam, name)
    with pytest.raises(AttributeError):
        slicesam.does_not_exist  # noqa: B018


def _imports(tree, package: str) -> list[tuple[list[str], str | None]]:
    """Per import statement not under ``if TYPE_CHECKING``: the absolute names it imports and,
    for ``from a import b``, the module ``a`` it imports from (when ``a.b`` is no module)."""
    import ast

    hidden = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found: list[tuple[list[str], str | None]] = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.append(([alias.name for alias in node.names], None))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.append(([f"{base}.{alias.name}" for alias in node.names], base))
    return found


def _import_graph() -> dict[str, set[str]]:
    """slicesam module -> the slicesam modules it imports (anywhere in it, lazily too)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src"
    files = {}
    for path in (root / "slicesam").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = set()
        for names, source in _imports(tree, package):
            modules = [n for n in names if n in files] or ([source] if source else [])
            targets.update(m for m in modules if m in files and m not in (name, "slicesam"))
        graph[name] = targets
    return graph


def test_no_import_cycles():
    """Modules import downward only (DESIGN.md): no cycle, lazy imports included (the
    package's own lazy ``__init__`` aside)."""
    graph = _import_graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_reads_the_sessions_private_fields():
    """Only the session's own modules touch its ``_fields`` and ``_methods``: persistence
    (journal, autosave, replay) and the GUI use its public API."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "slicesam"
    own = [root / "engine" / "session.py", root / "engine" / "annotation.py"]
    private = set()
    for path in own:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_"):
                private.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and node.attr.startswith("_")
            ):
                private.add(node.attr)
    private = {name for name in private if not name.startswith("__")}
    assert {"_objects", "_history", "_shadow", "_get"} <= private
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in own:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                found.append(f"{path.relative_to(root)}:{node.lineno}: .{node.attr}")
    assert not found, "\n".join(found)


def test_the_engine_names_no_organ_dataset_or_benchmark_figure():
    """``engine/`` says what a parameter prevents, not which structure or score it was tuned
    on (that history is in the git log and docs/ablation.md)."""
    import re
    from pathlib import Path

    words = (
        "liver|kidney|spleen|aorta|pancreas|stomach|femur|bone|vein|artery|vessel|tumou?r|"
        "bladder|muscle|lung|heart|arabidopsis|embryo|totalseg|stardist|itksnap|P[1-5]\\b|"
        "validation objects|reported objects"
    )
    pattern = re.compile(rf"\b({words})", re.IGNORECASE)
    root = Path(__file__).resolve().parents[1] / "src" / "slicesam" / "engine"
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(root.glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
