"""The v1 data codec: round trip, the published JSON Schema, and every rejection reason."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tianwang.codec import (
    FLAGS,
    PayloadError,
    Reading,
    decode_data,
    encode_data,
    format_ts,
    parse_ts,
)

MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
NODE_CHARS = "ABCXYZabcxyz0189_.-"


def _schema() -> dict[str, Any]:
    path = resources.files("tianwang").joinpath("data/schema/data-v1.schema.json")
    return json.loads(path.read_text("utf-8"))


_FILE_VALIDATOR: Callable[[Any], Any] = fastjsonschema.compile(_schema())


def _reading(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "seq": 7,
        "ts": "2024-01-01T00:00:00Z",
        "quantity": "NO2",
        "value": 41.5,
        "unit": "ug/m3",
        "flag": "N",
    }
    item.update(changes)
    return item


def _message(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "node": "yy-0001", "readings": [_reading()]}
    doc.update(changes)
    return doc


def _reason(payload: bytes) -> str:
    with pytest.raises(PayloadError) as info:
        decode_data(payload)
    return info.value.reason


def _same(a: Reading, b: Reading) -> bool:
    """Readings equal field by field, NaN equal to NaN."""
    both_nan = math.isnan(a.value) and math.isnan(b.value)
    return a._replace(value=0.0) == b._replace(value=0.0) and (both_nan or a.value == b.value)


node_ids = st.text(NODE_CHARS, min_size=1, max_size=64)
values = st.one_of(st.just(math.nan), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def readings_of(draw: st.DrawFn, node: str) -> Reading:
    return Reading(
        node=node,
        seq=draw(st.integers(0, 2**53 - 1)),
        ts_ms=draw(st.integers(0, MAX_TS_MS)),
        quantity=draw(st.text(min_size=1, max_size=32)),
        value=draw(values),
        unit=draw(st.text(min_size=1, max_size=16)),
        flag=draw(st.sampled_from(FLAGS)),
    )


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, list[Reading]]:
    node = draw(node_ids)
    return node, draw(st.lists(readings_of(node), min_size=1, max_size=20))


@given(messages())
def test_round_trip(message: tuple[str, list[Reading]]) -> None:
    node, readings = message
    got_node, got = decode_data(encode_data(node, readings))
    assert got_node == node
    assert len(got) == len(readings)
    for a, b in zip(got, readings, strict=True):
        assert _same(a, b), (a, b)


@given(messages())
def test_encoded_messages_validate_against_the_schema_file(
    message: tuple[str, list[Reading]],
) -> None:
    node, readings = message
    doc = orjson.loads(encode_data(node, readings))
    _FILE_VALIDATOR(doc)
    assert [item["value"] is None for item in doc["readings"]] == [
        math.isnan(r.value) for r in readings
    ]


def test_every_flag_round_trips() -> None:
    readings = [Reading("n1", i, 1_000 * i, "PM2.5", 1.0, "ug/m3", f) for i, f in enumerate(FLAGS)]
    _, got = decode_data(encode_data("n1", readings))
    assert [r.flag for r in got] == list(FLAGS)
    assert len(set(FLAGS)) == 8


def test_nan_is_encoded_as_null_and_decoded_as_nan() -> None:
    payload = encode_data("n1", [Reading("n1", 0, 0, "CO", math.nan, "mg/m3", "D")])
    assert orjson.loads(payload)["readings"][0]["value"] is None
    value = decode_data(payload)[1][0].value
    assert isinstance(value, float)
    assert math.isnan(value)


def test_integer_value_decodes_as_float() -> None:
    _, got = decode_data(orjson.dumps(_message(readings=[_reading(value=5)])))
    assert type(got[0].value) is float
    assert got[0].value == 5.0


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    payload = encode_data("n1", [Reading("n1", 1, 1_500, "O3", math.nan, "ug/m3", "N")])
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(payload))


@pytest.mark.parametrize("payload", [b"", b"{", b"\xff\xfe", b"{'v': 1}", b"NaN", b"[1,]"])
def test_not_json(payload: bytes) -> None:
    assert _reason(payload) == "not_json"


SCHEMA_VIOLATIONS: dict[str, Any] = {
    "array document": [],
    "number document": 1,
    "v 2": _message(v=2),
    "v string": _message(v="1"),
    "v true": _message(v=True),
    "missing v": {"node": "n1", "readings": [_reading()]},
    "missing node": {"v": 1, "readings": [_reading()]},
    "missing readings": {"v": 1, "node": "n1"},
    "extra top-level field": _message(extra=1),
    "empty readings": _message(readings=[]),
    "too many readings": _message(readings=[_reading(seq=i) for i in range(1001)]),
    "node with space": _message(node="yy 0001"),
    "node with slash": _message(node="yy/0001"),
    "empty node": _message(node=""),
    "node too long": _message(node="n" * 65),
    "node number": _message(node=1),
    "readings object": _message(readings=_reading()),
    "missing seq": _message(readings=[{k: v for k, v in _reading().items() if k != "seq"}]),
    "missing value": _message(readings=[{k: v for k, v in _reading().items() if k != "value"}]),
    "extra reading field": _message(readings=[_reading(lat=1.0)]),
    "negative seq": _message(readings=[_reading(seq=-1)]),
    "seq beyond 2^53-1": _message(readings=[_reading(seq=2**53)]),
    "fractional seq": _message(readings=[_reading(seq=1.5)]),
    "string seq": _message(readings=[_reading(seq="1")]),
    "bool seq": _message(readings=[_reading(seq=True)]),
    "string value": _message(readings=[_reading(value="41.5")]),
    "bool value": _message(readings=[_reading(value=True)]),
    "empty quantity": _message(readings=[_reading(quantity="")]),
    "quantity too long": _message(readings=[_reading(quantity="q" * 33)]),
    "empty unit": _message(readings=[_reading(unit="")]),
    "unit too long": _message(readings=[_reading(unit="u" * 17)]),
    "unknown flag": _message(readings=[_reading(flag="X")]),
    "lower-case flag": _message(readings=[_reading(flag="n")]),
    "null flag": _message(readings=[_reading(flag=None)]),
    "number ts": _message(readings=[_reading(ts=1704067200)]),
    "ts without offset": _message(readings=[_reading(ts="2024-01-01T00:00:00")]),
    "date-only ts": _message(readings=[_reading(ts="2024-01-01")]),
    "ts with space": _message(readings=[_reading(ts="2024-01-01 00:00:00Z")]),
    "ts with 7 fraction digits": _message(readings=[_reading(ts="2024-01-01T00:00:00.1234567Z")]),
    "ts with trailing newline": _message(readings=[_reading(ts="2024-01-01T00:00:00Z\n")]),
}


@pytest.mark.parametrize("doc", SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys())
def test_schema_violations(doc: Any) -> None:
    assert _reason(orjson.dumps(doc)) == "schema"


@pytest.mark.parametrize(
    "ts",
    [
        "2024-02-30T00:00:00Z",  # no such day
        "2023-02-29T00:00:00Z",  # not a leap year
        "2024-13-01T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:61:00Z",
        "2024-01-01T00:00:00+25:00",  # offset out of range
    ],
)
def test_bad_timestamp_that_passes_the_schema_pattern(ts: str) -> None:
    assert _reason(orjson.dumps(_message(readings=[_reading(ts=ts)]))) == "bad_timestamp"


def test_parse_ts_rejects_a_time_without_offset() -> None:
    # decode_data never gets here (the schema pattern catches it first), but parse_ts is public.
    with pytest.raises(PayloadError) as info:
        parse_ts("2024-01-01T00:00:00")
    assert info.value.reason == "bad_timestamp"


def test_decoded_readings_carry_the_message_node_and_fields() -> None:
    doc = _message(
        node="yy-0042",
        readings=[
            _reading(seq=1, ts="2024-01-01T08:00:00+08:00", value=None, flag="D"),
            _reading(seq=2, ts="2024-01-01T00:01:00Z", quantity="CO", unit="mg/m3"),
        ],
    )
    node, got = decode_data(orjson.dumps(doc))
    assert node == "yy-0042"
    assert got[0]._replace(value=0.0) == Reading(
        "yy-0042", 1, 1704067200000, "NO2", 0.0, "ug/m3", "D"
    )
    assert math.isnan(got[0].value)
    assert got[1] == Reading("yy-0042", 2, 1704067260000, "CO", 41.5, "mg/m3", "N")


@pytest.mark.parametrize(
    ("text", "ts_ms"),
    [
        ("2024-01-01T00:00:00Z", 1704067200000),
        ("2024-01-01T08:00:00+08:00", 1704067200000),
        ("2023-12-31T19:00:00-05:00", 1704067200000),
        ("2024-01-01T00:00:00+00:00", 1704067200000),
        ("2024-01-01T08:00:00.5+08:00", 1704067200500),
        ("2024-01-01T00:00:00.25Z", 1704067200250),
        ("2024-01-01T00:00:00.007Z", 1704067200007),
        ("2024-01-01T00:00:00.123456Z", 1704067200123),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_parse_ts(text: str, ts_ms: int) -> None:
    assert parse_ts(text) == ts_ms


@pytest.mark.parametrize(
    ("ts_ms", "text"),
    [
        (1704067200000, "2024-01-01T00:00:00Z"),
        (1704067200007, "2024-01-01T00:00:00.007Z"),
        (1704067200500, "2024-01-01T00:00:00.500Z"),
        (0, "1970-01-01T00:00:00Z"),
    ],
)
def test_format_ts(ts_ms: int, text: str) -> None:
    assert format_ts(ts_ms) == text


@given(st.integers(0, MAX_TS_MS))
def test_format_parse_round_trip(ts_ms: int) -> None:
    text = format_ts(ts_ms)
    assert text.endswith("Z")
    assert parse_ts(text) == ts_ms
