"""Node health (``node_state``, ``node_health``) and ingest health (``ingest``,
``ingest_rejected``) dashboards."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common, dashboard

from dashboards._influxql import DATASOURCE, InfluxQL
from dashboards._text import Lang, text
from dashboards._variables import WHERE_NODE, WHERE_PLACE, WHERE_WORKER, variables, worker_variable

GROUP_PLACE = 'GROUP BY "township", "village", "node"'
# The latest state of each node in the range (or per interval), then the offline ones counted.
OFFLINE_NOW = (
    'SELECT sum("offline") AS "offline" FROM (SELECT last("offline") AS "offline" FROM '
    f'"node_state" WHERE {WHERE_PLACE} AND $timeFilter GROUP BY "node")'
)
OFFLINE_OVER_TIME = (
    'SELECT sum("offline") AS "offline" FROM (SELECT last("offline") AS "offline" FROM '
    f'"node_state" WHERE {WHERE_PLACE} AND $timeFilter GROUP BY time($__interval), "node") '
    "WHERE $timeFilter GROUP BY time($__interval)"
)
NODE_STATUS = (
    'SELECT last("offline") AS "offline", last("silent_s") AS "silent_s", last("said") AS '
    f'"said" FROM "node_state" WHERE {WHERE_PLACE} AND $timeFilter {GROUP_PLACE}'
)
OUTBOX = (
    f'SELECT max("outbox_depth") FROM "node_health" WHERE {WHERE_NODE} AND $timeFilter '
    'GROUP BY time($__interval), "node" fill(none)'
)
LAST_HEALTH = (
    'SELECT last("outbox_depth") AS "outbox_depth", last("dropped") AS "dropped", '
    'last("uptime_s") AS "uptime_s", last("reconnects") AS "reconnects", '
    'last("driver_errors") AS "driver_errors" FROM "node_health" '
    f"WHERE {WHERE_PLACE} AND $timeFilter {GROUP_PLACE}"
)
RATES = (
    'SELECT non_negative_derivative(last("messages"), 1s) AS "messages", '
    'non_negative_derivative(last("readings"), 1s) AS "readings", '
    'non_negative_derivative(last("stored"), 1s) AS "stored" FROM "ingest" '
    f'WHERE {WHERE_WORKER} AND $timeFilter GROUP BY time($__interval), "worker" fill(none)'
)
REJECTIONS = (
    'SELECT non_negative_difference(last("count")) AS "rejected" FROM "ingest_rejected" '
    f'WHERE {WHERE_WORKER} AND $timeFilter GROUP BY time($__interval), "worker", "reason" '
    "fill(none)"
)
LAG = (
    'SELECT mean("lag_mean_s") AS "mean", max("lag_p95_s") AS "p95" FROM "ingest" '
    f'WHERE {WHERE_WORKER} AND $timeFilter GROUP BY time($__interval), "worker" fill(none)'
)
BACKLOG = (
    'SELECT last("pending") AS "pending", last("inflight") AS "inflight", '
    'last("spool_bytes") AS "spool_bytes" FROM "ingest" '
    f'WHERE {WHERE_WORKER} AND $timeFilter GROUP BY time($__interval), "worker" fill(none)'
)


def _board(key: str, uid: str, lang: Lang) -> dash_b.Dashboard:
    return (
        dash_b.Dashboard(text(key, lang))
        .uid(f"{uid}-{lang}")
        .tags(["tianwang"])
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
    )


def _series(title: str, query: str, alias: str, unit: str = "short") -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(InfluxQL(query).alias(alias))
        .unit(unit)
        .min(0)
        .span(12)
        .height(8)
    )


def _table(title: str, query: str) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(InfluxQL(query, "table"))
        .span(12)
        .height(10)
    )


def node_health_dashboard(lang: Lang) -> dashboard.Dashboard:
    """Offline nodes, each node's state and silence, its outbox depth and last health report."""
    board = _board("node_health", "tianwang-nodes", lang)
    for variable in variables(lang, measurement="node_state"):
        board = board.with_variable(variable)
    offline_now = (
        stat.Panel()
        .title(text("offline_now", lang))
        .datasource(DATASOURCE)
        .with_target(InfluxQL(OFFLINE_NOW, "table"))
        .thresholds(
            dash_b.ThresholdsConfig()
            .mode(dashboard.ThresholdsMode.ABSOLUTE)
            .steps([dashboard.Threshold(None, "green"), dashboard.Threshold(1, "red")])
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .span(6)
        .height(8)
    )
    board = (
        board.with_panel(offline_now)
        .with_panel(_series(text("offline_series", lang), OFFLINE_OVER_TIME, "offline").span(18))
        .with_panel(_table(text("node_status", lang), NODE_STATUS))
        .with_panel(_table(text("last_health", lang), LAST_HEALTH))
        .with_panel(_series(text("outbox", lang), OUTBOX, "$tag_node").span(24))
    )
    return board.build()


def ingest_dashboard(lang: Lang) -> dashboard.Dashboard:
    """Intake rates, rejections by reason, sample-to-detection lag, backlog, per worker."""
    board = _board("ingest", "tianwang-ingest", lang).with_variable(worker_variable(lang))
    board = (
        board.with_panel(_series(text("rates", lang), RATES, "$tag_worker $col", "/s"))
        .with_panel(
            _series(text("rejections", lang), REJECTIONS, "$tag_reason").draw_style(
                common.GraphDrawStyle.BARS
            )
        )
        .with_panel(_series(text("lag", lang), LAG, "$tag_worker $col", "s"))
        .with_panel(_series(text("backlog", lang), BACKLOG, "$tag_worker $col"))
    )
    return board.build()
