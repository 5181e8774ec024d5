"""InfluxDB line protocol of every measurement ingest writes (docs/protocol.md "TSDB
storage"): ``sample`` (readings), ``node_state`` (position and liveness of each node),
``node_health`` (the nodes' health reports), ``ingest`` and ``ingest_rejected`` (the
worker's own counters) and ``aqi`` (hourly AQI, ingest/_hourly_aqi.py)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from tianwang.codec import Health, Reading
from tianwang.registry import Node

MEASUREMENT = "reading"  # one point per reading: the ingest service's until it moves to "sample"
SAMPLE_MEASUREMENT = "sample"  # one point per node and sample time, every quantity a field
NODE_STATE_MEASUREMENT = "node_state"
NODE_HEALTH_MEASUREMENT = "node_health"
INGEST_MEASUREMENT = "ingest"
INGEST_REJECTED_MEASUREMENT = "ingest_rejected"
AQI_MEASUREMENT = "aqi"
_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _tag(value: str) -> str:
    return value.translate(_TAG_ESCAPE)


def node_tags(node: Node) -> str:
    p = node.place
    return (
        f"county={_tag(p.county)},township={_tag(p.township)},village={_tag(p.village)},"
        f"node={_tag(p.node)}"
    )


def reading_line(tags: str, reading: Reading) -> str:
    """One point per reading, timestamp in ms. A missing value writes no ``value`` field."""
    value = "" if math.isnan(reading.value) else f"value={reading.value!r},"
    return (
        f"{MEASUREMENT},{tags},quantity={_tag(reading.quantity)},unit={_tag(reading.unit)} "
        f'{value}seq={reading.seq}i,flag="{reading.flag}" {reading.ts_ms}'
    )


_CACHE_MAX = 1024  # quantities and flags are few; a flood of odd names is not cached
# Per quantity: (value key, "<key>_flag=", "<key>_seq="); per flag: its quoted string field.
_FIELD_KEYS: dict[str, tuple[str, str, str]] = {}
_FLAG_VALUES: dict[str, str] = {}


def _field_keys(quantity: str) -> tuple[str, str, str]:
    key = quantity.translate(_TAG_ESCAPE)  # field keys escape the same three as tag keys
    keys = (f"{key}=", f",{key}_flag=", f",{key}_seq=")
    if len(_FIELD_KEYS) < _CACHE_MAX:
        _FIELD_KEYS[quantity] = keys
    return keys


def _flag_value(flag: str) -> str:
    value = f'"{flag.translate(_STRING_ESCAPE)}"'
    if len(_FLAG_VALUES) < _CACHE_MAX:
        _FLAG_VALUES[flag] = value
    return value


def sample_lines(tags: str, readings: Iterable[Reading]) -> list[str]:
    """One ``sample`` point per sample time of ONE node (``tags`` from :func:`node_tags`).

    Each reading gives the fields ``<q>`` (float; left out when the value is NaN or infinite),
    ``<q>_flag`` (string) and ``<q>_seq`` (integer). Timestamp in ms. Lines come in order of
    first appearance of their timestamp; a quantity repeated at one time keeps its last reading.
    """
    keys_of = _FIELD_KEYS
    flags = _FLAG_VALUES
    isfinite = math.isfinite
    by_ts: dict[int, dict[str, str]] = {}
    for reading in readings:
        quantity = reading.quantity
        keys = keys_of.get(quantity) or _field_keys(quantity)
        flag = flags.get(reading.flag) or _flag_value(reading.flag)
        value = reading.value
        if isfinite(value):
            field = f"{keys[0]}{value!r}{keys[1]}{flag}{keys[2]}{reading.seq}i"
        else:
            field = f"{keys[1][1:]}{flag}{keys[2]}{reading.seq}i"
        fields = by_ts.get(reading.ts_ms)
        if fields is None:
            by_ts[reading.ts_ms] = {quantity: field}
        else:
            fields[quantity] = field
    head = f"{SAMPLE_MEASUREMENT},{tags} "
    return [f"{head}{','.join(fields.values())} {ts}" for ts, fields in by_ts.items()]


FieldValue = float | int | bool | str | None


def _field_value(value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return f'"{value.translate(_STRING_ESCAPE)}"'


def point_line(measurement: str, tags: str, fields: Mapping[str, FieldValue], ts_ms: int) -> str:
    """One point; ``tags`` already escaped (``node_tags``, or ``""``). A field that is None or a
    float that is not finite is left out; a point needs at least one field."""
    body = ",".join(
        f"{key.translate(_TAG_ESCAPE)}={_field_value(value)}"
        for key, value in fields.items()
        if value is not None and not (isinstance(value, float) and not math.isfinite(value))
    )
    if not body:
        raise ValueError(f"a {measurement} point without fields")
    head = f"{measurement},{tags}" if tags else measurement
    return f"{head} {body} {ts_ms}"


def node_state_line(
    node: Node, tags: str, ts_ms: int, *, offline: bool, silent_s: float, said: str | None
) -> str:
    """Where a node is and whether ingest hears it: ``lat``, ``lon`` (from the grid file),
    ``offline`` (1 while the deadman counts it silent, else 0), ``silent_s`` (since its last
    accepted message, or since ingest started) and ``said`` (its retained status)."""
    return point_line(NODE_STATE_MEASUREMENT, tags, {
        "lat": float(node.lat), "lon": float(node.lon), "offline": int(offline),
        "silent_s": round(silent_s, 3), "said": said,
    }, ts_ms)  # fmt: skip


def node_health_line(tags: str, health: Health) -> str:
    """A health report, at the report's own time; every number of it a field."""
    fields = health._asdict()
    del fields["node"], fields["ts_ms"]
    return point_line(NODE_HEALTH_MEASUREMENT, tags, fields, health.ts_ms)


def worker_tags(worker: str) -> str:
    return f"worker={_tag(worker)}"
