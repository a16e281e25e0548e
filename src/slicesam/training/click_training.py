"""Fine-tune LiteMedSAM's prompt encoder and mask decoder for clicks on frozen embeddings.

Each sample is one training object on one slice. A simulated user starts with a box or a first
positive click, then places 0 to ``max_clicks`` error-driven clicks
(:mod:`~slicesam.training.click_rounds`), each decoder call getting the previous call's
low-resolution logits as its mask prompt. The calls before the last run without gradients; the
last one is trained (focal + Dice loss on the mask in the slice's frame, squared error of the
predicted IoU), as in RITM and SAM. A box start's first mask comes, as at inference, from the
original box decoder most of the time, so the decoder learns to correct the masks it will be
given. Boxes alone stay in the mix so the decoder keeps segmenting boxes.

Every ``eval_every`` steps the decoder is scored on training objects held out from the updates
(never on validation or reported objects): 2D IoU after 1, 3 and 5 clicks from an empty slice,
and after a box.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import iou as iou_2d
from ..models.torch_sam import prompt_tensors, upsample_logits
from .click_data import TrainingSlice
from .click_rounds import Round, error_click, user_box


@dataclass(frozen=True)
class Recipe:
    """How the decoder is trained (recorded in the model card).

    Attributes:
        samples: simulated interactions trained on.
        accumulate: samples per optimiser step.
        lr: peak AdamW learning rate (linear warm-up, cosine decay to zero).
        warmup_steps: optimiser steps of warm-up.
        weight_decay: AdamW weight decay.
        max_clicks: most clicks after the start of one interaction.
        box_start: share of interactions that start with a box (else a positive click).
        frozen_box_start: share of box starts whose first mask is the original decoder's.
        keep_box: share of box starts whose box stays in the later prompts.
        box_jitter: how far a box side wanders, as a fraction of the box's size (std).
        click_wander: share of clicks moved within their error region.
        holdout_every: every n-th training object of a dataset (by label id) is held out of the
            updates to monitor the training.
        eval_every: optimiser steps between two held-out scores.
        seed: the seed of every random choice.
    """

    samples: int = 6000
    accumulate: int = 4
    lr: float = 5e-5
    warmup_steps: int = 50
    weight_decay: float = 0.01
    max_clicks: int = 5
    box_start: float = 0.5
    frozen_box_start: float = 0.7
    keep_box: float = 0.5
    box_jitter: float = 0.05
    click_wander: float = 0.25
    holdout_every: int = 5
    eval_every: int = 100
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def split_holdout(
    slices: list[TrainingSlice], every: int
) -> tuple[list[TrainingSlice], list[TrainingSlice]]:
    """(trained, held out): every ``every``-th object id of each dataset is held out."""
    held: set[tuple[str, int]] = set()
    for name in sorted({s.dataset for s in slices}):
        labels = sorted({s.label for s in slices if s.dataset == name})
        if len(labels) >= 3:
            held |= {(name, label) for label in labels[every - 1 :: every]}
    train = [s for s in slices if (s.dataset, s.label) not in held]
    holdout = [s for s in slices if (s.dataset, s.label) in held]
    return train, holdout


class ClickDecoderTrainer:
    """The trainable prompt encoder and mask decoder, and the frozen original box decoder.

    Args:
        prompt_encoder, mask_decoder: LiteMedSAM's reference modules (copied; the model that
            owns them is not changed).
        input_side: the model's square input side (256).
    """

    def __init__(
        self, prompt_encoder: torch.nn.Module, mask_decoder: torch.nn.Module, input_side: int
    ) -> None:
        self.prompt_encoder = copy.deepcopy(prompt_encoder).float()
        self.mask_decoder = copy.deepcopy(mask_decoder).float()
        self.frozen_encoder = copy.deepcopy(prompt_encoder).float().eval()
        self.frozen_decoder = copy.deepcopy(mask_decoder).float().eval()
        for p in [*self.frozen_encoder.parameters(), *self.frozen_decoder.parameters()]:
            p.requires_grad_(False)
        self.input_side = input_side

    def parameters(self) -> list[torch.nn.Parameter]:
        return [*self.prompt_encoder.parameters(), *self.mask_decoder.parameters()]

    def forward(
        self, sample: TrainingSlice, rnd: Round, frozen: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(low-res logits (1, 1, h, w), IoU prediction (1, 1), logits (1, 1, H, W) in the
        slice's frame) for the round's prompts."""
        pe = self.frozen_encoder if frozen else self.prompt_encoder
        md = self.frozen_decoder if frozen else self.mask_decoder
        emb = sample.embedding
        points, boxes, masks = prompt_tensors(emb, "cpu", **rnd.prompts())
        sparse, dense = pe(points=points, boxes=boxes, masks=masks)
        low, iou = md(
            image_embeddings=emb.features.float(),
            image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return low, iou, upsample_logits(low, self.input_side, emb)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained parameters as float16: ``prompt_encoder.*`` and ``mask_decoder.*``
        (buffers are not trained and stay the original model's)."""
        out = {}
        for prefix, module in (
            ("prompt_encoder", self.prompt_encoder),
            ("mask_decoder", self.mask_decoder),
        ):
            for key, value in module.named_parameters():
                out[f"{prefix}.{key}"] = value.detach().to(torch.float16).clone()
        return out


def mask_loss(logits: torch.Tensor, iou_pred: torch.Tensor, gt: np.ndarray) -> torch.Tensor:
    """SAM's loss: 20 x focal + Dice on the (1, 1, H, W) logits against (H, W) bool ``gt``,
    plus the squared error of the predicted IoU against the mask's actual IoU."""
    target = torch.from_numpy(gt.astype(np.float32))[None, None]
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha = 0.25 * target + 0.75 * (1 - target)
    focal = (alpha * ce * (1 - p_t) ** 2).mean()
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    with torch.no_grad():
        pred = logits > 0
        inter = (pred & (target > 0)).sum()
        union = (pred | (target > 0)).sum().clamp(min=1)
        actual = inter.float() / union.float()
    return 20 * focal + dice + F.mse_loss(iou_pred.reshape(()), actual)


def simulate(
    trainer: ClickDecoderTrainer, sample: TrainingSlice, recipe: Recipe, rng: np.random.Generator
) -> Round | None:
    """The prompts of the trained (last) call of one simulated interaction; the calls before
    it run without gradients. None when the object was already exact."""
    gt = sample.gt
    n_clicks = int(rng.integers(0, recipe.max_clicks + 1))
    rnd = Round()
    if rng.random() < recipe.box_start:
        rnd.box = user_box(gt, rng, recipe.box_jitter)
        keep_box = rng.random() < recipe.keep_box
        frozen_first = rng.random() < recipe.frozen_box_start
    else:
        x, y, _ = error_click(np.zeros_like(gt), gt, rng, recipe.click_wander)
        rnd.points, rnd.labels = [(x, y)], [1]
        keep_box, frozen_first = False, False
    for i in range(n_clicks):
        with torch.no_grad():
            low, _, logits = trainer.forward(sample, rnd, frozen=(i == 0 and frozen_first))
        pred = (logits[0, 0] > 0).numpy()
        click = error_click(pred, gt, rng, recipe.click_wander)
        if click is None:
            return None if i == 0 and not rnd.points else rnd
        rnd = Round(
            rnd.box if keep_box else None,
            [*rnd.points, click[:2]],
            [*rnd.labels, click[2]],
            low[0, 0].numpy(),
        )
    return rnd


def holdout_scores(trainer: ClickDecoderTrainer, holdout: list[TrainingSlice]) -> dict:
    """Mean 2D IoU on the held-out objects' largest unmirrored slice: after 1, 3 and 5 clicks
    from an empty slice (each click as :func:`error_click` places it, unmoved) and after a
    tight box."""
    largest: dict[tuple[str, int], TrainingSlice] = {}
    for s in holdout:
        key = (s.dataset, s.label)
        if s.mirror == "none" and (key not in largest or s.gt.sum() > largest[key].gt.sum()):
            largest[key] = s
    rng = np.random.default_rng(0)
    at: dict[str, list[float]] = {"1": [], "3": [], "5": [], "box": []}
    with torch.no_grad():
        for s in largest.values():
            _, _, logits = trainer.forward(s, Round(box=user_box(s.gt, rng, 0.0)))
            at["box"].append(iou_2d(logits[0, 0].numpy() > 0, s.gt))
            pred, rnd = np.zeros_like(s.gt), Round()
            for n in range(1, 6):
                click = error_click(pred, s.gt, rng, 0.0)
                if click is not None:
                    rnd = Round(
                        None, [*rnd.points, click[:2]], [*rnd.labels, click[2]], rnd.mask_input
                    )
                    low, _, logits = trainer.forward(s, rnd)
                    rnd.mask_input = low[0, 0].numpy()
                    pred = logits[0, 0].numpy() > 0
                if str(n) in at:
                    at[str(n)].append(iou_2d(pred, s.gt))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in at.items()}


def _lr(step: int, total: int, recipe: Recipe) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, total - recipe.warmup_steps)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(
    trainer: ClickDecoderTrainer,
    slices: list[TrainingSlice],
    recipe: Recipe,
    *,
    on_sample: Callable[[], None] | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``trainer`` on ``slices`` (held-out objects split off by
    :func:`split_holdout`); returns the log: one row per ``eval_every`` steps with the mean
    loss since the last row, the held-out scores and the elapsed seconds."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    train_slices, holdout = split_holdout(slices, recipe.holdout_every)
    by_object: dict[str, dict[int, list[TrainingSlice]]] = {}
    for s in train_slices:
        by_object.setdefault(s.dataset, {}).setdefault(s.label, []).append(s)
    datasets = sorted(by_object)
    opt = torch.optim.AdamW(trainer.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    total_steps = math.ceil(recipe.samples / recipe.accumulate)
    start, losses, log = time.perf_counter(), [], []

    def record(step: int) -> None:
        row = {
            "step": step,
            "samples": step * recipe.accumulate,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "holdout_iou": holdout_scores(trainer, holdout) if holdout else {},
            "seconds": round(time.perf_counter() - start, 1),
        }
        losses.clear()
        log.append(row)
        if on_log is not None:
            on_log(row)

    record(0)
    for step in range(total_steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, total_steps, recipe)
        opt.zero_grad()
        for _ in range(recipe.accumulate):
            objects = by_object[datasets[int(rng.integers(len(datasets)))]]
            label = sorted(objects)[int(rng.integers(len(objects)))]
            sample = objects[label][int(rng.integers(len(objects[label])))]
            rnd = simulate(trainer, sample, recipe, rng)
            if rnd is not None:
                _, iou_pred, logits = trainer.forward(sample, rnd)
                loss = mask_loss(logits, iou_pred, sample.gt) / recipe.accumulate
                loss.backward()
                losses.append(loss.detach().item() * recipe.accumulate)
            if on_sample is not None:
                on_sample()
        torch.nn.utils.clip_grad_norm_(trainer.parameters(), 1.0)
        opt.step()
        if (step + 1) % recipe.eval_every == 0 or step + 1 == total_steps:
            record(step + 1)
    return log
