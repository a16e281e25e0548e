"""Per-modality settings, as data.

A session on a volume of a known modality starts from the defaults of
:class:`~slicesam.engine.propagation.PropagationParams` and
:class:`~slicesam.engine.clicks.ClickEdits` with the overrides below
(:func:`~slicesam.engine.propagation.default_params`,
:func:`~slicesam.engine.clicks.default_click_edits`). A modality not listed (or None) keeps the
plain defaults. Each field's docstring says what it prevents; here only why a modality differs:

- **CT**: structures a few pixels across are common, so next-slice boxes keep a margin
  proportional to the box, small structures' masks may not grow much from slice to slice, and
  their boxes start from the mask's pixel centres, as a tight user box does.
- **MR**: the box margin is capped as on CT; intensity varies less inside a structure than
  between neighbours, so a walk whose mask turns much brighter has left the structure.
- **microscopy**: slices are small, so the model sees them enlarged and their blurred borders
  wide: next-slice boxes need a wider margin. Touching cells are separated by a dimmer gap, so
  a mask that turns brighter again has entered the next cell; a re-walk from a correction near
  a cell's end compares with the whole cell. A cell's blurred rim is as bright as its
  neighbour's, so correction clicks ignore intensities.
"""

from __future__ import annotations

from typing import Any

#: modality -> :class:`~slicesam.engine.propagation.PropagationParams` field overrides.
PROPAGATION: dict[str, dict[str, Any]] = {
    "CT": {
        "margin_rel": 0.2,
        "max_small_growth": 0.1,
        "small_box_inset": 0.5,
    },
    "MR": {
        "margin_rel": 0.2,
        "max_intensity_rise": 0.2,
    },
    "microscopy": {
        "margin_model_px": 6.0,
        "max_intensity_rise": 0.05,
        "rewalk_reference": True,
    },
}

#: modality -> :class:`~slicesam.engine.clicks.ClickEdits` field overrides.
CLICK_EDITS: dict[str, dict[str, Any]] = {
    "microscopy": {
        "remove_tolerance": 0.0,
        "add_tolerance": 0.0,
    },
}


def overrides(table: dict[str, dict[str, Any]], modality: str | None) -> dict[str, Any]:
    """The field overrides ``table`` holds for ``modality`` (none for an unlisted one)."""
    return dict(table.get(modality or "", {}))
