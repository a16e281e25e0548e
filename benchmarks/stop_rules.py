"""Where should a walk stop? P2's stop decisions replayed offline, exactly, in seconds.

A walk's masks do not depend on its stop rules: each slice's box comes from the previous
slice's mask, whatever the rules would have said about it. So one P2 walk per object with
every stop rule off (only "the mask vanished" ends it) records everything a stop rule can
see, and any set of rules can then be replayed on the recording: the P2 Dice it gives is the
Dice the bench would measure (``evaluate --check`` compares it object by object).

Three things are measured on the recordings:

- **the hand rules** of :func:`slicesam.engine.propagation.stop_rules`, with each modality's
  thresholds (:func:`~slicesam.engine.propagation.default_params`);
- **the best stop**: per object and direction, the stop that gives the highest 3D Dice (an
  upper bound no rule can pass with these masks);
- **other stop criteria**, each fitted and selected on the *training* objects only, then
  measured on the validation and reported ones: the intensity-fall rule relative to the
  seed's contrast with its surroundings, and a learned presence classifier (logistic
  regression on the walk's evidence: the model's score, area changes, overlap, intensity
  change and contrast relative to the seed's; "present" = at least half the mask on the
  object) with its threshold chosen on the training P2.

    PYTHONPATH=src python benchmarks/stop_rules.py record --objects training
    PYTHONPATH=src python benchmarks/stop_rules.py record --objects validation
    PYTHONPATH=src python benchmarks/stop_rules.py record --objects reported
    PYTHONPATH=src python benchmarks/stop_rules.py evaluate \\
        [--check reported=benchmarks/results/current/reported/bench.json]

``record`` writes ``OUT/walks_<split>.json`` (OUT: ``benchmarks/results/stop_rules``),
``evaluate`` writes ``OUT/stop_rules.json`` and ``OUT/stop_rules.md``. Needs scikit-learn.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

SPLITS = ("training", "validation", "reported")
RINGS = (2, 4, 8)  # slice pixels around the mask whose mean intensity is its surroundings
OUT = Path("benchmarks/results/stop_rules")

State = dict  # one candidate slice of a walk, with what the walk knew when it got there
Rule = Callable[[State], bool]  # True: the walk stops at this slice


# -- recording ---------------------------------------------------------------------------------
def record(data: str, split: str, out: Path, datasets: list[str] | None) -> None:
    """One P2 walk per object with every stop rule off but "vanished"; per slice: area,
    model score, mean intensity inside and around the mask, overlap with the previous slice
    of the walk, and pixels on the object."""
    from scipy import ndimage

    from slicesam.bench.datasets import discover, load_dataset
    from slicesam.bench.protocols import Runner
    from slicesam.bench.simulate import largest_slice, tight_box, z_extent
    from slicesam.engine.contexts import unit_slice
    from slicesam.engine.propagation import default_params
    from slicesam.metrics import dice
    from slicesam.models.registry import load_model

    model = load_model("litemedsam", device="cpu")
    result: dict = {}
    for folder in discover(data, datasets):
        ds = load_dataset(folder, split=split)
        if not ds.objects:
            continue
        modality = ds.image.modality
        unstopped = dataclasses.replace(
            default_params(modality),
            min_score=0.0,
            max_growth=1e9,
            min_shrink=0.0,
            min_overlap=0.0,
            min_rel_area=0.0,
            max_intensity_drop=1e9,
            max_intensity_rise=0.0,
        )
        run = Runner(ds, model, {"params": unstopped})
        objects = {}
        for label in ds.objects:
            gt = run.gt(label)
            seed = largest_slice(gt)
            sess = run.session()
            obj = sess.new_object()
            sess.add_box(obj, seed, tight_box(gt[seed]))
            sess.propagate(obj)
            mask = sess.labels == obj
            records = sess.objects[obj].slices
            steps = {}
            for z in sorted(records):
                image = unit_slice(sess, z)
                m = mask[z]
                evidence = records[z].evidence or {}
                step = {
                    "area": int(m.sum()),
                    "score": float(evidence.get("iou", 1.0)),
                    "intensity": float(image[m].mean()) if m.any() else 0.0,
                    "inter": int((m & gt[z]).sum()),
                }
                for r in RINGS:
                    ring = ndimage.binary_dilation(m, iterations=r) & ~m
                    step[f"ring{r}"] = float(image[ring].mean()) if ring.any() else None
                if z != seed:
                    prev = z - 1 if z > seed else z + 1
                    step["overlap_prev"] = float(dice(m, mask[prev]))
                steps[str(z)] = step
            z0, z1 = z_extent(gt)
            objects[str(label)] = {
                "name": ds.names.get(label, str(label)),
                "seed": int(seed),
                "gt_total": int(gt.sum()),
                "gt_z": [int(z0), int(z1)],
                "steps": steps,
            }
            print(f"{ds.name} {objects[str(label)]['name']}: {len(steps)} slices", flush=True)
        result[ds.name] = {"modality": modality, "objects": objects}
        out.mkdir(parents=True, exist_ok=True)
        (out / f"walks_{split}.json").write_text(json.dumps(result))


# -- replay ------------------------------------------------------------------------------------
def states(obj: dict, direction: int) -> Iterator[tuple[int, State]]:
    """The walk's candidate slices from the seed in ``direction``, each with the walk's
    history as the engine's :class:`~slicesam.engine.propagation.Candidate` holds it."""
    steps = {int(k): v for k, v in obj["steps"].items()}
    seed = steps[obj["seed"]]
    prev_area = max_area = seed["area"]
    lowest = seed["intensity"]
    z = obj["seed"] + direction
    while z in steps:
        step = steps[z]
        yield z, dict(step, prev_area=prev_area, max_area=max_area, lowest=lowest, seed=seed)
        if step["area"]:
            lowest = min(lowest, step["intensity"])
            prev_area = step["area"]
            max_area = max(max_area, step["area"])
        z += direction


def kept(obj: dict, rule: Rule) -> list[int]:
    """The slices a walk with ``rule`` writes, seed included."""
    zs = [obj["seed"]]
    for direction in (-1, 1):
        for z, state in states(obj, direction):
            if rule(state):  # the recording already ends where the mask vanished
                break
            zs.append(z)
    return zs


def dice3d(obj: dict, zs: list[int]) -> float:
    inter = sum(obj["steps"][str(z)]["inter"] for z in zs)
    area = sum(obj["steps"][str(z)]["area"] for z in zs)
    return 2 * inter / (area + obj["gt_total"]) if area + obj["gt_total"] else 1.0


def p2(walks: dict, rule_for: Callable[[str], Rule]) -> dict[str, dict[str, float]]:
    """dataset -> object -> P2 3D Dice with the rule ``rule_for(modality)``."""
    return {
        name: {lab: dice3d(o, kept(o, rule_for(d["modality"]))) for lab, o in d["objects"].items()}
        for name, d in walks.items()
        if d["objects"]
    }


def best_stop(walks: dict) -> dict[str, dict[str, float]]:
    """dataset -> object -> the highest P2 Dice any stop (per direction) reaches."""
    result = {}
    for name, d in walks.items():
        if not d["objects"]:
            continue
        per = {}
        for lab, o in d["objects"].items():
            down = [z for z, _ in states(o, -1)]
            up = [z for z, _ in states(o, 1)]
            per[lab] = max(
                dice3d(o, [o["seed"], *down[:i], *up[:j]])
                for i in range(len(down) + 1)
                for j in range(len(up) + 1)
            )
        result[name] = per
    return result


def engine_rules(modality: str, *, fall: bool = True) -> Rule:
    """The engine's own stop rules (:func:`slicesam.engine.propagation.stop_rules`) with the
    modality's thresholds, on a recorded state; ``fall=False`` leaves out the intensity fall.
    The recording keeps no masks, so the overlap rule reads the recorded overlap."""
    from types import SimpleNamespace

    from slicesam.engine.propagation import (
        IntensityFall,
        OverlapBelow,
        default_params,
        stop_rules,
    )

    rules = [
        r for r in stop_rules(default_params(modality)) if fall or not isinstance(r, IntensityFall)
    ]

    def rule(s: State) -> bool:
        candidate = SimpleNamespace(
            area=s["area"],
            score=s["score"],
            prev_area=s["prev_area"],
            max_area=s["max_area"],
            intensity=s["intensity"],
            start_intensity=s["seed"]["intensity"],
            lowest_intensity=s["lowest"],
        )
        for r in rules:
            if isinstance(r, OverlapBelow):
                if s.get("overlap_prev", 1.0) < r.min_overlap:
                    return True
            elif r.check(candidate) is not None:
                return True
        return False

    return rule


def contrast(s: State, ring: int) -> tuple[float, float]:
    """(seed's, this slice's) mean intensity inside the mask minus around it."""
    seed = s["seed"]
    bg0 = seed[f"ring{ring}"] if seed[f"ring{ring}"] is not None else seed["intensity"]
    bg = s[f"ring{ring}"] if s[f"ring{ring}"] is not None else s["intensity"]
    return seed["intensity"] - bg0, s["intensity"] - bg


def relative_fall(f: float, ring: int) -> Callable[[str], Rule]:
    """The hand rules, with the intensity fall replaced by: the mask's contrast with its
    surroundings fell below ``f`` times the seed's (a bright seed; otherwise the fall rule)."""

    def make(modality: str) -> Rule:
        from slicesam.engine.propagation import default_params

        p = default_params(modality)
        no_fall = engine_rules(modality, fall=False)

        def rule(s: State) -> bool:
            if no_fall(s):
                return True
            c0, cz = contrast(s, ring)
            if c0 > 0:
                return cz < f * c0
            return s["seed"]["intensity"] - s["intensity"] > p.max_intensity_drop

        return rule

    return make


def features(s: State, ring: int, normalised: bool) -> list[float]:
    """A candidate slice's evidence for the presence classifier."""
    c0, cz = contrast(s, ring)
    fall = s["seed"]["intensity"] - s["intensity"]
    rise = s["intensity"] - s["lowest"]
    base = [
        s["score"],
        math.log(max(s["area"], 1) / max(s["prev_area"], 1)),
        math.log(max(s["area"], 1) / max(s["max_area"], 1)),
        s.get("overlap_prev", 1.0),
    ]
    if normalised:  # intensities in units of the seed's contrast: no window, no modality
        scale = max(abs(c0), 0.02)
        return [*base, *np.clip([fall / scale, rise / scale, cz / scale * np.sign(c0)], -5, 5)]
    return [*base, fall, rise, float(np.clip(cz / c0, -2, 2)) if c0 > 0.02 else 1.0]


def fit_presence(walks: dict, ring: int, normalised: bool):
    """A logistic regression of "at least half the mask is on the object" on
    :func:`features`, each object weighted equally within its dataset and each dataset
    equally."""
    from sklearn.linear_model import LogisticRegression

    x, y, w = [], [], []
    walks = {name: d for name, d in walks.items() if d["objects"]}
    for d in walks.values():
        for o in d["objects"].values():
            rows = [s for direction in (-1, 1) for _, s in states(o, direction)]
            for s in rows:
                x.append(features(s, ring, normalised))
                y.append(int(s["inter"] >= 0.5 * max(s["area"], 1)))
                w.append(1.0 / (len(d["objects"]) * len(rows) * len(walks)))
    w = np.array(w) * len(w)
    return LogisticRegression(max_iter=5000).fit(np.array(x), np.array(y), sample_weight=w)


def presence(clf, ring: int, normalised: bool, threshold: float) -> Callable[[str], Rule]:
    def rule(s: State) -> bool:
        return clf.predict_proba([features(s, ring, normalised)])[0, 1] < threshold

    return lambda modality: rule


def mean4(per: dict[str, dict[str, float]]) -> float:
    """Mean over the datasets (equal weight) of their object means."""
    return float(np.mean([np.mean(list(v.values())) for v in per.values() if v]))


def evaluate(out: Path, checks: list[str]) -> None:
    walks = {s: json.loads((out / f"walks_{s}.json").read_text()) for s in SPLITS}
    rows: list[dict] = []

    def add(method: str, selected: str, rule_for: Callable[[str], Rule] | None) -> None:
        per = {s: (p2(w, rule_for) if rule_for else best_stop(w)) for s, w in walks.items()}
        rows.append(
            {
                "method": method,
                "selected": selected,
                **{s: mean4(per[s]) for s in SPLITS},
                "per_dataset": {
                    s: {k: float(np.mean(list(v.values()))) for k, v in per[s].items() if v}
                    for s in SPLITS
                },
            }
        )
        print(f"{method}: " + ", ".join(f"{s} {rows[-1][s]:.4f}" for s in SPLITS), flush=True)

    add("hand rules (today's defaults)", "-", engine_rules)
    for check in checks:
        split, path = check.split("=", 1)
        bench = json.loads(Path(path).read_text())
        got = p2(walks[split], engine_rules)
        diffs = [
            abs(got[name][lab] - bench["datasets"][name]["objects"][lab]["P2"]["dice"])
            for name in got
            for lab in got[name]
        ]
        print(f"check {split}: {len(diffs)} objects, largest |replay - bench| {max(diffs):.2g}")
    add("best stop per object (upper bound)", "-", None)
    # criteria fitted on training objects: the variant with the best training P2 is the one
    # a change would adopt; the others are listed to show how much the choice matters
    candidates = []
    for ring in RINGS:
        for f in (0.2, 0.3, 0.4, 0.5):
            rule_for = relative_fall(f, ring)
            candidates.append((f"contrast fall f={f}, ring {ring}", rule_for))
    _add_selected(add, walks, "intensity fall relative to the seed's contrast", candidates)
    candidates = []
    for ring in RINGS:
        for normalised in (False, True):
            clf = fit_presence(walks["training"], ring, normalised)
            best = max(
                (mean4(p2(walks["training"], presence(clf, ring, normalised, t))), t)
                for t in np.arange(0.05, 0.6, 0.05)
            )
            kind = "normalised" if normalised else "raw"
            candidates.append(
                (
                    f"presence, ring {ring}, {kind} intensities, p < {best[1]:.2f}",
                    presence(clf, ring, normalised, best[1]),
                )
            )
    _add_selected(add, walks, "learned presence", candidates)
    (out / "stop_rules.json").write_text(json.dumps(rows, indent=1))
    (out / "stop_rules.md").write_text(markdown(rows))
    print(markdown(rows))


def _add_selected(add, walks: dict, family: str, candidates: list) -> None:
    """Measure every candidate; mark the one with the best training P2 as the selection."""
    scored = sorted(candidates, key=lambda c: -mean4(p2(walks["training"], c[1])))
    for i, (name, rule_for) in enumerate(scored):
        add(f"{family}: {name}", "training P2" if i == 0 else "not selected", rule_for)


def markdown(rows: list[dict]) -> str:
    names = list(rows[0]["per_dataset"]["validation"])
    lines = [
        "| stop criterion | selected by | training | validation | reported | "
        + " | ".join(f"validation {n}" for n in names)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(names),
    ]
    for r in rows:
        per = r["per_dataset"]["validation"]
        lines.append(
            f"| {r['method']} | {r['selected']} | {r['training']:.3f} | {r['validation']:.3f} | "
            f"{r['reported']:.3f} | " + " | ".join(f"{per[n]:.3f}" for n in names) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    rec = sub.add_parser("record", help="record unstopped P2 walks of one split")
    rec.add_argument("--data", default="../shared/datasets")
    rec.add_argument("--objects", choices=SPLITS, required=True)
    rec.add_argument("--datasets", default=None, help="comma-separated dataset names")
    rec.add_argument("--out", type=Path, default=OUT)
    ev = sub.add_parser("evaluate", help="replay stop criteria on the recorded walks")
    ev.add_argument("--out", type=Path, default=OUT)
    ev.add_argument("--check", action="append", default=[], help="SPLIT=bench.json")
    args = parser.parse_args()
    if args.verb == "record":
        names = args.datasets.split(",") if args.datasets else None
        record(args.data, args.objects, args.out, names)
    else:
        evaluate(args.out, args.check)


if __name__ == "__main__":
    main()
