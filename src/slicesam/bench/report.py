"""Benchmark outputs: per-dataset summaries, the Markdown tables and the Dice-vs-clicks plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .protocols import P3_REPORT_AT, P4_REPORT_AT


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _rank(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a), dtype=float)
    ranks[order] = np.arange(len(a), dtype=float)
    for value in np.unique(a):  # average ranks of ties
        tied = a == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def confidence_agreement(rows: list[dict]) -> dict:
    """How well per-slice confidence predicts per-slice Dice (Pearson r, Spearman rho, and the
    Dice of the 20 % least confident slices against the rest)."""
    if len(rows) < 3:
        return {"n": len(rows), "pearson": float("nan"), "spearman": float("nan")}
    conf = np.array([r["confidence"] for r in rows], float)
    dsc = np.array([r["dice"] for r in rows], float)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        if a.std() == 0 or b.std() == 0:
            return float("nan")
        return float(np.corrcoef(a, b)[0, 1])

    k = max(1, len(rows) // 5)
    order = np.argsort(conf, kind="stable")
    return {
        "n": len(rows),
        "pearson": corr(conf, dsc),
        "spearman": corr(_rank(conf), _rank(dsc)),
        "dice_weakest_20pct": float(dsc[order[:k]].mean()),
        "dice_rest": float(dsc[order[k:]].mean()),
    }


def _mean_at(per_object: list[dict[str, float]]) -> dict[str, float]:
    """Mean per click count, over the click counts every object reports (runs with fewer
    clicks than a reported count leave it out)."""
    keys = set.intersection(*(set(d) for d in per_object))
    return {k: _mean([d[k] for d in per_object]) for k in sorted(keys, key=int)}


#: P5 (BENCHMARK.md): one box, then up to this many corrective clicks chosen as in P3.
P5_CLICKS = 5


def p5_from_p3(curve: list[float]) -> dict | None:
    """P5 from a P3 Dice curve (the same prompts: P2's box, then P3's clicks): the final
    Dice after :data:`P5_CLICKS` clicks, the area under the Dice-vs-interaction curve over
    interactions 0..5 (trapezoidal, divided by 5 so that 1 is perfect) and the largest drop
    of Dice caused by one click (0 when no click lowered it). None for a shorter curve."""
    if len(curve) <= P5_CLICKS:
        return None
    points = np.asarray(curve[: P5_CLICKS + 1], float)
    auc = float(((points[1:] + points[:-1]) / 2).sum() / P5_CLICKS)
    drop = float(max(0.0, (points[:-1] - points[1:]).max()))
    return {"final": float(points[-1]), "auc": auc, "max_drop": drop}


def summarize(objects: dict[str, dict]) -> dict:
    """Mean over objects of every reported figure of one dataset."""
    out: dict = {"n_objects": len(objects)}
    per = list(objects.values())
    for key in ("P1", "P2", "medsam3d", "oracle", "oracle_extent"):
        vals = [o[key]["dice"] for o in per if key in o]
        if vals:
            out[key] = _mean(vals)
    p3 = [o["P3"] for o in per if "P3" in o]
    if p3:
        out["P3"] = {
            "dice_at": _mean_at([r["dice_at"] for r in p3]),
            "dice_curve": np.mean([r["dice_curve"] for r in p3], axis=0).tolist(),
            "noc85": _mean([r["noc85"] for r in p3]),
            "noc90": _mean([r["noc90"] for r in p3]),
        }
        p5 = [f for f in (p5_from_p3(r["dice_curve"]) for r in p3) if f is not None]
        if p5:
            out["P5"] = {
                "final": _mean([f["final"] for f in p5]),
                "auc": _mean([f["auc"] for f in p5]),
                "max_drop": _mean([f["max_drop"] for f in p5]),
                "worst_drop": float(max(f["max_drop"] for f in p5)),
            }
    p4 = [o["P4"] for o in per if "P4" in o]
    if p4:
        out["P4"] = {
            "iou_at": _mean_at([r["iou_at"] for r in p4]),
            "iou_curve": np.mean([r["iou_curve"] for r in p4], axis=0).tolist(),
            "noc85": _mean([r["noc85"] for r in p4]),
            "noc90": _mean([r["noc90"] for r in p4]),
        }
    for key in ("P1", "P2"):
        rows = [row for o in per if key in o for row in o[key]["slices"]]
        if rows:
            out[f"{key}_confidence"] = confidence_agreement(rows)
    return out


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    """The Markdown tables of a benchmark result (as written to BENCHMARKS.md)."""
    lines = [
        "| dataset | objects | P1 ours | MedSAM 3D inf. (P1) | oracle | oracle (extent boxes) | P2"
        " | P3 @0 | @1 | @3 | @5 | @10 | NoC85 | NoC90 | P4 NoC85 | NoC90 | IoU@1 | @3 | @5 |",
        "|---" * 19 + "|",
    ]
    for name, ds in result["datasets"].items():
        s = ds["summary"]
        p3 = s.get("P3", {})
        p4 = s.get("P4", {})
        at3 = p3.get("dice_at", {})
        at4 = p4.get("iou_at", {})
        cells = [
            name,
            str(s["n_objects"]),
            _f(s.get("P1")),
            _f(s.get("medsam3d")),
            _f(s.get("oracle")),
            _f(s.get("oracle_extent")),
            _f(s.get("P2")),
            *[_f(at3.get(str(k))) for k in P3_REPORT_AT],
            _f(p3.get("noc85"), 1),
            _f(p3.get("noc90"), 1),
            _f(p4.get("noc85"), 1),
            _f(p4.get("noc90"), 1),
            *[_f(at4.get(str(k))) for k in P4_REPORT_AT],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    p5_rows = [(name, ds["summary"]["P5"]) for name, ds in result["datasets"].items()
               if "P5" in ds["summary"]]  # fmt: skip
    if p5_rows:
        lines += [
            "",
            "P5 (box, then 5 clicks as in P3): final 3D Dice, DSC-AUC over interactions 0-5,"
            " mean and worst drop of Dice caused by one click:",
            "",
            "| dataset | final | AUC | mean largest drop | worst drop |",
            "|---|---|---|---|---|",
        ]
        for name, p5 in p5_rows:
            cells = [_f(p5["final"]), _f(p5["auc"]), _f(p5["max_drop"]), _f(p5["worst_drop"])]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per-slice confidence vs true per-slice Dice (slices written by propagation and prompts):",
        "",
        "| dataset | protocol | slices | Pearson r | Spearman ρ | Dice of weakest 20 %"
        " | Dice of rest |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ds in result["datasets"].items():
        for key in ("P1", "P2"):
            c = ds["summary"].get(f"{key}_confidence")
            if c:
                lines.append(
                    f"| {name} | {key} | {c['n']} | {_f(c['pearson'])} | {_f(c['spearman'])} | "
                    f"{_f(c.get('dice_weakest_20pct'))} | {_f(c.get('dice_rest'))} |"
                )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path | None:
    """PNG of mean 3D Dice vs clicks (P3) and 2D IoU vs clicks (P4) per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = False
    for name, ds in result["datasets"].items():
        s = ds["summary"]
        if "P3" in s:
            (line,) = axes[0].plot(s["P3"]["dice_curve"], marker="o", ms=3, label=name)
            if "oracle" in s:
                axes[0].axhline(s["oracle"], color=line.get_color(), ls=":", lw=1)
            drawn = True
        if "P4" in s:
            axes[1].plot(s["P4"]["iou_curve"], marker="o", ms=3, label=name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    axes[0].set(
        title="P3: box + corrective clicks (dotted: oracle)",
        xlabel="clicks",
        ylabel="mean 3D Dice",
        ylim=(0, 1),
    )
    axes[1].set(title="P4: clicks on one slice", xlabel="clicks", ylabel="mean 2D IoU", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a protocol that was not run draws nothing
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
