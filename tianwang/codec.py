"""Payload codec for data messages, v1 (JSON; schema in data/schema/data-v1.schema.json).

The JSON Schema is the published contract and the validator is compiled from it, so the
code and the document cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache, partial
from importlib import resources
from typing import Any, NamedTuple

import fastjsonschema
import orjson

VERSION = 1
FLAGS = ("N", "F", "M", "S", "D", "C", "T", "B")


class PayloadError(ValueError):
    """A payload that cannot be accepted; ``reason`` is a short, countable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Reading(NamedTuple):
    """One sample of one quantity at one node. ``value`` is NaN when the sensor gave none."""

    node: str
    seq: int
    ts_ms: int
    quantity: str
    value: float
    unit: str
    flag: str


@cache
def schema(name: str) -> dict[str, Any]:
    """A published JSON Schema by name: ``data-v1`` or ``status-v1``."""
    path = resources.files("tianwang").joinpath(f"data/schema/{name}.schema.json")
    return json.loads(path.read_text("utf-8"))


def data_schema() -> dict[str, Any]:
    return schema("data-v1")


@cache
def _validator(name: str = "data-v1") -> Any:
    return fastjsonschema.compile(schema(name))


def _load(payload: bytes, schema_name: str) -> Any:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("not_json", str(exc)) from exc
    if schema_name == "data-v1" and _plainly_valid_data(doc):
        return doc  # the common case, checked faster; it is never looser than the schema
    try:
        _validator(schema_name)(doc)
    except fastjsonschema.JsonSchemaException as exc:
        raise PayloadError("schema", exc.message) from exc
    return doc


def _anchored(pattern: str) -> re.Pattern[str]:
    """A schema pattern for ``search``; a final ``$`` as ``\\Z``: Python's ``$`` also matches
    before a trailing newline, which the schema does not allow."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


@cache
def _data_rules() -> tuple[Any, ...]:
    """What ``_plainly_valid_data`` checks, read from the data-v1 schema itself."""
    doc = schema("data-v1")
    item = doc["$defs"]["reading"]["properties"]
    limits = doc["properties"]["readings"]
    return (
        frozenset(doc["properties"]), frozenset(doc["$defs"]["reading"]["properties"]),
        _anchored(doc["properties"]["node"]["pattern"]), _anchored(item["ts"]["pattern"]),
        limits["minItems"], limits["maxItems"], item["seq"]["maximum"],
        item["quantity"]["maxLength"], item["unit"]["maxLength"], frozenset(item["flag"]["enum"]),
    )  # fmt: skip


def _plainly_valid_data(doc: Any) -> bool:
    """True only for a data-v1 message the schema accepts, checked with exact types (an
    ``int`` seq, a ``float`` or ``int`` value...) at ~1/3 of the validator's cost per reading
    on the ingest hot path. False means "ask the schema": it decides and names the error."""
    keys, item_keys, node_re, ts_re, least, most, seq_max, q_max, unit_max, flags = _data_rules()
    if type(doc) is not dict or doc.keys() != keys or type(doc["v"]) is not int or doc["v"] != 1:
        return False
    node, readings = doc["node"], doc["readings"]
    if type(node) is not str or not node_re.search(node) or type(readings) is not list:
        return False
    if not least <= len(readings) <= most:
        return False
    for item in readings:
        if type(item) is not dict or item.keys() != item_keys:
            return False
        seq, ts, quantity, value = item["seq"], item["ts"], item["quantity"], item["value"]
        unit, flag = item["unit"], item["flag"]
        if (
            type(seq) is not int
            or not 0 <= seq <= seq_max
            or type(ts) is not str
            or not ts_re.search(ts)
            or type(quantity) is not str
            or not 0 < len(quantity) <= q_max
            or type(unit) is not str
            or not 0 < len(unit) <= unit_max
            or type(flag) is not str
            or flag not in flags
            or (value is not None and type(value) is not float and type(value) is not int)
        ):
            return False  # fmt: skip
    return True


def format_ts(ts_ms: int) -> str:
    """RFC 3339 in UTC with a ``Z``; milliseconds only when there are any."""
    seconds, millis = divmod(ts_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"


def parse_ts(text: str) -> int:
    """RFC 3339 (any offset) to epoch milliseconds UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError("bad_timestamp", f"{text!r} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise PayloadError("bad_timestamp", f"{text!r} has no UTC offset")
    return round(moment.timestamp() * 1000)


def encode_data(node: str, readings: Iterable[Reading]) -> bytes:
    """Encode readings of one node as one v1 data message."""
    items = [
        {
            "seq": r.seq,
            "ts": format_ts(r.ts_ms),
            "quantity": r.quantity,
            "value": None if math.isnan(r.value) else r.value,
            "unit": r.unit,
            "flag": r.flag,
        }
        for r in readings
    ]
    return orjson.dumps({"v": VERSION, "node": node, "readings": items})


def decode_data(payload: bytes) -> tuple[str, list[Reading]]:
    """Decode and validate a v1 data message; raises PayloadError with a reason code."""
    doc = _load(payload, "data-v1")
    node: str = doc["node"]
    stamps: dict[str, int] = {}  # readings of one message usually share a sample time
    readings = []
    new = _new_reading
    for item in doc["readings"]:
        text = item["ts"]
        ts_ms = stamps.get(text)
        if ts_ms is None:
            ts_ms = stamps[text] = parse_ts(text)
        value = item["value"]
        seq = item["seq"]
        readings.append(new((
            node,
            seq if type(seq) is int else int(seq),  # the schema's integer admits 2.0 and 1e2
            ts_ms,
            item["quantity"],
            math.nan if value is None else float(value),
            item["unit"],
            item["flag"],
        )))  # fmt: skip
    return node, readings


# ``Reading(*fields)`` without NamedTuple's Python-level ``__new__`` (the ingest hot path
# builds ~50k a second): the same object, from a tuple of the fields in order.
_new_reading: Callable[[tuple[Any, ...]], Reading] = partial(tuple.__new__, Reading)


class Status(NamedTuple):
    """A node's retained state; ``ts_ms`` is None in the last will."""

    node: str
    state: str
    ts_ms: int | None


def encode_status(status: Status) -> bytes:
    ts = None if status.ts_ms is None else format_ts(status.ts_ms)
    return orjson.dumps({"v": VERSION, "node": status.node, "state": status.state, "ts": ts})


def decode_status(payload: bytes) -> Status:
    doc = _load(payload, "status-v1")
    return Status(doc["node"], doc["state"], None if doc["ts"] is None else parse_ts(doc["ts"]))


class Health(NamedTuple):
    """A node's periodic health report (data/schema/health-v1.schema.json); None where the
    node could not read a value."""

    node: str
    ts_ms: int
    uptime_s: float
    outbox_depth: int
    dropped: int
    readings_published: int
    reconnects: int
    driver_errors: int
    clock_offset_s: float | None
    clock_synced: bool | None
    cpu_temp_c: float | None
    sampling_s: float


def decode_health(payload: bytes) -> Health:
    doc = _load(payload, "health-v1")
    return Health(
        doc["node"], parse_ts(doc["ts"]), float(doc["uptime_s"]), int(doc["outbox_depth"]),
        int(doc["dropped"]), int(doc["readings_published"]), int(doc["reconnects"]),
        int(doc["driver_errors"]), doc["clock_offset_s"], doc["clock_synced"],
        doc["cpu_temp_c"], float(doc["sampling_s"]),
    )  # fmt: skip
