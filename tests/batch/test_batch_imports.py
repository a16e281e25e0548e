"""dask is a dependency of the batch verbs only: ``import slicesam``, the CLI (its parser with
the batch verbs included) and the batch package's plain modules never import it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "statement",
    [
        "import slicesam",
        "import slicesam; slicesam.load_volume; slicesam.Session",
        "import slicesam.cli; slicesam.cli.build_parser()",
        "import slicesam.batch; slicesam.batch.read_jobs; slicesam.batch.summary_table",
        "import slicesam.batch.segment, slicesam.batch.fingerprint, slicesam.batch.settings",
    ],
)
def test_no_dask_on_import(statement):
    code = (
        f"{statement}\nimport sys\n"
        "print(*(m in sys.modules for m in ('dask', 'distributed', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"], (statement, out.stdout)


def test_the_runner_imports_dask_when_used():
    code = (
        "import slicesam.batch.runner, sys; assert 'distributed' not in sys.modules\n"
        "import slicesam.batch.worker; assert 'distributed' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
