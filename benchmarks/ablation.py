"""Ablation of the rules beyond the plain walk (issue 30): each rule off, P2 and P3 @5 on the
reported and the validation objects of every open dataset.

The plain walk is: the next slice's box is the previous mask's bounding box plus a margin, and
a walk stops on the model's score, the area (growth, shrink, vanishing) or the overlap with
the previous mask, or at the user's z range; a correction re-walks from its slice until the
result no longer changes. Everything else is a *rule*, listed in :data:`VARIANTS` with the
one change that turns it off (a parameter set to its "off" value, or a session step made a
no-op). A rule is kept only when turning it off lowers the validation mean of P2 or of
P3 @5 (equal weight per dataset) by more than 0.005.

The rules a greedy elimination (:func:`greedy`) deleted are gone from the code and from
:data:`VARIANTS`; their runs in ``benchmarks/results/ablation`` stay as the record, measured
against the defaults of their day, while "baseline" here means today's defaults.

One Runner per dataset keeps the embeddings across variants (the signature does not include
the propagation settings), so after the first variant only the decoder runs.

    PYTHONPATH=src python benchmarks/ablation.py --data ../shared/datasets \\
        --out benchmarks/results/ablation [--variants baseline,margin_rel] [--clicks 5]

Results go to ``OUT/ablation.json`` after every variant (a rerun skips the variants already
there); ``--table`` prints the table from it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from slicesam.bench.datasets import discover, load_dataset
from slicesam.bench.protocols import Runner, p3_correct
from slicesam.engine import clicks, walks
from slicesam.engine.propagation import PropagationParams, default_params
from slicesam.models.registry import load_model

SPLITS = ("reported", "validation")
#: A rule stays when turning it off lowers a validation mean by more than this.
KEEP_ABOVE = 0.005


@dataclasses.dataclass
class Variant:
    """One rule turned off: ``params``/``edits`` map the modality's defaults to the variant's;
    ``patch`` is a context that makes a session step a no-op."""

    what: str
    params: Callable[[PropagationParams], PropagationParams] = lambda p: p
    edits: Callable[[clicks.ClickEdits], clicks.ClickEdits] = lambda e: e
    patch: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


def off(**fields) -> Callable[[PropagationParams], PropagationParams]:
    return lambda p: dataclasses.replace(p, **fields)


def edits_off(**fields) -> Callable[[clicks.ClickEdits], clicks.ClickEdits]:
    return lambda e: dataclasses.replace(e, **fields)


def no_op(
    owner: object, name: str, value: Callable
) -> Callable[[], contextlib.AbstractContextManager]:
    """A context in which ``owner.name`` (a module's function, a class's method) is ``value``."""

    @contextlib.contextmanager
    def patched() -> Iterator[None]:
        old = getattr(owner, name)
        setattr(owner, name, value)
        try:
            yield
        finally:
            setattr(owner, name, old)

    return patched


VARIANTS: dict[str, Variant] = {
    "baseline": Variant("today's defaults"),
    # -- propagation: next-slice boxes
    "margin_rel": Variant("CT/MR margin capped at a fifth of the box", off(margin_rel=0.0)),
    "microscopy_margin": Variant(
        "microscopy margin 6 model px (3 elsewhere)", off(margin_model_px=3.0)
    ),
    "small_box_inset": Variant(
        "small structures boxed from pixel centres (CT)", off(small_box_inset=0.0)
    ),
    # -- propagation: what a mask may take in
    "overshoot_erosion": Variant(
        "masks eroded by the user box's overshoot", off(max_overshoot_erosion_px=0)
    ),
    "max_small_growth": Variant("small structures' growth capped (CT)", off(max_small_growth=0.0)),
    # -- propagation: stop rules beyond score / area / overlap
    "intensity_drop": Variant("stop on a fall in mean intensity", off(max_intensity_drop=1.0)),
    "intensity_rise": Variant(
        "stop on a rise in mean intensity (MR, microscopy)", off(max_intensity_rise=0.0)
    ),
    # -- corrections
    "keep_surer": Variant("a re-walk keeps surer masks", off(keep_surer_by=-1.0)),
    "rewalk_reference": Variant(
        "re-walks compare with the whole object (microscopy)", off(rewalk_reference=False)
    ),
    "removal_within_extent": Variant(
        "a negative correction's re-walk stays within the object",
        off(removal_within_extent=False),
    ),
    "rewalk_gaps": Variant(
        "re-walk gaps between anchors are interpolated",
        patch=no_op(walks, "empty_gaps", lambda *a: set()),
    ),
    # -- clicks on a box-only model
    "intensity_edits": Variant(
        "clicks follow intensities (CT, MR)",
        edits=edits_off(remove_tolerance=0.0, add_tolerance=0.0),
    ),
    "add_max_fraction": Variant(
        "a positive click may add 3x the mask",
        edits=lambda e: dataclasses.replace(e, add_max_fraction=e.max_fraction),
    ),
    "add_max_neighbour": Variant(
        "... or 2.5x the neighbour's area", edits=edits_off(add_max_neighbour=0.0)
    ),
    "empty_grow": Variant(
        "a first click on an empty slice grows by intensity", edits=edits_off(empty_grow_below=0.0)
    ),
    "remnants": Variant(
        "a negative click takes the thin remnants it leaves", edits=edits_off(remnant_width=0)
    ),
}


def combined(names: list[str]) -> Variant:
    """All of ``names`` turned off at once."""
    parts = [VARIANTS[n] for n in names]

    def params(p: PropagationParams) -> PropagationParams:
        for part in parts:
            p = part.params(p)
        return p

    def edits(e: clicks.ClickEdits) -> clicks.ClickEdits:
        for part in parts:
            e = part.edits(e)
        return e

    @contextlib.contextmanager
    def patch() -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for part in parts:
                stack.enter_context(part.patch())
            yield

    return Variant(" + ".join(names), params, edits, patch)


def run_variant(runners: dict, name: str, clicks_n: int) -> dict:
    """P2 and P3 @``clicks_n`` for every dataset and split with one variant."""
    variant = VARIANTS[name]
    out: dict = {}
    with variant.patch():
        for (ds_name, split), (run, objects) in runners.items():
            modality = run.dataset.image.modality
            run.session_kwargs = {
                "params": variant.params(default_params(modality)),
                "click_edits": variant.edits(clicks.default_click_edits(modality)),
            }
            per = {}
            for label in objects:
                curve = p3_correct(run, label, max_clicks=clicks_n)["dice_curve"]
                per[str(label)] = [round(float(v), 5) for v in curve]
            out.setdefault(ds_name, {})[split] = per
    return out


def means(entry: dict, clicks_n: int) -> dict:
    """split -> (P2, P3@n) means with equal weight per dataset, and per dataset."""
    table: dict = {}
    for split in SPLITS:
        rows = {
            ds: (
                float(np.mean([c[0] for c in per[split].values()])),
                float(np.mean([c[clicks_n] for c in per[split].values()])),
            )
            for ds, per in entry.items()
            if per.get(split)
        }
        p2 = float(np.mean([v[0] for v in rows.values()])) if rows else float("nan")
        p3 = float(np.mean([v[1] for v in rows.values()])) if rows else float("nan")
        table[split] = {"P2": p2, "P3": p3, "datasets": rows}
    return table


def print_table(results: dict, clicks_n: int, doc_what: dict | None = None) -> None:
    doc_what = doc_what or {}
    base = means(results["baseline"], clicks_n)
    print(
        f"| rule off | reported ΔP2 | ΔP3@{clicks_n} | validation ΔP2 | ΔP3@{clicks_n} | verdict |"
    )
    print("|---|---|---|---|---|---|")
    for name, entry in results.items():
        m = means(entry, clicks_n)
        d = {s: (m[s]["P2"] - base[s]["P2"], m[s]["P3"] - base[s]["P3"]) for s in SPLITS}
        if name == "baseline":
            cells = [f"{base[s][k]:.4f}" for s in SPLITS for k in ("P2", "P3")]
            print(f"| baseline (absolute) | {' | '.join(cells)} | |")
            continue
        keep = min(d["validation"]) < -KEEP_ABOVE
        cells = [f"{v:+.4f}" for s in SPLITS for v in d[s]]
        what = doc_what.get(name) or (VARIANTS[name].what if name in VARIANTS else "")
        print(f"| {name}: {what} | {' | '.join(cells)} | {'keep' if keep else 'delete'} |")


def _runners(args) -> dict:
    model = load_model("litemedsam", device="cpu")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    runners: dict = {}
    for folder in discover(args.data, args.datasets.split(",") if args.datasets else None):
        run = None
        for split in SPLITS:
            ds = load_dataset(folder, split=split)
            if not ds.objects:
                continue
            run = run or Runner(ds, model)
            runners[(ds.name, split)] = (run, ds.objects)
    return runners


def greedy(args, doc: dict, path: Path) -> int:
    """Backward elimination: delete the candidate rules one by one, most harmless first (by
    their single-rule validation deltas), keeping each deletion only while the validation
    means of P2 and P3 stay within ``KEEP_ABOVE`` of today's (the baseline): rules that are
    harmless alone but not together are found."""
    candidates = args.greedy.split(",")
    base = means(doc["runs"]["baseline"], args.clicks)

    def delta(entry: dict) -> tuple[float, float]:
        m = means(entry, args.clicks)["validation"]
        return m["P2"] - base["validation"]["P2"], m["P3"] - base["validation"]["P3"]

    candidates.sort(key=lambda n: -sum(delta(doc["runs"][n])) if n in doc["runs"] else 0.0)
    runners = _runners(args)
    deleted: list[str] = []
    log = doc.setdefault("greedy", [])
    for cand in candidates:
        trial = [*deleted, cand]
        name = "greedy:" + ",".join(trial)
        if name not in doc["runs"]:
            VARIANTS[name] = combined(trial)
            t0 = time.perf_counter()
            doc["runs"][name] = run_variant(runners, name, args.clicks)
            doc.setdefault("what", {})[name] = f"{len(trial)} rules off (+ {cand})"
            doc.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
        d2, d3 = delta(doc["runs"][name])
        accepted = d2 >= -KEEP_ABOVE and d3 >= -KEEP_ABOVE
        if accepted:
            deleted = trial
        log.append({"candidate": cand, "dP2": d2, "dP3": d3, "deleted": accepted})
        path.write_text(json.dumps(doc, indent=1))
        print(
            f"{cand}: validation dP2 {d2:+.4f} dP3 {d3:+.4f} -> "
            f"{'deleted' if accepted else 'kept'}",
            file=sys.stderr,
            flush=True,
        )
    print("deleted:", ",".join(deleted))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/datasets")
    parser.add_argument("--out", default="benchmarks/results/ablation")
    parser.add_argument("--variants", default="all")
    parser.add_argument("--datasets", default=None)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--table", action="store_true", help="print the table and exit")
    parser.add_argument("--combine", default=None, help="comma list: turn these off together")
    parser.add_argument("--combine-name", default="combined", help="the combination's name")
    parser.add_argument("--greedy", default=None, help="comma list: backward elimination")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ablation.json"
    doc = json.loads(path.read_text()) if path.is_file() else {"clicks": args.clicks, "runs": {}}
    if args.table:
        print_table(doc["runs"], doc["clicks"], doc.get("what"))
        return 0
    if args.greedy:
        return greedy(args, doc, path)
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    if args.combine:
        parts = args.combine.split(",")
        VARIANTS[args.combine_name] = combined(parts)
        names = [args.combine_name]
    runners = _runners(args)
    for name in names:
        if name in doc["runs"]:
            continue
        t0 = time.perf_counter()
        doc["runs"][name] = run_variant(runners, name, args.clicks)
        doc.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
        doc.setdefault("what", {})[name] = VARIANTS[name].what
        path.write_text(json.dumps(doc, indent=1))
        m = means(doc["runs"][name], args.clicks)
        print(
            f"{name}: "
            + "; ".join(f"{s} P2 {m[s]['P2']:.4f} P3 {m[s]['P3']:.4f}" for s in SPLITS)
            + f" ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    print_table(doc["runs"], doc["clicks"], doc.get("what"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
