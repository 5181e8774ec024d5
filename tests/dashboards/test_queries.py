"""Every panel's InfluxQL, with Grafana's macros and template variables substituted, runs
against a real InfluxDB filled by a simulator run (edge agents -> Mosquitto -> ingest ->
InfluxDB, then the hourly AQI job: ``tianwang.demo.run_pipeline``), and returns the series
the panel expects. No Grafana server runs here: the substitution below is what Grafana does
before it sends a query, and each expectation is worked out again in Python from the raw
points (``SELECT *``), not from the panel's own InfluxQL."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards import LANGS, air_limits, build_dashboards
from tests.conftest import EXAMPLES
from tests.ingest.helpers import influxql
from tianwang.demo import DemoResult, run_pipeline
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Node, Registry
from tianwang.services import InfluxDB, Mosquitto
from tianwang.standards import aqi_level

SCENARIO = Path(__file__).parent / "data" / "scenario.yaml"
WORKER = "ingest-dashboards"
# Grafana's macros for "last 3 hours" (the run's samples are the last two whole hours).
MACROS = {"$timeFilter": "time > now() - 3h", "$__timeFilter": "time > now() - 3h",
          "$__interval": "1s"}  # fmt: skip
JUNK_NODE = "yy-0005"  # a retained non-JSON message on its data topic: one rejection


@dataclass
class Filled:
    url: str
    run: DemoResult


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, county: Registry) -> Iterator[Filled]:
    root = tmp_path_factory.mktemp("dashboards")
    with Mosquitto(root / "mosquitto") as broker, InfluxDB(root / "influxdb") as influx:

        async def run() -> DemoResult:
            topic = county.nodes[JUNK_NODE].place.topic("data")
            async with MqttLink(BrokerAddress.parse(broker.url), "junk") as link:
                await link.publish(topic, b"{not json", qos=1, retain=True)
            return await run_pipeline(
                EXAMPLES / "county.yaml", SCENARIO, root, broker.url, influx.url,
                speed=1200.0, echo=lambda line: None,
                ingest_settings={"client_id": WORKER, "report_interval_s": 0.5,
                                 "offline_after_periods": 0.01, "offline_min_s": 1.0,
                                 "deadman_interval_s": 0.1},
            )  # fmt: skip

        yield Filled(influx.url, asyncio.run(run()))


# -- Grafana's substitution -------------------------------------------------------------------


def regex_value(values: list[str]) -> str:
    """A multi-value (or "All") selection as Grafana formats it for an InfluxDB regex."""
    escaped = [re.sub(r"([\\/.^$*+?()\[\]{}|-])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"


def substitute(query: str, variables: dict[str, str]) -> str:
    for macro, value in MACROS.items():
        query = query.replace(macro, value)
    for name, value in variables.items():
        query = query.replace(f"${{{name}}}", value)
    for name in sorted(variables, key=len, reverse=True):  # no name eats the start of another
        query = re.sub(rf"\$({name})\b", lambda _m, v=variables[name]: v, query)
    assert not re.search(r"\$\w", query), query  # `$/` is a regex anchor, not a variable
    return query


@dataclass(frozen=True)
class Selection:
    """What the viewer picked: the nodes it covers, and the variables' values."""

    nodes: tuple[Node, ...]
    variables: dict[str, str]
    node: Node | None  # the single node picked, when it is one

    @property
    def ids(self) -> set[str]:
        return {n.id for n in self.nodes}


def one_node(county: Registry) -> Selection:
    node = county.nodes["yy-0001"]  # 东里村: its backhaul goes down in the run
    p = node.place
    nodes = tuple(n for n in county.nodes.values() if n.place.village == p.village)
    picked = {"county": p.county, "township": p.township, "village": p.village, "node": node.id,
              "quantity": "PM2.5", "worker": WORKER}  # fmt: skip
    return Selection(nodes, picked, node)


def everything(county: Registry) -> Selection:
    nodes = tuple(county.nodes.values())

    def every(level: str) -> str:
        return regex_value(sorted({getattr(n.place, level) for n in nodes}))

    return Selection(nodes, {"county": county.county, "township": every("township"),
                             "village": every("village"), "node": every("node"),
                             "quantity": "PM2.5", "worker": WORKER}, None)  # fmt: skip


# -- raw points, for the expectations --------------------------------------------------------


def raw(url: str, measurement: str) -> dict[str, list[dict[str, Any]]]:
    """Every point of a measurement per node (or worker), oldest first, times in ms."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for series in influxql(url, f'SELECT * FROM "{measurement}"'):
        for row in series["values"]:
            point = dict(zip(series["columns"], row, strict=True))
            out[point.get("node") or point.get("worker") or ""].append(point)
    return out


def latest(points: list[dict[str, Any]], field: str) -> Any:
    values = [p[field] for p in points if p.get(field) is not None]
    return values[-1] if values else None


def rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows: each series' tags merged into each of its rows."""
    return [dict(zip(s["columns"], v, strict=True)) | s.get("tags", {})
            for s in series for v in s["values"]]  # fmt: skip


def query(url: str, panel_query: str, selection: Selection) -> list[dict[str, Any]]:
    return influxql(url, substitute(panel_query, selection.variables))


# -- the expectations, panel by panel ---------------------------------------------------------

Check = Callable[[Filled, Selection, list[list[dict[str, Any]]]], None]


def check_aqi_map(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    got = {r["node"]: r for r in rows(results[0])}
    points = raw(f.url, "aqi")
    want = {n.id for n in sel.nodes if latest(points.get(n.id, []), "aqi") is not None}
    assert want and set(got) == want
    for node_id, row in got.items():
        node = next(n for n in sel.nodes if n.id == node_id)
        assert (row["lat"], row["lon"]) == (node.lat, node.lon)
        assert row["aqi"] == latest(points[node_id], "aqi")


def check_status_map(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    got = {r["node"]: r for r in rows(results[0])}
    points = raw(f.url, "node_state")
    assert set(got) == sel.ids  # every node of the grid file, reporting or not
    for node in sel.nodes:
        assert (got[node.id]["lat"], got[node.id]["lon"]) == (node.lat, node.lon)
        assert got[node.id]["offline"] == latest(points[node.id], "offline")


def check_aqi_levels(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    levels = [aqi_level(p["aqi"]) for n in sel.ids for p in raw(f.url, "aqi").get(n, [])
              if p.get("aqi") is not None]  # fmt: skip
    counts = [sum(r[k] for r in rows(res) for k in r if k != "time") for res in results]
    assert counts == [levels.count(level) for level in range(1, 7)]
    assert sum(counts) > 0


def check_table_per_node(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    got = rows(results[0])
    assert got and {r["node"] for r in got} <= sel.ids
    assert all(any(v is not None for k, v in r.items() if k != "time") for r in got)


def check_exceedances(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    limits = air_limits("PM2.5", datetime.now().date())
    assert limits is not None
    zone = ZoneInfo("Asia/Shanghai")
    want: dict[tuple[str, str], int] = defaultdict(int)
    for node_id, points in raw(f.url, "sample").items():
        if node_id not in sel.ids:
            continue
        by_day: dict[str, list[float]] = defaultdict(list)
        for p in points:
            if p.get("PM2.5") is not None:
                day = datetime.fromtimestamp(p["time"] / 1000, zone).date().isoformat()
                by_day[day].append(p["PM2.5"])
        for day, values in by_day.items():
            if sum(values) / len(values) > limits[2]:
                want[(points[0]["township"], day)] += 1
    got = {(s["tags"]["township"], datetime.fromtimestamp(v[0] / 1000, zone).date().isoformat()):
           v[1] for s in results[0] for v in s["values"] if v[1]}  # fmt: skip
    assert got == dict(want)
    if sel.node is None:
        assert ("lucun", datetime.now(zone).date().isoformat()) in got  # the haze village


def check_series_of_node(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    series = results[0]
    assert series
    for one in series:
        assert one["tags"]["node"] in sel.ids
        assert any(v is not None for row in one["values"] for v in row[1:])


def check_offline_now(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    points = raw(f.url, "node_state")
    want = sum(latest(points[n], "offline") for n in sel.ids)
    assert [r["offline"] for r in rows(results[0])] == [want]


def check_offline_series(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    values = [v[1] for s in results[0] for v in s["values"] if v[1] is not None]
    points = raw(f.url, "node_state")
    ever = any(p["offline"] for n in sel.ids for p in points[n])
    assert values and min(values) >= 0 and max(values) <= len(sel.ids)
    assert (max(values) >= 1) == ever
    assert ever  # 东里村's backhaul outage outlasts the shrunk deadman


def check_node_status(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    points = raw(f.url, "node_state")
    got = {r["node"]: r for r in rows(results[0])}
    assert set(got) == sel.ids
    for node_id, row in got.items():
        for field in ("offline", "silent_s", "said"):
            assert row[field] == latest(points[node_id], field), (node_id, field)


def check_last_health(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    points = raw(f.url, "node_health")
    got = {r["node"]: r for r in rows(results[0])}
    assert got and set(got) == sel.ids & set(points)  # every node reported at start
    for node_id, row in got.items():
        for field in ("outbox_depth", "dropped", "uptime_s", "reconnects", "driver_errors"):
            assert row[field] == latest(points[node_id], field), (node_id, field)


def check_outbox(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    check_series_of_node(f, sel, results)
    assert all(v[1] >= 0 for s in results[0] for v in s["values"])


def check_rates(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    (series,) = results[0]
    assert series["tags"] == {"worker": WORKER}
    readings = [r["readings"] for r in rows(results[0]) if r["readings"] is not None]
    assert readings and min(readings) >= 0 and max(readings) > 0
    # The rates add up (1 s buckets) to no more than what the worker counted in all.
    assert sum(readings) <= f.run.ingest_counts["readings"]


def check_rejections(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    assert {s["tags"]["reason"] for s in results[0]} == set(f.run.rejections) == {"not_json"}
    assert all(r["rejected"] >= 0 for r in rows(results[0]))


def check_lag(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    means = [r["mean"] for r in rows(results[0]) if r["mean"] is not None]
    p95 = [r["p95"] for r in rows(results[0]) if r["p95"] is not None]
    assert means and p95 and min(means) > 0 and min(p95) > 0


def check_backlog(f: Filled, sel: Selection, results: list[list[dict]]) -> None:
    got = rows(results[0])
    assert got and all(r["pending"] >= 0 and r["inflight"] >= 0 for r in got)
    assert all(r["spool_bytes"] is None for r in got)  # no spool in the demo pipeline


CHECKS: dict[str, list[Check]] = {
    "overview": [check_aqi_map, check_status_map, check_aqi_levels, check_table_per_node,
                 check_table_per_node, check_exceedances],
    "station": [check_series_of_node] * 6,
    "nodes": [check_offline_now, check_offline_series, check_node_status, check_last_health,
              check_outbox],
    "ingest": [check_rates, check_rejections, check_lag, check_backlog],
}  # fmt: skip


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("pick", [one_node, everything], ids=["one-node", "all"])
def test_every_panel_query_returns_its_series(
    filled: Filled, county: Registry, lang: str, pick: Callable[[Registry], Selection]
) -> None:
    assert filled.run.readings_stored == filled.run.readings_published
    selection = pick(county)
    boards = build_dashboards(lang)  # type: ignore[arg-type]
    assert {uid.split("-")[1] for uid in boards} == set(CHECKS)
    for uid, model in boards.items():
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                found = query(filled.url, variable["query"], selection)
                values = {v[1] for s in found for v in s["values"]}
                picked = selection.variables[variable["name"]]
                assert any(re.fullmatch(picked, v) for v in values), (uid, variable["name"])
        checks = CHECKS[uid.split("-")[1]]
        assert len(checks) == len(model["panels"]), uid
        for panel, check in zip(model["panels"], checks, strict=True):
            results = [query(filled.url, t["query"], selection) for t in panel["targets"]]
            check(filled, selection, results)
