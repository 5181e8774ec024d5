"""The generated dashboard models and provisioning tree are well formed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import AIR, DATASOURCE_UID, LANGS, air_limits, build_dashboards
from tianwang.cli import main

PLACE_VARIABLES = {"county", "township", "village", "node"}


@pytest.mark.parametrize("lang", LANGS)
def test_models_round_trip_and_are_complete(lang: str) -> None:
    boards = build_dashboards(lang)
    assert set(boards) == {f"tianwang-station-{lang}", f"tianwang-overview-{lang}"}
    for uid, model in boards.items():
        assert model["uid"] == uid and model["title"]
        again = json.loads(json.dumps(model))
        assert Dashboard.from_json(again).uid == uid  # the SDK reads its own output back
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), ids
        for panel in model["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["rawQuery"] and target["query"].startswith("SELECT ")
                assert "$timeFilter" in target["query"]
        names = {v["name"] for v in model["templating"]["list"]}
        assert names >= PLACE_VARIABLES
    assert "quantity" in {
        v["name"] for v in boards[f"tianwang-overview-{lang}"]["templating"]["list"]
    }


def test_series_panels_draw_the_grade_limits() -> None:
    station = build_dashboards("en")["tianwang-station-en"]
    assert len(station["panels"]) == len(AIR)
    for quantity, panel in zip(AIR, station["panels"], strict=True):
        limits = air_limits(quantity, date.today())
        assert limits is not None
        _, g1, g2 = limits
        steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        assert steps[0] is None and g1 in steps and g2 in steps
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


def test_titles_follow_the_language_setting() -> None:
    assert build_dashboards("zh")["tianwang-overview-zh"]["title"] == "网格总览"
    assert build_dashboards("en")["tianwang-overview-en"]["title"] == "Grid overview"


def test_cli_writes_the_provisioning_tree(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["dashboards", "build", "--out", str(tmp_path), "--lang", "en"]) == 0
    source = yaml.safe_load((tmp_path / "datasources" / "tianwang.yaml").read_text("utf-8"))
    (ds,) = source["datasources"]
    assert ds["type"] == "influxdb" and ds["uid"] == DATASOURCE_UID
    assert ds["jsonData"] == {"version": "InfluxQL", "dbName": "tianwang", "httpMode": "POST"}
    provider = yaml.safe_load((tmp_path / "dashboards" / "provider.yaml").read_text("utf-8"))
    assert provider["providers"][0]["type"] == "file"
    files = sorted(p.name for p in (tmp_path / "dashboards").glob("*.json"))
    assert files == ["tianwang-overview-en.json", "tianwang-station-en.json"]
    assert "provider.yaml" in capsys.readouterr().out
