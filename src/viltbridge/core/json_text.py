"""The one reading of a JSON body: UTF-8 only, nested at most `MAX_DEPTH` levels, refused with a message a person
can act on; every check linear in the body, so a hostile body costs no more than reading it.

Python's own `json.loads(bytes)` guesses UTF-16 and UTF-32 too and recurses once per level of nesting: a body
another encoding smuggles past a byte-level check, or one nested thousands deep, ends in a `RecursionError`
instead of a refusal. Everything that reads a request body (the LMS contract, the OAuth token endpoint, provider
webhooks) is checked here first.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

# No vILT request or provider webhook nests more than about six levels.
MAX_DEPTH = 64

# A JSON string from its opening quote to its closing one, or to the end of the body when it is never closed.
# Possessive quantifiers and the `\Z` alternative mean a match, once started, never fails and never backtracks:
# one pass over the body however its quotes and backslashes are arranged (a plain `"(?:[^"\\]|\\.)*"` retries
# from every quote of an unterminated string, quadratic in the body).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]++")
# Openers become +1 and closers -1 (0xff read as a signed byte), so the running sum is the nesting depth.
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")

# RFC 8259 §8.1: JSON between systems is UTF-8. These are the other encodings RFC 4627 let a reader detect, by their
# byte order mark or by where the NUL bytes of an ASCII first character fall.
_WIDE_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "UTF-32-BE"), (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\xfe\xff", "UTF-16-BE"), (b"\xff\xfe", "UTF-16-LE"),
)


class UnreadableJson(ValueError):
    """A body that is not JSON this server reads; the message says what was wrong and what to send instead."""


def wide_encoding(body: bytes) -> str | None:
    """The UTF-16 or UTF-32 flavour a body is written in (by its byte order mark or NUL pattern), else None."""
    for mark, name in _WIDE_ENCODINGS:
        if body.startswith(mark):
            return name
    head = body[:4]
    if len(head) == 4:
        if head[:3] == b"\x00\x00\x00" and head[3]:
            return "UTF-32-BE"
        if head[0] and head[1:] == b"\x00\x00\x00":
            return "UTF-32-LE"
    if len(head) >= 2:
        if head[0] == 0 and head[1]:
            return "UTF-16-BE"
        if head[0] and head[1] == 0:
            return "UTF-16-LE"
    return None


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether a JSON text opens more than `limit` arrays/objects inside each other (brackets in strings ignored).

    Linear in the body and run in C: strings removed in one regex pass, everything but brackets in another, the
    deepest point of the running depth found by `accumulate`."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case, decided without scanning: it cannot nest deeper than it has openers
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    return max(accumulate(array("b", brackets.translate(_DEPTH_STEP))), default=0) > limit


def check(body: bytes, max_depth: int = MAX_DEPTH) -> str:
    """Refuse, before anything parses it, a body that is not UTF-8 or nests deeper than `max_depth`; returns the
    body's text."""
    encoding = wide_encoding(body)
    if encoding is not None:
        raise UnreadableJson(f"The body is encoded as {encoding}; send JSON encoded as UTF-8 (RFC 8259).")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise UnreadableJson(describe_undecodable(bad)) from None
    if nested_deeper_than(body, max_depth):
        raise UnreadableJson(f"The request body nests JSON arrays or objects more than {max_depth} levels deep; no "
                             "vILT request needs more than four. Send only the documented fields.")
    return text


def loads(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of a body, after `check`; any failure is an `UnreadableJson` saying what was wrong."""
    text = check(body, max_depth)
    try:
        return json.loads(text[1:] if text.startswith("\ufeff") else text)
    except (ValueError, RecursionError) as exc:
        raise UnreadableJson(describe_invalid_json(exc)) from None


def describe_undecodable(bad: UnicodeDecodeError) -> str:
    return (f"The body is not valid {bad.encoding.upper()} text (byte 0x{bad.object[bad.start]:02x} at position "
            f"{bad.start}). Send the JSON encoded as UTF-8.")


def describe_invalid_json(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
    if isinstance(exc, RecursionError):
        return "The body nests JSON too deeply to read. Send only the documented fields."
    if "digits" in str(exc):  # Python refuses to convert integers longer than sys.get_int_max_str_digits()
        return "The body holds a number with thousands of digits; no vILT field takes one. Send only the documented " \
               "fields."
    return f"The body is not valid JSON ({exc}). Send the JSON encoded as UTF-8."


# JSON may spell characters Python accepts but no database stores: an unpaired UTF-16 surrogate ("\ud800") in any
# text column, a NUL ("\u0000") in PostgreSQL's.
_LONE_SURROGATE = re.compile("[\\ud800-\\udfff]")
LONE_SURROGATE = "an unpaired UTF-16 surrogate"
NUL = "a NUL character"


def unstorable_character(value: Any, *, nul: bool = True) -> str | None:
    """`LONE_SURROGATE` or (unless `nul` is off) `NUL` when a string anywhere in a parsed JSON value (keys included)
    holds one, else None."""
    # Iterative, not recursive: a value may nest as deep as MAX_DEPTH allows.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return LONE_SURROGATE
            if nul and "\x00" in item:
                return NUL
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def loads_storable(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`loads`, refusing a value that holds text no database can store (what a kept provider delivery must not)."""
    value = loads(body, max_depth)
    found = unstorable_character(value)
    if found is not None:
        raise UnreadableJson(f"The body holds {found} (escaped in the JSON), which cannot be stored.")
    return value
