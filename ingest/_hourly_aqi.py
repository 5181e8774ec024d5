"""Hourly AQI per node (HJ 633 real-time report) from the ``sample`` measurement, written back
as the ``aqi`` measurement (docs/protocol.md "TSDB storage").

InfluxQL cannot interpolate IAQI breakpoints, so this job reads the hourly means from InfluxDB
and computes IAQI and AQI with the breakpoints of ``detect.hj633()`` (the edition in force on
the hour's local date). It follows HJ 633-2026 §5 (the real-time report): six 1-hour means,
PM10 and PM2.5 indexed with the 24-hour breakpoints. For hours under HJ 633-2012 the same six
1-hour means are used with the 2012 breakpoints: the 2012 report's two moving-average
indicators (PM 24-h, O3 8-h) are not included. A 1-hour mean counts only with 45 minutes of
valid (flag N) readings (GB 3095-2012 table 4); with a pollutant missing the AQI is written
only when the edition allows publishing it (2026 §5.3: above 100), the IAQIs always.

Each run recomputes the last ``hours_back`` whole hours, so late readings (an outbox replay)
are taken in; a point is identified by node and hour, so writing it again overwrites it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from detect import hj633
from ingest._influx import Sink, SinkError
from ingest._lines import AQI_MEASUREMENT, SAMPLE_MEASUREMENT, node_tags, point_line
from tianwang.registry import Node, Registry
from tianwang.standards import aqi_level

# (quantity, breakpoint row) of the real-time report (HJ 633-2026 §5).
INDICATORS: tuple[tuple[str, str], ...] = (
    ("SO2", "1h"), ("NO2", "1h"), ("CO", "1h"), ("O3", "1h"), ("PM10", "24h"), ("PM2.5", "24h"),
)  # fmt: skip
MIN_COVERAGE_S = 45 * 60  # an hourly mean needs 45 minutes of sampling
HOUR_S = 3600


class InfluxQLSource(Protocol):
    async def query(self, influxql: str) -> dict: ...


def _statement(quantity: str, start_ms: int, end_ms: int) -> str:
    return (
        f'SELECT mean("{quantity}") AS "mean", count("{quantity}") AS "n" '
        f'FROM "{SAMPLE_MEASUREMENT}" WHERE "{quantity}_flag" = \'N\' '
        f"AND time >= {start_ms}ms AND time < {end_ms}ms "
        'GROUP BY time(1h), "node" fill(none)'
    )


def _epoch_s(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp())


class HourlyAqi:
    """``await HourlyAqi(source, sink, registry).update(now_s)`` writes the ``aqi`` points of
    the last ``hours_back`` whole hours; ``hours(first_s, end_s)`` those of a range."""

    def __init__(
        self, source: InfluxQLSource, sink: Sink, registry: Registry, hours_back: int = 3
    ) -> None:
        self.source = source
        self.sink = sink
        self.registry = registry
        self.hours_back = hours_back
        self.zone = ZoneInfo(registry.timezone)

    async def update(self, now_s: float) -> int:
        end = int(now_s) // HOUR_S * HOUR_S
        return await self.hours(end - self.hours_back * HOUR_S, end)

    async def hours(self, first_s: float, end_s: float) -> int:
        """Compute and write every whole hour in [first_s, end_s); returns points written."""
        start = int(first_s) // HOUR_S * HOUR_S
        end = int(end_s) // HOUR_S * HOUR_S
        if end <= start:
            return 0
        means = await self._hourly_means(start * 1000, end * 1000)
        lines = [
            line
            for (node_id, hour), concs in sorted(means.items())
            if (line := self._line(self.registry.nodes[node_id], hour, concs)) is not None
        ]
        await self.sink.write(lines)
        return len(lines)

    async def _hourly_means(self, start_ms: int, end_ms: int) -> dict[tuple[str, int], dict]:
        """(node, hour start s) -> quantity -> valid hourly mean."""
        query = ";".join(_statement(q, start_ms, end_ms) for q, _ in INDICATORS)
        answer = await self.source.query(query)
        out: dict[tuple[str, int], dict[str, float]] = {}
        for (quantity, _), result in zip(INDICATORS, answer["results"], strict=True):
            if "error" in result:
                raise SinkError(f"hourly means of {quantity}: {result['error']}")
            for series in result.get("series", []):
                node = self.registry.nodes.get(series["tags"]["node"])
                if node is None:
                    continue
                for stamp, mean, n in series["values"]:
                    if mean is not None and n * node.sampling_s >= MIN_COVERAGE_S:
                        out.setdefault((node.id, _epoch_s(stamp)), {})[quantity] = mean
        return out

    def _line(self, node: Node, hour_s: int, concs: dict[str, float]) -> str | None:
        day = datetime.fromtimestamp(hour_s, self.zone).date()
        edition = hj633().edition(day)
        iaqi: dict[str, float] = {}
        for quantity, row in INDICATORS:
            if quantity in concs:
                value = float(edition.iaqi(quantity, row, np.asarray([concs[quantity]]))[0])
                if np.isfinite(value):
                    iaqi[quantity] = value
        if not iaqi:
            return None
        aqi = max(max(iaqi.values()), float(edition.aqi_min))
        complete = len(iaqi) == len(INDICATORS)
        limit = edition.partial_publish_above
        published = complete or limit is None or aqi > limit
        primary = ",".join(q for q, v in iaqi.items() if v == aqi) if aqi > 50 else ""
        fields: dict[str, float | int | bool | str | None] = {
            f"iaqi_{q}": int(v) for q, v in iaqi.items()
        }
        fields.update({
            "aqi": int(aqi) if published else None,
            "level": aqi_level(aqi) if published else None,
            "primary": primary, "complete": complete, "edition": edition.name,
            "lat": float(node.lat), "lon": float(node.lon),
        })  # fmt: skip
        return point_line(AQI_MEASUREMENT, node_tags(node), fields, hour_s * 1000)
