"""The ``atRisk`` sequence trigger's validation: it takes no field, the fields of other
triggers are dropped as theirs are, and a misspelt type is refused naming the trigger."""

from __future__ import annotations

import pytest

from application.automation_scan import SCANNED, silence
from domain.errors import InvalidValue
from domain.sequence import Sequence
from domain.sequence_rules import TRIGGERS, Step, Trigger, check_trigger


def test_at_risk_is_a_trigger_found_by_the_scan_at_once() -> None:
    assert "atRisk" in TRIGGERS
    assert "atRisk" in SCANNED
    sequence = Sequence.create(
        sequence_id=1,
        tenant="t1",
        name="Win back",
        trigger=Trigger(type="atRisk"),
        steps=[Step(content="We miss you")],
    )
    assert sequence.trigger == Trigger(type="atRisk")
    assert silence(sequence).total_seconds() == 0


def test_at_risk_keeps_no_field_of_the_other_triggers() -> None:
    checked = check_trigger(Trigger(type="atRisk", tag="vip", days=3, hours=2))

    assert checked == Trigger(type="atRisk")


@pytest.mark.parametrize("kind", ["atrisk", "at_risk", "AtRisk", "risk", ""])
def test_a_misspelt_at_risk_is_refused_naming_the_trigger(kind: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        check_trigger(Trigger(type=kind))
    assert refused.value.field == "trigger"
    assert "atRisk" in str(refused.value)
