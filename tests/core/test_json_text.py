"""The one JSON body reader: its nesting check agrees with the parser and with a plain byte-by-byte reading, its
encoding check names what it refuses. (That it stays linear, however quotes and backslashes are arranged, is shown
on a running server by tests/fuzz/test_hostile_bodies.py: a quadratic scan of its 1 MB bodies takes minutes.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.core import json_text

pytestmark = pytest.mark.pure

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\ ', max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


def reference_depth(body: bytes) -> int:
    """The deepest bracket outside strings, read one byte at a time (a string left open runs to the end)."""
    deepest = current = 0
    in_string = escaped = False
    for byte in body:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            current += 1
            deepest = max(deepest, current)
        elif char in "]}":
            current -= 1
    return deepest


@settings(max_examples=300)
@given(json_values, st.integers(min_value=0, max_value=8))
def test_the_nesting_check_agrees_with_the_parsed_value(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert json_text.nested_deeper_than(body, limit) == (depth(value) > limit)


@settings(max_examples=500)
@given(st.binary(max_size=60).map(lambda raw: bytes(b"[]{}\"\\a"[byte % 7] for byte in raw)),
       st.integers(min_value=0, max_value=6))
def test_the_nesting_check_agrees_with_a_byte_by_byte_reading_of_any_text(body: bytes, limit: int) -> None:
    assert json_text.nested_deeper_than(body, limit) == (reference_depth(body) > limit)


@settings(max_examples=200)
@given(json_values)
def test_loads_reads_what_json_dumps_wrote(value: Any) -> None:
    assert json_text.loads(json.dumps(value).encode()) == value
    assert json_text.loads(b"\xef\xbb\xbf" + json.dumps(value, ensure_ascii=False).encode()) == value


@pytest.mark.parametrize("codec, name", [("utf-16-le", "UTF-16-LE"), ("utf-16-be", "UTF-16-BE"),
                                         ("utf-16", "UTF-16-LE"), ("utf-32-le", "UTF-32-LE"),
                                         ("utf-32-be", "UTF-32-BE"), ("utf-32", "UTF-32-LE")])
def test_wide_encodings_are_named_and_refused(codec: str, name: str) -> None:
    body = '{"a": [1]}'.encode(codec)
    assert json_text.wide_encoding(body) == name
    with pytest.raises(json_text.UnreadableJson, match=f"{name}.*UTF-8"):
        json_text.loads(body)


@pytest.mark.parametrize("body, words", [
    (b'{"a": "\xff"}', ["not valid UTF-8", "byte 0xff", "position 7"]),
    (b"[" * 65 + b"]" * 65, ["more than 64 levels deep"]),
    (b'{"a": ' + b"1" * 5_000 + b"}", ["thousands of digits"]),
    (b'{"a": tru}', ["not valid JSON", "line 1, column 7"]),
])
def test_refusals_say_what_was_wrong(body: bytes, words: list[str]) -> None:
    with pytest.raises(json_text.UnreadableJson) as refused:
        json_text.loads(body)
    for word in words:
        assert word in str(refused.value)


@pytest.mark.parametrize("value, found", [({"a": ["\ud800"]}, json_text.LONE_SURROGATE),
                                          ({"k\x00": 1}, json_text.NUL), ({"a": "fine ✓"}, None)])
def test_text_no_database_stores_is_found_anywhere(value: Any, found: str | None) -> None:
    assert json_text.unstorable_character(value) == found

