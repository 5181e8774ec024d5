"""Grid overview panels from the ``aqi`` and ``node_state`` measurements: node maps coloured
by hourly AQI and by status, and the HJ 633 AQI category distribution."""

from __future__ import annotations

import itertools

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import geomap, piechart
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import geomap as geomap_m
from grafana_foundation_sdk.models import piechart as piechart_m

from dashboards._influxql import DATASOURCE, InfluxQL
from dashboards._text import Lang, text
from dashboards._variables import WHERE_PLACE
from tianwang.standards import aqi_categories

LegendValues = piechart_m.PieChartLegendValues
GROUP_PLACE = 'GROUP BY "township", "village", "node"'


def aqi_steps() -> list[dashboard.Threshold]:
    """HJ 633 level colours: the base step (no value) is level 1, each next level from one
    above the previous level's top (AQI is an integer)."""
    levels = aqi_categories()
    steps = [dashboard.Threshold(value=None, color=levels[0].color)]
    for below, category in itertools.pairwise(levels):
        assert below.aqi_max is not None
        steps.append(dashboard.Threshold(value=below.aqi_max + 1, color=category.color))
    return steps


def _map(title: str, query: str, field: str, steps: list[dashboard.Threshold]) -> geomap.Panel:
    markers = (
        common_b.MapLayerOptions()
        .type("markers")
        .name(field)
        .config(
            {
                "style": {"color": {"field": field}, "size": {"fixed": 8}, "opacity": 0.9},
                "showLegend": True,
            }
        )
        .location(
            common_b.FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .tooltip(True)
    )
    return (
        geomap.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(InfluxQL(query, "table"))
        .view(geomap.MapViewConfig().id("fit"))
        .basemap(common_b.MapLayerOptions().type("default").name("basemap"))
        .layers([markers])
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True))
        .tooltip(geomap.TooltipOptions().mode(geomap_m.TooltipMode.DETAILS))
        .thresholds(dash_b.ThresholdsConfig().mode(dashboard.ThresholdsMode.ABSOLUTE).steps(steps))
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .span(12)
        .height(12)
    )


def aqi_map(lang: Lang) -> geomap.Panel:
    query = (
        'SELECT last("aqi") AS "aqi", last("lat") AS "lat", last("lon") AS "lon" FROM "aqi" '
        f"WHERE {WHERE_PLACE} AND $timeFilter {GROUP_PLACE}"
    )
    return _map(text("aqi_map", lang), query, "aqi", aqi_steps())


def status_map(lang: Lang) -> geomap.Panel:
    query = (
        'SELECT last("offline") AS "offline", last("lat") AS "lat", last("lon") AS "lon" '
        f'FROM "node_state" WHERE {WHERE_PLACE} AND $timeFilter {GROUP_PLACE}'
    )
    steps = [dashboard.Threshold(value=None, color="green"), dashboard.Threshold(1, "red")]
    return _map(text("status_map", lang), query, "offline", steps).mappings([
        dashboard.ValueMap(options={
            "0": dashboard.ValueMappingResult(text=text("online", lang), color="green"),
            "1": dashboard.ValueMappingResult(text=text("offline", lang), color="red"),
        })
    ])  # fmt: skip


def aqi_distribution(lang: Lang) -> piechart.Panel:
    """Node-hours per HJ 633 level: one query per level (``level`` is a field, so that a
    recomputed hour overwrites its point instead of adding one under another tag)."""
    panel = (
        piechart.Panel()
        .title(text("aqi_levels", lang))
        .datasource(DATASOURCE)
        .pie_type(piechart_m.PieChartType.DONUT)
        .reduce_options(common_b.ReduceDataOptions().calcs(["sum"]).values(False))
        .legend(
            piechart.PieChartLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .values(
                [piechart_m.PieChartLegendValues.VALUE, piechart_m.PieChartLegendValues.PERCENT]
            )
        )
        .span(12)
        .height(12)
    )
    for category in aqi_categories():
        name = category.zh if lang == "zh" else category.en
        query = (
            f'SELECT count("aqi") AS "{name}" FROM "aqi" WHERE {WHERE_PLACE} AND '
            f'"level" = {category.level} AND $timeFilter'
        )
        panel = panel.with_target(InfluxQL(query, ref_id=f"L{category.level}")).override_by_name(
            name,
            [dashboard.DynamicConfigValue(
                id_val="color", value={"mode": "fixed", "fixedColor": category.color}
            )],
        )  # fmt: skip
    return panel
