"""An InfluxQL target for grafana-foundation-sdk panels: the SDK ships no InfluxDB query type."""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

DATASOURCE_UID = "tianwang-influxdb"
DATASOURCE = dashboard.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

Format = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL query, the JSON Grafana's InfluxDB plugin stores for raw mode."""

    def __init__(self, ref_id: str, query: str, result_format: Format, alias: str = "") -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "rawQuery": True,  # raw mode: the plugin sends `query` as written
            "query": self.query,
            "resultFormat": self.result_format,
        }
        if self.alias:
            payload["alias"] = self.alias
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data["refId"], data["query"], data["resultFormat"], data.get("alias", ""))


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    def __init__(self, query: str, result_format: Format = "time_series", ref_id: str = "A"):
        self._internal = InfluxQLQuery(ref_id, query, result_format)

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def build(self) -> InfluxQLQuery:
        return self._internal
