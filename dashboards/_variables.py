"""Template variables and the WHERE clauses that use them."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.models import dashboard

from dashboards._influxql import DATASOURCE
from dashboards._text import Lang, text

AIR = ("PM2.5", "PM10", "SO2", "NO2", "O3", "CO")
# Regex matches so that a multi-value or "All" selection works the same way.
WHERE_PLACE = '"township" =~ /^$township$/ AND "village" =~ /^$village$/'
WHERE_NODE = f'{WHERE_PLACE} AND "node" =~ /^$node$/'
WHERE_WORKER = '"worker" =~ /^$worker$/'


def _tag_values(measurement: str, key: str, where: str = "") -> str:
    query = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'
    return f"{query} WHERE {where}" if where else query


def _query_variable(name: str, lang: Lang, query: str, multi: bool) -> dash_b.QueryVariable:
    return (
        dash_b.QueryVariable(name)
        .label(text(name, lang))
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )


def variables(
    lang: Lang, measurement: str = "sample", node_multi: bool = True
) -> list[dash_b.QueryVariable]:
    """county > township > village > node (tag values of ``measurement``), each filtered by
    the ones above it."""
    m = measurement
    return [
        _query_variable("county", lang, _tag_values(m, "county"), False),
        _query_variable(
            "township", lang, _tag_values(m, "township", '"county" =~ /^$county$/'), True
        ),
        _query_variable(
            "village", lang, _tag_values(m, "village", '"township" =~ /^$township$/'), True
        ),
        _query_variable("node", lang, _tag_values(m, "node", WHERE_PLACE), node_multi),
    ]


def worker_variable(lang: Lang) -> dash_b.QueryVariable:
    return _query_variable("worker", lang, _tag_values("ingest", "worker"), True)


def quantity_variable(lang: Lang) -> dash_b.CustomVariable:
    return (
        dash_b.CustomVariable("quantity")
        .label(text("quantity", lang))
        .values(",".join(AIR))
        .current(dashboard.VariableOption(text="PM2.5", value="PM2.5"))
    )
