"""Payload codec for data messages, v1 (JSON; schema in data/schema/data-v1.schema.json).

The JSON Schema is the published contract and the validator is compiled from it, so the
code and the document cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
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
    try:
        _validator(schema_name)(doc)
    except fastjsonschema.JsonSchemaException as exc:
        raise PayloadError("schema", exc.message) from exc
    return doc


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
    for item in doc["readings"]:
        text = item["ts"]
        ts_ms = stamps.get(text)
        if ts_ms is None:
            ts_ms = stamps[text] = parse_ts(text)
        value = item["value"]
        readings.append(
            Reading(
                node,
                item["seq"],
                ts_ms,
                item["quantity"],
                math.nan if value is None else float(value),
                item["unit"],
                item["flag"],
            )
        )
    return node, readings


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
