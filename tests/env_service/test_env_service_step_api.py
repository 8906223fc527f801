"""gymnasium's 5-tuple and gym's 4-tuple: reading the wire flags and converting results (step_api.py)."""

from __future__ import annotations

import pytest

from astuner.env_service import StepResult, to_five, to_four
from astuner.env_service.step_api import flags_from_wire, to_wire


@pytest.mark.parametrize(
    "data, info, expected",
    [
        ({"is_terminated": False}, {}, (False, False)),
        ({"is_terminated": True}, {}, (True, False)),
        ({"is_terminated": True}, {"TimeLimit.truncated": True}, (False, True)),
        ({"is_terminated": False}, {"TimeLimit.truncated": True}, (False, False)),  # gym sets it only on done
        ({"is_terminated": True, "is_truncated": True}, {}, (False, True)),
        ({"is_terminated": False, "is_truncated": True}, {}, (False, True)),
        ({"is_terminated": True, "is_truncated": False}, {"TimeLimit.truncated": True}, (True, False)),
        ({"is_terminated": 1, "is_truncated": 0}, {}, (True, False)),
    ],
)
def test_flags_from_wire(data, info, expected):
    assert flags_from_wire(data, info) == expected


@pytest.mark.parametrize("terminated, truncated", [(False, False), (True, False), (False, True)])
def test_wire_round_trip(terminated, truncated):
    wire = to_wire(terminated, truncated)
    assert wire["is_terminated"] == (terminated or truncated)  # old clients read "the episode is over"
    assert flags_from_wire(wire, {}) == (terminated, truncated)


def test_both_flags_on_the_wire_read_as_truncated():
    assert to_wire(True, True) == {"is_terminated": True, "is_truncated": True}
    assert flags_from_wire(to_wire(True, True), {}) == (False, True)


def test_step_result_unpacks_as_five_and_names_its_fields():
    step = StepResult("obs", 1.0, False, True, {"k": 1})
    observation, reward, terminated, truncated, info = step
    assert (observation, reward, terminated, truncated, info) == ("obs", 1.0, False, True, {"k": 1})
    assert step.done and not StepResult("o", 0.0, False, False, {}).done


def test_conversions_detect_the_form_by_length():
    assert to_five(("o", 1.0, True, {})) == ("o", 1.0, True, False, {})
    assert to_five(("o", 1.0, True, {"TimeLimit.truncated": True})).truncated
    assert to_five(("o", 1.0, False, True, {})) == StepResult("o", 1.0, False, True, {})
    info: dict = {}
    assert to_four(("o", 1.0, False, True, info)) == ("o", 1.0, True, {"TimeLimit.truncated": True})
    assert info == {}  # the caller's info is not changed
    assert to_four(("o", 1.0, True, False, {})) == ("o", 1.0, True, {})
    assert to_four(to_five(("o", 0.5, True, {"TimeLimit.truncated": True}))) == ("o", 0.5, True, {"TimeLimit.truncated": True})
    with pytest.raises(ValueError, match="4 items .* or 5"):
        to_five(("o", 1.0, True))
