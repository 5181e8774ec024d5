"""Grafana dashboards as code (grafana-foundation-sdk) over the ``sample`` measurement
(docs/protocol.md "TSDB storage"), and their provisioning tree (docs/dashboards.md)."""

from dashboards._build import AIR, air_limits, build_dashboards
from dashboards._influxql import DATASOURCE_UID
from dashboards._provision import write_provisioning
from dashboards._push import PushError, PushResult, push_dashboards
from dashboards._text import LANGS

__all__ = [
    "AIR",
    "DATASOURCE_UID",
    "LANGS",
    "PushError",
    "PushResult",
    "air_limits",
    "build_dashboards",
    "push_dashboards",
    "write_provisioning",
]
