"""Samples to write and ways to read them back from the real databases."""

from __future__ import annotations

import math

import httpx

from ingest import sample_lines
from tianwang.codec import Reading

T0 = 1795766400000
QUANTITIES = ("PM2.5", "PM10", "SO2", "NO2", "O3", "CO")
NODES = ("yy-0001", "yy-0002", "yy 0003,x=y")


def tags(node: str) -> str:
    escaped = node.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")
    return f"county=yiyuan,township=nanma,village=xili,node={escaped}"


def readings(node: str, first: int, count: int) -> list[Reading]:
    """``count`` samples from sample number ``first``, one a minute, six quantities each;
    every 7th PM10 missing (NaN), every 5th sample flagged "F"."""
    out = []
    for i in range(first, first + count):
        for k, quantity in enumerate(QUANTITIES):
            value = math.nan if quantity == "PM10" and i % 7 == 0 else 10.0 + i * 0.25 + k
            flag = "F" if i % 5 == 0 else "N"
            out.append(Reading(node, i, T0 + i * 60_000, quantity, value, "ug/m3", flag))
    return out


def lines(node: str, first: int, count: int) -> list[str]:
    return sample_lines(tags(node), readings(node, first, count))


def expected_fields(rs: list[Reading]) -> dict[tuple[str, int], dict[str, object]]:
    """(node, ts) -> fields, as the ``sample`` point should hold them."""
    out: dict[tuple[str, int], dict[str, object]] = {}
    for r in rs:
        fields = out.setdefault((r.node, r.ts_ms), {})
        if not math.isnan(r.value):
            fields[r.quantity] = r.value
        fields[f"{r.quantity}_flag"] = r.flag
        fields[f"{r.quantity}_seq"] = r.seq
    return out


def influxql(url: str, query: str, database: str = "tianwang") -> list[dict]:
    """Series of an InfluxQL query, timestamps in ms."""
    response = httpx.post(
        f"{url}/query", params={"db": database, "epoch": "ms"}, data={"q": query}, timeout=30
    )
    response.raise_for_status()
    result = response.json()["results"][0]
    assert "error" not in result, result
    return result.get("series", [])


def stored_samples(url: str) -> dict[tuple[str, int], dict[str, object]]:
    """Every ``sample`` point in InfluxDB as (node, ts) -> fields (nulls left out)."""
    out: dict[tuple[str, int], dict[str, object]] = {}
    for series in influxql(url, 'SELECT * FROM "sample"'):
        columns = series["columns"]
        for row in series["values"]:
            point = dict(zip(columns, row, strict=True))
            key = (point.pop("node"), point.pop("time"))
            for tag in ("county", "township", "village"):
                point.pop(tag)
            assert key not in out
            out[key] = {k: v for k, v in point.items() if v is not None}
    return out


def seq_counts(url: str, quantity: str = "PM2.5") -> dict[str, int]:
    """count("<q>_seq") per node: the number of samples stored."""
    series = influxql(url, f'SELECT count("{quantity}_seq") FROM "sample" GROUP BY "node"')
    return {s["tags"]["node"]: s["values"][0][1] for s in series}
