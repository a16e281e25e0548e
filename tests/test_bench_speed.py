"""Plumbing of the speed benchmark with the fake model (timings are not asserted)."""

from __future__ import annotations

import dataclasses
import time

from fakes import FakeModel
from slicesam.bench import speed
from slicesam.models.yield_points import yield_point


class FastFake(FakeModel):
    @property
    def capabilities(self):
        return dataclasses.replace(super().capabilities, encoder="fake-fast")


class PausingFake(FakeModel):
    """An encoder with 3 pause points, 5 ms of work before each and after the last."""

    def embed(self, image):
        for _ in range(3):
            time.sleep(0.005)
            yield_point()
        time.sleep(0.005)
        return super().embed(image)


def test_speed_measurements_and_table(monkeypatch):
    monkeypatch.setattr(speed, "TIMING_SHAPE", (6, 64, 64))
    vol = speed.synthetic_volume((6, 64, 64))
    assert vol.shape == (6, 64, 64) and vol.max() > 150
    ref, fast = FakeModel(), FastFake()
    result = {
        "startup_reference": speed.startup(FakeModel),
        "startup_optimised": speed.startup(FastFake),
        "encoder": speed.encoder_speed(ref, fast, vol[3].astype("uint8"), repeat=2),
        "click": speed.click_speed(fast, ref, repeat=5),
        "propagation": speed.propagation_speed(ref, fast, n_slices=2),
        "prefetch": speed.prefetch_interference(fast, repeat=3, pause_s=0.01),
        "memory": speed.memory(fast),
        "pause_points": speed.pause_points(PausingFake()),
    }
    for key in ("decode_reference_s", "correction_click_s", "first_click_s", "box_s"):
        assert result["click"][key] > 0
    assert result["memory"]["bytes_per_slice"] == 512 * 512  # the fake keeps the uint8 slice
    assert result["prefetch"]["gated_slices_prefetched"] >= 1
    assert result["prefetch"]["gated_decode_s"] > 0 and result["prefetch"]["idle_click_s"] > 0
    pauses = result["pause_points"]
    assert pauses["points"] == 3 and 0 < pauses["expected_wait_s"] <= pauses["max_gap_s"]
    table = speed.speed_markdown(result)
    assert "LiteMedSAM encoder" in table and "≤ 650 MB" in table
    assert "pause points per slice: 3" in table
    assert table.count("\n") >= 10


def test_accuracy_check_against_the_truth(tmp_path):
    """P1 and P2 per split and path; a path that loses Dice on a dataset is marked as failing."""
    import json

    import numpy as np
    import tifffile

    labels = np.zeros((8, 40, 40), np.uint16)
    labels[2:6, 10:25, 12:28] = 1
    labels[3:7, 28:36, 5:12] = 2
    folder = tmp_path / "data" / "blocks"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "image.tif", np.where(labels > 0, 200, 30).astype(np.uint8))
    tifffile.imwrite(folder / "labels.tif", labels)
    meta = {"objects": [1], "validation_objects": [2]}
    (folder / "meta.json").write_text(json.dumps(meta))
    acc = speed.truth_accuracy({"ref": FakeModel(), "alt": FastFake()}, tmp_path / "data")
    assert set(acc) == {"reported", "validation"}
    figures = acc["validation"]["blocks"]
    assert set(figures) == {"ref", "alt"} and figures["ref"]["P1"] > 0.5
    figures["alt"]["P2"] = figures["ref"]["P2"] - 0.02
    rows = "\n".join(speed.accuracy_markdown(acc))
    assert "| largest drop (passes) | 0.000 (yes) | 0.020 (no) |" in rows
    assert "| largest drop (passes) | 0.000 (yes) | 0.000 (yes) |" in rows  # reported
