"""napari sample-data hooks: the volumes shipped in ``sample_volumes/`` (see its NOTICE).

Each function returns one image layer, built as the reader builds it (``scale``, contrast
limits and ``metadata["slicesam_volume"]``), so the sample can be segmented and its labels saved
with the source geometry.
"""

from __future__ import annotations

from slicesam._napari.reader import LayerDataTuple, volume_layer_data
from slicesam.io import load_volume
from slicesam.samples import get_sample


def _sample_layer(key: str, name: str) -> list[LayerDataTuple]:
    sample = get_sample(key)
    volume = load_volume(sample.image)
    return [volume_layer_data(volume, name)]


def ct_abdomen() -> list[LayerDataTuple]:
    """Abdominal CT (TotalSegmentator test case), int16 HU, (z, y, x) = (30, 101, 122), 3 mm."""
    return _sample_layer("ct_abdomen", "abdominal CT")


def mr_abdomen() -> list[LayerDataTuple]:
    """Abdominal MR (TotalSegmentator MR test case), int16, (z, y, x) = (20, 91, 117), 3 mm."""
    return _sample_layer("mr_abdomen", "abdominal MR")


def nuclei() -> list[LayerDataTuple]:
    """Arabidopsis nuclei (GoNuclear), uint8 fluorescence, (z, y, x) = (100, 100, 100)."""
    return _sample_layer("nuclei", "Arabidopsis nuclei")
