"""The ``slicesam`` command line: segment a volume from a prompts file, list models, run the demo.

Errors about the user's input print one line (``slicesam: error: ...``) and exit with status 2;
nothing is written unless the whole job succeeded. ``segment`` checks everything it can (output
path, image, every prompt against the volume) before it loads the model. Progress (model
loading, one bar per object) goes to stderr with tqdm; stdout holds only results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .cli_output import CliProgress, show_warning
from .errors import SliceSamError
from .io._common import LABEL_SUFFIXES, file_format

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def package_version() -> str:
    """The installed version of napari-slicesam, or "unknown" (e.g. a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-slicesam")
    except PackageNotFoundError:
        return "unknown"


def _check_output(path: Path, image: str | Path | None = None) -> None:
    """Fail before any work when the output cannot be written (or would replace the image)."""
    if file_format(path) is None:
        raise SliceSamError(
            f"cannot write {path}: unsupported extension; use one of {', '.join(LABEL_SUFFIXES)}"
        )
    if path.is_dir():
        raise SliceSamError(f"cannot write {path}: it is a folder; give a file name")
    if image is not None and Path(image).exists() and path.resolve() == Path(image).resolve():
        raise SliceSamError(f"cannot write {path}: it is the input image; give another name")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folders that do not exist yet are created
    if not parent.is_dir():
        raise SliceSamError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SliceSamError(f"cannot write {path}: no permission to write in {parent}")


SERIES_HELP = "SeriesInstanceUID of the series to load from a DICOM folder holding several"


def cmd_segment(args: argparse.Namespace) -> int:
    from .batch.segment import load_inputs, segment_objects
    from .batch.settings import parse_window
    from .engine.session import Session
    from .io import save_labels

    progress = CliProgress(quiet=args.quiet)
    # everything the user gave is checked before the model loads (tens of seconds on a CPU)
    out = Path(args.out)
    _check_output(out, image=args.image)
    window = parse_window(args.window)
    vol, objects = load_inputs(
        args.image,
        args.prompts,
        series=args.series,
        channel=args.channel,
        modality=args.modality,
        fill_nonfinite=args.fill_nonfinite,
    )
    if file_format(out) == "dicom-seg":  # a SEG the series cannot get fails before the model
        from .io.dicom_seg import check_seg_possible

        check_seg_possible(vol.geometry, out)
    progress.note(f"loaded {vol}; {len(objects)} object{'s' if len(objects) != 1 else ''}")
    t0 = time.perf_counter()
    with progress.waiting(f"loading model {args.model}"):
        sess = Session(
            vol, model=args.model, checkpoint=args.checkpoint, device=args.device, window=window
        )
    progress.note(
        f"model {sess.model.name} on {sess.model.device} ({time.perf_counter() - t0:.1f} s), "
        f"window {sess.window}"
    )
    segment_objects(sess, objects, propagate=args.propagate, bar=progress.bar, note=progress.note)
    names = {i: obj.name for i, obj in sess.objects.items() if obj.name}
    saved = save_labels(out, sess.labels, like=vol, names=names)
    print(f"wrote {saved} ({len(objects)} objects, {time.perf_counter() - t0:.1f} s)")
    return 0


def _round(value: float) -> str:
    """A spacing for display: 3 decimals at most, no trailing zeros (2.9999999 -> 3)."""
    return f"{round(float(value), 3):g}"


def _id_ranges(ids: list[int], limit: int = 80) -> str:
    """``1-5, 7, 10-12``; cut with ``...`` past ``limit`` characters."""
    parts: list[str] = []
    start = prev = ids[0]
    for v in [*ids[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: text.rfind(", ", 0, limit)] + ", ..."


def cmd_info(args: argparse.Namespace) -> int:
    from .intensity import default_window
    from .io import load_volume
    from .io.modality import label_ids

    if Path(args.image).is_dir():
        from .io.dicom_folder import list_series

        lines = list_series(args.image)
        print(f"{args.image}: {len(lines)} DICOM series")
        for line in lines:
            print(f"  {line}")
        if args.series is None and len(lines) > 1:
            print("pick one with --series <SeriesInstanceUID> for its shape, spacing and window")
            return 0
    vol = load_volume(
        args.image, channel=args.channel, fill_nonfinite=args.fill_nonfinite, series=args.series
    )
    name = vol.path.name if vol.path else args.image
    print(f"{name}: shape (z, y, x) = {vol.shape}, {vol.data.dtype}")
    spacing = ", ".join(_round(v) for v in vol.spacing)
    print(f"spacing (z, y, x) = {spacing} {vol.unit}")
    ids = label_ids(vol.data)
    if ids is not None:
        count = f"{len(ids)} object{'s' if len(ids) != 1 else ''}"
        print(f"labels: {count} (ids {_id_ranges(ids) if ids else 'none'}), background 0")
        print("a label volume (integers, background 0, piecewise constant): no modality or window")
        return 0
    print(f"modality: {vol.modality or 'unknown'}")
    lo, hi = default_window(vol.data, vol.modality)
    print(f"default window: {lo:g} .. {hi:g}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), device=args.device, progress=CliProgress(quiet=args.quiet))
    return 0


def cmd_bench_speed(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime, timezone

    from .bench.runner import environment
    from .bench.speed import run_speed, speed_markdown
    from .models.device import cpu_has_native_bf16
    from .models.litemedsam import load_litemedsam

    result = run_speed(
        data=args.data,
        datasets=args.datasets.split(",") if args.datasets else None,
        sam=args.sam,
        progress=lambda step: print(f"measuring {step}…", file=sys.stderr, flush=True),
    )
    result["environment"] = env = environment(load_litemedsam(device="cpu"))
    bf16 = "native bfloat16" if cpu_has_native_bf16() else "no native bfloat16"
    head = (
        f"`{env['command']}` — {env.get('cpu', '?')} ({bf16}), "
        f"torch {env.get('torch')} on {env.get('torch_threads')} threads\n\n"
    )
    table = head + speed_markdown(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (out / "speed.md").write_text(table, encoding="utf-8")
    print(table)
    if args.append:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.append, "a", encoding="utf-8") as f:
            f.write(f"\n### Speed, {stamp}\n\n" + table)
        print(f"appended to {args.append}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.runner import parse_protocols, run_benchmark

    if args.speed:
        return cmd_bench_speed(args)
    if not args.data:
        raise SliceSamError("--data is required for the accuracy benchmark")

    from .bench.datasets import SPLITS

    def ints(text: str | None) -> list[int] | None:
        try:
            return [int(v) for v in text.split(",") if v.strip()] if text else None
        except ValueError:
            raise SliceSamError(
                f"--objects expects {' | '.join(SPLITS)} or label ids (1,2,5), got {text!r}"
            ) from None

    split, ids = "reported", args.objects
    if args.objects and args.objects.strip().lower() in SPLITS:
        split, ids = args.objects.strip().lower(), None

    model = args.model
    if args.clicks or args.click_decoder:
        if args.model != "litemedsam":
            raise SliceSamError("--clicks and --click-decoder apply to --model litemedsam only")
        from .models.litemedsam import load_litemedsam

        model = load_litemedsam(
            args.checkpoint, args.device, clicks=args.clicks, click_decoder=args.click_decoder
        )
    result = run_benchmark(
        args.data,
        args.out,
        model=model,
        checkpoint=args.checkpoint,
        device=args.device,
        protocols=parse_protocols(args.protocol),
        baselines=not args.no_baselines,
        datasets=args.datasets.split(",") if args.datasets else None,
        objects=ints(ids),
        split=split,
        max_objects=args.max_objects,
        all_objects=args.all_objects,
        p3_clicks=args.p3_clicks,
        p4_clicks=args.p4_clicks,
        progress=not args.quiet,
    )
    from .bench.report import markdown

    print(markdown(result))
    print(f"wrote {Path(args.out) / 'bench.json'}, bench.md, bench.png ({result['seconds']} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models.device import DEVICE_CHOICES

    parser = argparse.ArgumentParser(
        prog="slicesam", description="Interactive 3D segmentation with SAM-family models."
    )
    parser.add_argument("--version", action="version", version=f"slicesam {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment a volume from a prompts JSON file")
    seg.add_argument(
        "image", help="NIfTI (.nii, .nii.gz) or TIFF (.tif, .tiff) volume, or a DICOM series folder"
    )
    seg.add_argument("--series", default=None, help=SERIES_HELP)
    seg.add_argument("--prompts", required=True, help="prompts JSON (see README)")
    seg.add_argument("--out", required=True, help="labels file to write (.nii.gz or .tif)")
    seg.add_argument("--model", default="litemedsam", help="model name (slicesam models)")
    seg.add_argument(
        "--checkpoint",
        default=None,
        help="weights file; default: the model's shipped weights (litemedsam) or the cached "
        "file from `slicesam models fetch NAME`",
    )
    seg.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    seg.add_argument("--window", default=None, help="intensity window LO,HI or a CT preset")
    seg.add_argument("--channel", type=int, default=None, help="channel of a 4D/multichannel file")
    seg.add_argument("--modality", default=None, choices=["CT", "MR", "microscopy"])
    seg.add_argument(
        "--fill-nonfinite", type=float, default=None, metavar="V", help="replace NaN/inf by V"
    )
    seg.add_argument(
        "--no-propagate", dest="propagate", action="store_false", help="only the prompted slices"
    )
    seg.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (errors and results stay)"
    )
    seg.set_defaults(func=cmd_segment)

    from .cli_models import add_models_parser

    add_models_parser(sub)  # `models` (list) and `models fetch NAME`
    from .cli_batch import add_batch_parsers

    add_batch_parsers(sub)  # `batch` and `embed`: many volumes on dask.distributed
    from .cli_train import add_train_parser

    add_train_parser(sub)  # `train-clicks`: LiteMedSAM's decoder trained for clicks

    info = sub.add_parser("info", help="print a volume's shape, spacing and modality")
    info.add_argument("image", help="a volume, a label file, or a folder of DICOM files")
    info.add_argument("--series", default=None, help=SERIES_HELP)
    info.add_argument("--channel", type=int, default=None)
    info.add_argument(
        "--fill-nonfinite", type=float, default=None, metavar="V", help="replace NaN/inf by V"
    )
    info.set_defaults(func=cmd_info)

    demo = sub.add_parser("demo", help="segment five organs of the sample CT and report Dice")
    demo.add_argument("--out", default="demo_output", help="output folder")
    demo.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    demo.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (the Dice table stays)"
    )
    demo.set_defaults(func=cmd_demo)
    bench = sub.add_parser(
        "bench", help="accuracy benchmark (../shared/BENCHMARK.md P1-P4), or --speed"
    )
    bench.add_argument(
        "--data",
        default=None,
        help="folder of dataset folders (meta.json); with --speed: "
        "enables the accuracy check (Dice against the truth, each encoder path)",
    )
    bench.add_argument("--out", required=True, help="output folder (bench.json/.md/.png)")
    bench.add_argument("--protocol", default=None, help="comma list of P1,P2,P3,P4 (all)")
    bench.add_argument("--model", default="litemedsam", help="model name (slicesam models)")
    bench.add_argument("--checkpoint", default=None, help="weights file")
    bench.add_argument(
        "--clicks",
        default=None,
        choices=["rules", "learned", "fbrs"],
        help="litemedsam: how clicks become masks (default rules; docs/clicks.md)",
    )
    bench.add_argument(
        "--click-decoder", default=None, help="litemedsam: a click decoder from train-clicks"
    )
    bench.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    bench.add_argument("--datasets", default=None, help="comma list of dataset folder names")
    bench.add_argument(
        "--objects",
        default=None,
        help="which structures: reported (default), validation or training (BENCHMARK.md "
        "splits), or a comma list of label ids of the reported ones",
    )
    bench.add_argument("--max-objects", type=int, default=None, help="at most N per dataset")
    bench.add_argument("--all-objects", action="store_true", help="not only the first 10")
    bench.add_argument("--p3-clicks", type=int, default=10)
    bench.add_argument("--p4-clicks", type=int, default=20)
    bench.add_argument("--no-baselines", action="store_true", help="skip MedSAM 3D and oracle")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.add_argument(
        "--speed", action="store_true", help="the speed benchmark instead (CPU, vs reference)"
    )
    bench.add_argument("--sam", action="store_true", help="--speed: also SAM vit_b fp32 vs bf16")
    bench.add_argument("--append", default=None, help="--speed: append the table to this file")
    bench.set_defaults(func=cmd_bench)
    from .replay import add_replay_parser

    add_replay_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return int(args.func(args))
    except SliceSamError as exc:
        print(f"slicesam: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("slicesam: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
