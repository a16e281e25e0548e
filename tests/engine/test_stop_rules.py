"""A walk's stop rules are small objects, composed from the params into one ordered list."""

from __future__ import annotations

import numpy as np

from slicesam.engine.propagation import (
    AreaFall,
    AreaJump,
    BelowLargest,
    Candidate,
    IntensityFall,
    IntensityRise,
    OverlapBelow,
    PropagationParams,
    ScoreBelow,
    Vanished,
    stop_reason,
    stop_rules,
)


def square(side: int, at: int = 0) -> np.ndarray:
    mask = np.zeros((40, 40), bool)
    mask[at : at + side, at : at + side] = True
    return mask


def candidate(mask, prev=None, *, score=0.9, max_area=None, intensity=0.5, start=0.5, low=0.5):
    prev = square(10) if prev is None else prev
    area = int(prev.sum())
    return Candidate(mask, score, prev, area, max_area or area, intensity, start, low)


def test_the_rules_come_from_the_params_in_order():
    params = PropagationParams()
    rules = stop_rules(params)
    assert [type(r) for r in rules] == [
        Vanished,
        ScoreBelow,
        AreaJump,
        AreaFall,
        OverlapBelow,
        BelowLargest,
        IntensityFall,
    ]
    assert rules[0] == Vanished(params.min_area_px) and rules[1] == ScoreBelow(params.min_score)
    rise = stop_rules(PropagationParams(max_intensity_rise=0.2))
    assert rise[-1] == IntensityRise(0.2) and len(rise) == len(rules) + 1


def test_each_rule_checks_one_thing():
    ok = candidate(square(10))
    assert stop_reason(stop_rules(PropagationParams(max_intensity_rise=0.2)), ok) is None
    assert Vanished(4).check(candidate(square(1))) == "object vanished"
    assert ScoreBelow(0.5).check(candidate(square(10), score=0.3)) == "low confidence (0.30)"
    assert AreaJump(2.0).check(candidate(square(15))) == "area jumped x2.2"
    assert AreaFall(0.15).check(candidate(square(3))) == "area fell to 9%"
    moved = candidate(square(10, at=20))
    assert OverlapBelow(0.3).check(moved) == "object moved away from the previous slice"
    assert BelowLargest(0.25).check(candidate(square(4), max_area=400)) == (
        "area fell to 4% of the largest"
    )
    assert IntensityFall(0.1).check(candidate(square(10), intensity=0.3)) is not None
    assert IntensityRise(0.1).check(candidate(square(10), intensity=0.7, low=0.5)) is not None
    no_image = candidate(square(10), intensity=None)
    assert IntensityFall(0.0).check(no_image) is None and IntensityRise(0.0).check(no_image) is None


def test_the_first_rule_that_fires_gives_the_reason():
    vanished_and_unsure = candidate(square(1), score=0.1)
    assert stop_reason(stop_rules(PropagationParams()), vanished_and_unsure) == "object vanished"
