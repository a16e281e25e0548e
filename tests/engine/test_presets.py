"""Per-modality settings are data (:mod:`slicesam.engine.presets`) read by the two defaults."""

from __future__ import annotations

import dataclasses

import pytest

from slicesam.engine import default_click_edits as engine_default_click_edits
from slicesam.engine import default_params as engine_default_params
from slicesam.engine import presets
from slicesam.engine.clicks import NO_INTENSITY_EDITS, ClickEdits, default_click_edits
from slicesam.engine.propagation import PropagationParams, default_params


def test_every_preset_names_existing_fields():
    params = {f.name for f in dataclasses.fields(PropagationParams)}
    edits = {f.name for f in dataclasses.fields(ClickEdits)}
    for table, known in ((presets.PROPAGATION, params), (presets.CLICK_EDITS, edits)):
        for modality, overrides in table.items():
            assert set(overrides) <= known, modality


@pytest.mark.parametrize("modality", ["CT", "MR", "microscopy", None, "PET"])
def test_the_defaults_are_the_dataclass_defaults_with_the_presets_overrides(modality):
    params = default_params(modality)
    expected = dataclasses.replace(PropagationParams(), **presets.PROPAGATION.get(modality, {}))
    assert params == expected == engine_default_params(modality)
    edits = default_click_edits(modality)
    expected_edits = dataclasses.replace(ClickEdits(), **presets.CLICK_EDITS.get(modality, {}))
    assert edits == expected_edits == engine_default_click_edits(modality)


def test_the_modalities_differ_where_their_presets_say():
    assert default_params(None) == PropagationParams()
    assert default_params("PET") == PropagationParams()  # unlisted: the plain defaults
    assert default_params("CT").max_small_growth > 0 and default_params("CT").margin_rel > 0
    assert default_params("MR").max_intensity_rise > 0
    micro = default_params("microscopy")
    assert micro.rewalk_reference and micro.margin_model_px > PropagationParams().margin_model_px
    assert default_click_edits("microscopy") == NO_INTENSITY_EDITS
    assert default_click_edits("CT") == ClickEdits()


def test_presets_are_not_shared_state():
    """Changing what :func:`presets.overrides` returned leaves the table as it was."""
    got = presets.overrides(presets.PROPAGATION, "CT")
    got["margin_rel"] = 0.9
    assert presets.PROPAGATION["CT"]["margin_rel"] != 0.9
