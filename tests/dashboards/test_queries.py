"""Every panel's InfluxQL, with Grafana's macros and variables substituted, runs against a
real InfluxDB filled through the ingest path (InfluxV1Sink + sample_lines) and returns data.
No Grafana server runs here: the substitution below is what Grafana does before it queries."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from dashboards import AIR, LANGS, build_dashboards
from ingest import InfluxV1Sink, node_tags, sample_lines
from tianwang.codec import Reading
from tianwang.registry import Node, Registry
from tianwang.services import InfluxDB

MACROS = {"$timeFilter": "time > now() - 6h", "$__interval": "1m"}
VALUES = {"PM2.5": 120.0, "PM10": 160.0, "SO2": 20.0, "NO2": 40.0, "O3": 90.0, "CO": 0.8}


def _substitute(query: str, variables: dict[str, str]) -> str:
    for macro, value in MACROS.items():
        query = query.replace(macro, value)
    for name, value in variables.items():
        query = query.replace(f"${{{name}}}", value)
    # Longest names first, so that no variable name eats the start of another.
    for name in sorted(variables, key=len, reverse=True):
        query = re.sub(rf"\$({name})\b", variables[name], query)
    assert not re.search(r"\$\w", query), query  # `$/` is a regex anchor, not a variable
    return query


def _readings(node: Node, now_ms: int) -> list[Reading]:
    readings, seq = [], 0
    for step in range(18):  # the last 3 hours, every 10 minutes
        ts = now_ms - step * 600_000
        for quantity in AIR:
            seq += 1
            readings.append(Reading(node.id, seq, ts, quantity, VALUES[quantity], "", "N"))
    return readings


async def _fill(url: str, nodes: list[Node]) -> None:
    now_ms = int(time.time() * 1000) - 60_000
    async with InfluxV1Sink(url) as sink:
        for node in nodes:
            await sink.write(sample_lines(node_tags(node), _readings(node, now_ms)))


def _air_nodes(county: Registry) -> list[Node]:
    air = [n for n in county.nodes.values() if set(AIR) <= set(n.quantities)]
    by_township: dict[str, Node] = {}
    for node in air:
        by_township.setdefault(node.place.township, node)
    return list(by_township.values())[:3]


async def _query(sink: InfluxV1Sink, influxql: str) -> list[dict]:
    result = await sink.query(influxql)
    (statement,) = result["results"]
    assert "error" not in statement, (influxql, statement)
    return statement.get("series", [])


@pytest.mark.parametrize("lang", LANGS[:1])
def test_every_panel_query_returns_its_series(
    influxdb: InfluxDB, county: Registry, lang: str
) -> None:
    nodes = _air_nodes(county)
    assert len(nodes) >= 2
    asyncio.run(_fill(influxdb.url, nodes))
    node = nodes[0]
    variables = {
        "county": node.place.county,
        "township": node.place.township,
        "village": node.place.village,
        "node": node.id,
        "quantity": "PM2.5",
    }

    async def check() -> None:
        async with InfluxV1Sink(influxdb.url) as sink:
            for model in build_dashboards(lang).values():
                for variable in model["templating"]["list"]:
                    if variable["type"] == "query":
                        rows = await _query(sink, _substitute(variable["query"], variables))
                        values = {v[1] for s in rows for v in s["values"]}
                        assert variables[variable["name"]] in values, variable["name"]
                for panel in model["panels"]:
                    for target in panel["targets"]:
                        series = await _query(sink, _substitute(target["query"], variables))
                        assert series, panel["title"]
                        _check_series(panel, series, node)

    asyncio.run(check())


def _check_series(panel: dict, series: list[dict], node: Node) -> None:
    """One series per node (or per township), tagged with the selected place."""
    for one in series:
        tags = one.get("tags", {})
        assert tags.get("node", node.id) == node.id, panel["title"]
        assert tags.get("township", node.place.township) == node.place.township
        assert any(v is not None for row in one["values"] for v in row[1:]), panel["title"]
