"""Accuracy benchmark of ../shared/BENCHMARK.md (protocols P1-P4 plus reference baselines).

Run it with ``slicesam bench --data DIR --out DIR``. Nothing here is imported by the engine;
the package sits beside the CLI.
"""
