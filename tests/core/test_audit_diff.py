"""An audit entry's before and after as lines a person reads: only what differs, nested fields dotted, secrets only
said to be set, changed or removed."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from viltbridge.core.audit_diff import FieldChange, changes, flatten, mark_changed_secrets
from viltbridge.core.redaction import redact

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=3),
                           max_leaves=10)
records = st.dictionaries(st.text("xyz", min_size=1, max_size=3), json_values, max_size=4)
# The machine running the suite is shared: slow data generation is not a failure of the code.
PATIENT = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_nested_records_become_dotted_fields() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": [{"g": True}]}) == {
        "a.b": 1, "a.c.d": "x", "e": [1, 2], "f.0.g": True}


def test_only_the_fields_that_differ_are_listed_old_to_new() -> None:
    before = {"roles": ["a"], "name": "Ada", "settings": {"region": "eu", "size": 2}}
    after = {"roles": ["a", "b"], "name": "Ada", "settings": {"region": "us"}, "active": False}
    assert changes(before, after) == [
        FieldChange("roles", "a", "a, b"), FieldChange("settings.region", "eu", "us"),
        FieldChange("active", "—", "no"), FieldChange("settings.size", "2", "—")]


def test_a_secret_is_said_to_change_only_when_it_did() -> None:
    before = {"settings": {"api_key": "old-key", "region": "eu"}}
    kept = mark_changed_secrets(before, before, redact(before))
    assert changes(redact(before), kept) == []  # the same secret, redacted twice: no change to report
    after = {"settings": {"api_key": "new-key", "region": "eu"}}
    marked = mark_changed_secrets(before, after, redact(after))
    [line] = changes(redact(before), marked)
    assert line.field == "settings.api_key" and line.secret and line.secret_note == "secret changed"
    assert "new-key" not in str(marked) and "old-key" not in str(marked)
    added = {line.field: line for line in changes(None, redact(after))}
    assert added["settings.api_key"].secret_note == "secret set" and added["settings.region"].after == "eu"
    [removed] = changes(redact(after), {"settings": {"region": "eu"}})
    assert removed.secret_note == "secret removed"


@PATIENT
@given(records)
def test_a_record_compared_with_itself_has_no_changes(record: dict[str, Any]) -> None:
    assert changes(record, record) == []


@PATIENT
@given(records, records)
def test_every_field_of_either_side_that_differs_is_listed_once(before: dict[str, Any],
                                                               after: dict[str, Any]) -> None:
    listed = [change.field for change in changes(before, after)]
    old, new = flatten(before), flatten(after)
    assert len(listed) == len(set(listed))
    assert set(listed) == {field for field in {*old, *new} if old.get(field, "—") != new.get(field, "—")
                           or (field in old) != (field in new)}
