"""The Grafana provisioning tree: data source, dashboard provider, dashboard JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dashboards._build import build_dashboards
from dashboards._influxql import DATASOURCE_UID
from dashboards._text import Lang

FOLDER = ("tianwang", "tianwang")  # (uid, title) of the dashboards' folder


def datasource_model(influx_url: str, database: str) -> dict:
    """The InfluxDB data source, as provisioning files and the HTTP API both take it."""
    return {
        "name": "tianwang InfluxDB",
        "uid": DATASOURCE_UID,  # the panels refer to it by this uid
        "type": "influxdb",
        "access": "proxy",
        "url": influx_url,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "POST"},
    }


def datasource_file(influx_url: str, database: str) -> dict:
    return {
        "apiVersion": 1,
        "datasources": [{**datasource_model(influx_url, database), "editable": False}],
    }


def provider_file(dashboards_path: str) -> dict:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "tianwang",
                "folder": FOLDER[1],
                "folderUid": FOLDER[0],
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "options": {"path": dashboards_path},
            }
        ],
    }


def write_provisioning(
    out: Path,
    lang: Lang,
    influx_url: str = "http://127.0.0.1:8086",
    database: str = "tianwang",
    dashboards_path: str = "/etc/grafana/provisioning/dashboards",
) -> list[Path]:
    """Write ``out/datasources/tianwang.yaml``, ``out/dashboards/provider.yaml`` and one
    ``out/dashboards/<uid>.json`` per dashboard; return the files written."""
    (out / "datasources").mkdir(parents=True, exist_ok=True)
    (out / "dashboards").mkdir(parents=True, exist_ok=True)
    written = [out / "datasources" / "tianwang.yaml", out / "dashboards" / "provider.yaml"]
    written[0].write_text(yaml.safe_dump(datasource_file(influx_url, database)), "utf-8")
    written[1].write_text(yaml.safe_dump(provider_file(dashboards_path)), "utf-8")
    for uid, model in build_dashboards(lang).items():
        path = out / "dashboards" / f"{uid}.json"
        path.write_text(json.dumps(model, ensure_ascii=False, indent=2) + "\n", "utf-8")
        written.append(path)
    return written
