"""The dashboards, built with grafana-foundation-sdk over the ``sample`` measurement
(docs/protocol.md "TSDB storage")."""

from __future__ import annotations

import json
import math
from datetime import date

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard

from dashboards._health import ingest_dashboard, node_health_dashboard
from dashboards._influxql import DATASOURCE, InfluxQL
from dashboards._maps import aqi_distribution, aqi_map, status_map
from dashboards._text import Lang, text
from dashboards._variables import AIR, WHERE_NODE, WHERE_PLACE, quantity_variable, variables
from tianwang.standards import gb3095

__all__ = ["AIR", "air_limits", "build_dashboards"]

UNITS = {"CO": "mg/m³"}  # every other air quantity is in µg/m³
# $__interval means are closest to the 1-hour limits; PM has only 24-hour ones.
PERIODS = ("1h", "24h")


def _f(name: str) -> str:
    """A quoted field key: PM2.5 and NH3-N need the quotes in InfluxQL."""
    return f'"{name}"'


def air_limits(quantity: str, day: date) -> tuple[str, float, float] | None:
    """(period, Grade I, Grade II) of the GB 3095 edition in force on ``day``."""
    standard = gb3095()
    for period in PERIODS:
        g1 = standard.limit(quantity, period, 1, day)
        g2 = standard.limit(quantity, period, 2, day)
        if g1 is not None and g2 is not None:
            return period, g1.value, g2.value
    return None


def _limit_steps(g1: float, g2: float) -> list[dashboard.Threshold]:
    # Grafana's base step has no value (it serialises -Infinity as null).
    steps = [dashboard.Threshold(value=None, color="green"), dashboard.Threshold(g1, "yellow")]
    if not math.isclose(g1, g2):
        steps.append(dashboard.Threshold(g2, "red"))
    else:
        steps[-1].color = "red"
    return steps


def series_panel(quantity: str, lang: Lang, day: date) -> timeseries.Panel:
    limits = air_limits(quantity, day)
    assert limits is not None, quantity
    period, g1, g2 = limits
    query = (
        f'SELECT mean({_f(quantity)}) FROM "sample" WHERE {WHERE_NODE} AND $timeFilter '
        'GROUP BY time($__interval), "node" fill(null)'
    )
    return (
        timeseries.Panel()
        .title(text("series", lang, q=quantity, g1=f"{g1:g}", g2=f"{g2:g}", p=period))
        .datasource(DATASOURCE)
        .with_target(InfluxQL(query).alias("$tag_node"))
        .unit(UNITS.get(quantity, "µg/m³"))
        .min(0)
        .thresholds(
            dash_b.ThresholdsConfig()
            .mode(dashboard.ThresholdsMode.ABSOLUTE)
            .steps(_limit_steps(g1, g2))
        )
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
        .span(12)
        .height(8)
    )


def station_dashboard(lang: Lang, day: date) -> dashboard.Dashboard:
    """Per-station pollutant series, Grade I/II limits drawn as thresholds."""
    board = (
        dash_b.Dashboard(text("station", lang))
        .uid(f"tianwang-station-{lang}")
        .tags(["tianwang"])
        .timezone("browser")
        .time("now-24h", "now")
        .refresh("1m")
    )
    for variable in variables(lang):
        board = board.with_variable(variable)
    for quantity in AIR:
        board = board.with_panel(series_panel(quantity, lang, day))
    return board.build()


def overview_dashboard(lang: Lang, day: date) -> dashboard.Dashboard:
    """The grid at a glance: node maps by AQI and by status, the AQI category distribution,
    latest value and last report of every node, daily exceedances per township."""
    latest = (
        'SELECT last("$quantity") AS "value" FROM "sample" WHERE '
        f'{WHERE_PLACE} AND $timeFilter GROUP BY "township", "village", "node"'
    )
    last_seen = (
        'SELECT last("${quantity}_seq") AS "seq" FROM "sample" WHERE '
        f'{WHERE_PLACE} AND $timeFilter GROUP BY "node"'
    )
    pm_limits = air_limits("PM2.5", day)
    assert pm_limits is not None
    g2 = pm_limits[2]
    # Daily means per node (county time), then count the nodes over the limit per township.
    exceed = (
        'SELECT count("pm") FROM (SELECT mean("PM2.5") AS "pm" FROM "sample" WHERE '
        f'{WHERE_PLACE} AND $timeFilter GROUP BY time(1d), "township", "node" '
        f"tz('Asia/Shanghai')) WHERE \"pm\" > {g2:g} AND $timeFilter "
        "GROUP BY time(1d), \"township\" tz('Asia/Shanghai')"
    )
    board = (
        dash_b.Dashboard(text("overview", lang))
        .uid(f"tianwang-overview-{lang}")
        .tags(["tianwang"])
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
    )
    for variable in [*variables(lang), quantity_variable(lang)]:
        board = board.with_variable(variable)
    board = (
        board.with_panel(aqi_map(lang))
        .with_panel(status_map(lang))
        .with_panel(aqi_distribution(lang))
        .with_panel(
            table.Panel()
            .title(text("latest", lang))
            .datasource(DATASOURCE)
            .with_target(InfluxQL(latest, "table"))
            .span(12)
            .height(12)
        )
        .with_panel(
            table.Panel()
            .title(text("last_seen", lang))
            .datasource(DATASOURCE)
            .with_target(InfluxQL(last_seen, "table"))
            .span(12)
            .height(12)
        )
        .with_panel(
            timeseries.Panel()
            .title(text("exceed", lang, g2=f"{g2:g}"))
            .datasource(DATASOURCE)
            .with_target(InfluxQL(exceed).alias("$tag_township"))
            .draw_style(common.GraphDrawStyle.BARS)
            .span(24)
            .height(8)
        )
    )
    return board.build()


def build_dashboards(lang: Lang, day: date | None = None) -> dict[str, dict]:
    """Dashboard JSON models by uid. ``day`` picks the GB 3095 edition (default today)."""
    day = day or date.today()
    boards = [
        overview_dashboard(lang, day),
        station_dashboard(lang, day),
        node_health_dashboard(lang),
        ingest_dashboard(lang),
    ]
    for board in boards:
        for number, panel in enumerate(board.panels or [], 1):
            panel.id_val = number  # Grafana links and embeds panels by id
    # The models as plain JSON (what Grafana stores), through the SDK's own encoder.
    return {b.uid or "": json.loads(JSONEncoder().encode(b)) for b in boards}
