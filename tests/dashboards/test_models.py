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
from tianwang.standards import aqi_categories

PLACE_VARIABLES = {"county", "township", "village", "node"}
BOARDS = ("overview", "station", "nodes", "ingest")


@pytest.mark.parametrize("lang", LANGS)
def test_models_round_trip_and_are_complete(lang: str) -> None:
    boards = build_dashboards(lang)
    assert set(boards) == {f"tianwang-{board}-{lang}" for board in BOARDS}
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
        assert names >= ({"worker"} if uid.startswith("tianwang-ingest") else PLACE_VARIABLES)
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
    assert files == sorted(f"tianwang-{board}-en.json" for board in BOARDS)
    assert provider["providers"][0]["folderUid"] == "tianwang"
    assert "provider.yaml" in capsys.readouterr().out


def test_maps_place_nodes_by_lat_lon_and_colour_them() -> None:
    overview = build_dashboards("en")["tianwang-overview-en"]
    maps = [p for p in overview["panels"] if p["type"] == "geomap"]
    assert [m["options"]["layers"][0]["config"]["style"]["color"]["field"] for m in maps] == [
        "aqi", "offline"]  # fmt: skip
    for panel in maps:
        (layer,) = panel["options"]["layers"]
        assert layer["type"] == "markers"
        assert layer["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
        (target,) = panel["targets"]
        assert target["resultFormat"] == "table"
        assert 'AS "lat"' in target["query"] and 'AS "lon"' in target["query"]
        assert panel["fieldConfig"]["defaults"]["color"]["mode"] == "thresholds"
    aqi_steps = maps[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    levels = aqi_categories()
    assert [s["color"] for s in aqi_steps] == [c.color for c in levels]
    # AQI is an integer: level n + 1 starts one above the top of level n (HJ 633 Table 2).
    assert [s["value"] for s in aqi_steps] == [None] + [c.aqi_max + 1 for c in levels[:-1]]


def test_aqi_distribution_has_one_query_per_hj633_level() -> None:
    overview = build_dashboards("zh")["tianwang-overview-zh"]
    (pie,) = [p for p in overview["panels"] if p["type"] == "piechart"]
    levels = aqi_categories()
    assert [t["refId"] for t in pie["targets"]] == [f"L{c.level}" for c in levels]
    for target, category in zip(pie["targets"], levels, strict=True):
        assert f'"level" = {category.level} ' in target["query"]
        assert f'AS "{category.zh}"' in target["query"]
    colours = {o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
               for o in pie["fieldConfig"]["overrides"]}  # fmt: skip
    assert colours == {c.zh: c.color for c in levels}
