"""HourlyAqi on a real InfluxDB: hourly means read back from ``sample``, IAQI and AQI per
HJ 633 (the edition of the hour's date), the validity and publishing rules, written as ``aqi``.
Expected IAQIs are worked out by hand from HJ 633 Table 1 in the comments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from ingest import AQI_MEASUREMENT, HourlyAqi, InfluxV1Sink, node_tags, sample_lines
from tests.ingest.helpers import influxql
from tianwang.codec import Reading
from tianwang.registry import Registry, parse_registry
from tianwang.services import InfluxDB

# 2026-06-01 02:00 UTC (HJ 633-2026 in force) and 2020-06-01 02:00 UTC (HJ 633-2012).
HOUR_2026 = int(datetime(2026, 6, 1, 2, tzinfo=UTC).timestamp())
HOUR_2012 = int(datetime(2020, 6, 1, 2, tzinfo=UTC).timestamp())
SIX = {"PM2.5": 120.0, "PM10": 100.0, "SO2": 20.0, "NO2": 40.0, "O3": 90.0, "CO": 0.8}


def registry() -> Registry:
    def node(node_id: str, quantities: list[str], lat: float) -> dict[str, Any]:
        return {"id": node_id, "lat": lat, "lon": 118.1, "sampling_s": 60,
                "quantities": quantities}  # fmt: skip

    return parse_registry({
        "county": {"id": "tc", "name": "test county"},
        "townships": [{"id": "t1", "villages": [{
            "id": "v1", "officer": {"id": "o1", "name": "officer"},
            "nodes": [node("full", list(SIX), 36.1), node("clean", ["PM2.5", "NO2"], 36.2),
                      node("dirty", ["PM2.5", "NO2"], 36.3), node("short", ["PM2.5"], 36.4)],
        }]}],
    })  # fmt: skip


def readings(node: str, hour_s: int, values: dict[str, float], minutes: int = 60,
             noise: float = 0.0) -> list[Reading]:  # fmt: skip
    """One sample a minute; with ``noise``, every other minute +noise and the next -noise
    (the same mean), and one extra reading of 1000 flagged F each minute it is odd."""
    out, seq = [], 0
    for minute in range(minutes):
        ts = (hour_s + minute * 60) * 1000
        for quantity, value in values.items():
            seq += 1
            delta = noise if minute % 2 else -noise
            out.append(Reading(node, seq, ts, quantity, value + delta, "", "N"))
        if noise and minute % 2:  # a flagged outlier at its own time: must not count
            seq += 1
            out.append(Reading(node, seq, ts + 30_000, "PM2.5", 1000.0, "", "F"))
    return out


async def fill_and_compute(url: str, county: Registry) -> int:
    async with InfluxV1Sink(url) as sink:
        batches = {
            "full": readings("full", HOUR_2026, SIX, noise=4.0) + readings("full", HOUR_2012, SIX),
            "clean": readings("clean", HOUR_2026, {"PM2.5": 50.0, "NO2": 40.0}),
            "dirty": readings("dirty", HOUR_2026, {"PM2.5": 120.0, "NO2": 40.0}),
            "short": readings("short", HOUR_2026, {"PM2.5": 300.0}, minutes=44),
        }
        for node, rs in batches.items():
            await sink.write(sample_lines(node_tags(county.nodes[node]), rs))
        job = HourlyAqi(sink, sink, county)
        written = await job.hours(HOUR_2026, HOUR_2026 + 3600)
        written += await job.update(HOUR_2012 + 3600 + 10)  # the 3 hours before: 02:00 has data
        return written


def aqi_points(url: str) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for series in influxql(url, f'SELECT * FROM "{AQI_MEASUREMENT}" GROUP BY "node"'):
        for row in series["values"]:
            point = dict(zip(series["columns"], row, strict=True))
            out[(series["tags"]["node"], point.pop("time") // 1000)] = {
                k: v for k, v in point.items() if v is not None
            }
    return out


def test_hourly_aqi_follows_hj633(influxdb: InfluxDB) -> None:
    county = registry()
    assert asyncio.run(fill_and_compute(influxdb.url, county)) == 4
    points = aqi_points(influxdb.url)
    # "short" has 44 minutes of readings: no hourly mean, no point.
    assert set(points) == {("full", HOUR_2026), ("clean", HOUR_2026), ("dirty", HOUR_2026),
                           ("full", HOUR_2012)}  # fmt: skip
    full = points[("full", HOUR_2026)]
    # HJ 633-2026, PM with the 24-h rows: PM2.5 120 -> 150 + 50/35*5 = 157.1 -> 158;
    # PM10 100 -> 50 + 50/70*50 = 85.7 -> 86; SO2 20 -> 6.7 -> 7; NO2 40 -> 20; CO 0.8 -> 8;
    # O3 90 -> 28.1 -> 29. The flagged 1000s are left out of the PM2.5 mean.
    assert {k: full[k] for k in full if k.startswith("iaqi_")} == {
        "iaqi_PM2.5": 158, "iaqi_PM10": 86, "iaqi_SO2": 7, "iaqi_NO2": 20, "iaqi_CO": 8,
        "iaqi_O3": 29,
    }  # fmt: skip
    assert (full["aqi"], full["level"], full["primary"]) == (158, 4, "PM2.5")
    assert full["complete"] is True and full["edition"] == "HJ 633-2026"
    assert (full["lat"], full["lon"]) == (36.1, 118.1)
    # HJ 633-2012: PM10 100 -> 50 + 50/100*50 = 75; the rest as above.
    old = points[("full", HOUR_2012)]
    assert (old["iaqi_PM10"], old["aqi"], old["edition"]) == (75, 158, "HJ 633-2012")
    # Two of six pollutants (2026 §5.3): AQI 80 is not published, AQI 158 is.
    clean, dirty = points[("clean", HOUR_2026)], points[("dirty", HOUR_2026)]
    assert "aqi" not in clean and "level" not in clean and clean["iaqi_PM2.5"] == 80
    assert clean["complete"] is False
    assert (dirty["aqi"], dirty["level"], dirty["complete"]) == (158, 4, False)


def test_recomputing_an_hour_overwrites_its_point(influxdb: InfluxDB) -> None:
    county = registry()
    asyncio.run(fill_and_compute(influxdb.url, county))

    async def again() -> None:
        async with InfluxV1Sink(influxdb.url) as sink:
            await HourlyAqi(sink, sink, county).hours(HOUR_2026, HOUR_2026 + 3600)

    asyncio.run(again())
    series = influxql(influxdb.url, f'SELECT count("aqi") FROM "{AQI_MEASUREMENT}"')
    assert series[0]["values"][0][1] == 3  # full (2026, 2012) and dirty, once each
