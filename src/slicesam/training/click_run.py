"""``slicesam train-clicks``: embed the training slices, train, and write the decoder, its log,
its plot and a model card record into one folder.

Output folder:
    click_decoder.pt    float16 state dict (``prompt_encoder.*``, ``mask_decoder.*``)
    click_decoder.json  recipe, data (datasets, object ids, slice counts), sha256, time, CPU
    train_log.json      loss and held-out IoU every ``eval_every`` steps
    train_curve.png     the log as a plot
    embeddings/         the training slices' embeddings, reused by a re-run
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..bench.runner import cpu_name
from ..models.checkpoints import file_sha256
from ..models.litemedsam import load_litemedsam
from .click_data import load_training_slices
from .click_training import ClickDecoderTrainer, Recipe, split_holdout, train


def plot_log(log: list[dict], path: Path) -> None:
    """Loss and held-out IoU against training samples, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 4))
    rows = [r for r in log if np.isfinite(r["loss"])]
    ax_loss.plot([r["samples"] for r in rows], [r["loss"] for r in rows])
    ax_loss.set(xlabel="samples", ylabel="loss (20 focal + Dice + IoU MSE)", title="training loss")
    for key in ("1", "3", "5", "box"):
        label = f"{key} clicks" if key != "box" else "box"
        ax_iou.plot(
            [r["samples"] for r in log], [r["holdout_iou"].get(key) for r in log], label=label
        )
    ax_iou.set(xlabel="samples", ylabel="2D IoU", title="held-out training objects", ylim=(0, 1))
    ax_iou.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_clicks(
    data: str | Path, out: str | Path, recipe: Recipe, *, threads: int | None, quiet: bool
) -> dict:
    """Train a click decoder on the ``training_objects`` under ``data`` into folder ``out``;
    returns the card record written to ``out/click_decoder.json``."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if threads is not None:
        torch.set_num_threads(threads)
    model = load_litemedsam(device="cpu")
    started = time.perf_counter()
    status = (
        (lambda text: None) if quiet else (lambda text: print(f"embedding {text}", file=sys.stderr))
    )
    slices = load_training_slices(data, model, out / "embeddings", on_volume=status)
    embed_s = time.perf_counter() - started
    trainer = ClickDecoderTrainer(model.prompt_encoder, model.mask_decoder, model.input_scale_ref)
    trained, held = split_holdout(slices, recipe.holdout_every)
    bar = tqdm(total=recipe.samples, desc="train-clicks", unit="sample", disable=quiet)

    def on_log(row: dict) -> None:
        scores = " ".join(f"{k}:{v:.3f}" for k, v in row["holdout_iou"].items())
        bar.write(f"step {row['step']}: loss {row['loss']:.4f}; held-out IoU {scores}")

    log = train(trainer, slices, recipe, on_sample=lambda: bar.update(1), on_log=on_log)
    bar.close()
    weights = out / "click_decoder.pt"
    torch.save(trainer.state_dict(), weights)
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    plot_log(log, out / "train_curve.png")
    objects = sorted({(s.dataset, s.label) for s in trained})
    card = {
        "weights": weights.name,
        "sha256": file_sha256(weights),
        "recipe": recipe.as_dict(),
        "trained_objects": [f"{d}:{label}" for d, label in objects],
        "held_out_objects": sorted({f"{s.dataset}:{s.label}" for s in held}),
        "slices": len(slices),
        "embed_seconds": round(embed_s, 1),
        "train_seconds": log[-1]["seconds"],
        "final_holdout_iou": log[-1]["holdout_iou"],
        "initial_holdout_iou": log[0]["holdout_iou"],
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    (out / "click_decoder.json").write_text(json.dumps(card, indent=1))
    return card
