"""InfluxDB line protocol for readings (measurement and names: docs/protocol.md)."""

from __future__ import annotations

import math

from tianwang.codec import Reading
from tianwang.registry import Node

MEASUREMENT = "reading"
_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


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
