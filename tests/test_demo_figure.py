"""The demo's figure: reference contours in a colour no fill has, Dice per organ in the legend;
``slicesam demo`` shows progress on stderr (``--quiet`` silences it)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

import slicesam.models.registry as registry
from slicesam.cli import main
from slicesam.demo import REFERENCE_COLOR, save_overlay_png


@pytest.fixture
def figures(monkeypatch):
    """The figures save_overlay_png saves (captured before they are closed)."""
    from matplotlib.figure import Figure

    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def two_organs():
    image = np.zeros((4, 40, 40), np.float32)
    labels = np.zeros((4, 40, 40), np.uint16)
    labels[:, 5:20, 5:20] = 1
    labels[:, 22:35, 22:35] = 2
    reference = np.zeros_like(labels)
    reference[:, 6:21, 6:21] = 1
    reference[:, 23:36, 21:34] = 2
    return image, labels, reference


def test_legend_has_each_organs_dice_and_the_contours_stand_out(tmp_path, figures):
    import matplotlib.pyplot as plt

    image, labels, reference = two_organs()
    path = tmp_path / "overlay.png"
    save_overlay_png(path, image, labels, reference, (0.0, 1.0), [1, 2],
                     {1: "liver", 2: "spleen"}, {1: 0.9512, 2: 0.8})  # fmt: skip
    assert path.is_file()
    (fig,) = figures
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:2] == ["liver 0.95", "spleen 0.80"] and "reference" in texts[2]
    yellow = to_rgba(REFERENCE_COLOR)
    fills = [tuple(c) for c in plt.get_cmap("tab10")(np.arange(2))]
    for ax in fig.axes:
        contours = [c for c in ax.collections if hasattr(c, "levels")]
        assert len(contours) == 2  # one per organ
        for contour in contours:
            colors = {tuple(c) for c in np.atleast_2d(contour.get_edgecolor())}
            assert colors == {yellow} and yellow not in fills
    # and it is really drawn: bright yellow pixels in the PNG
    png = plt.imread(path)
    yellowish = (png[..., 0] > 0.9) & (png[..., 1] > 0.9) & (png[..., 2] < 0.2)
    assert yellowish.sum() > 50


def test_demo_shows_progress_and_quiet_silences_it(tmp_path, capsys, monkeypatch, figures):
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    assert main(["demo", "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "mean 3D Dice" in captured.out and "liver (1/5)" not in captured.out
    assert "loading model litemedsam" in captured.err
    for k, organ in enumerate(("liver", "spleen", "kidney_right", "kidney_left", "aorta")):
        assert f"{organ} ({k + 1}/5)" in captured.err
    texts = [t.get_text() for t in figures[-1].legends[0].get_texts()]
    assert texts[0].startswith("liver 0.") or texts[0].startswith("liver 1.")
    assert main(["demo", "--out", str(tmp_path / "b"), "--device", "cpu", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "mean 3D Dice" in captured.out
    assert (tmp_path / "b" / "ct_abdomen_overlay.png").is_file()
