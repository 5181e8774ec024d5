"""Ground truth: a label for every injected event and fault, and the label file."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim import LABEL_FIELDS, Scenario, SimulatedDriver, load_scenario, write_labels
from tests.conftest import EXAMPLES
from tests.firmware_sim.conftest import read
from tianwang.registry import Registry

COUNTY_DAY = EXAMPLES / "scenarios" / "county_day.yaml"
EVERY_KIND = {
    "plume", "discharge", "construction_dust",
    "drift", "spike", "stuck", "out_of_range", "dropout",
    "node_offline", "broker_restart", "duplicate_delivery", "out_of_order", "clock_skew",
}  # fmt: skip


@pytest.fixture(scope="module")
def day(county_plus: Registry) -> Scenario:
    return load_scenario(COUNTY_DAY, county_plus)


def test_county_day_labels_every_kind(day: Scenario) -> None:
    labels = day.ground_truth()
    assert {x["kind"] for x in labels} == EVERY_KIND
    assert all(tuple(x) == LABEL_FIELDS for x in labels)
    assert len({x["id"] for x in labels}) == len(labels)
    assert [(x["start_min"], x["id"]) for x in labels] == sorted(
        (x["start_min"], x["id"]) for x in labels
    )
    by_category = Counter(x["category"] for x in labels)
    assert set(by_category) == {"episode", "sensor_fault", "network_fault"}


def test_county_day_absolute_times_are_utc(day: Scenario) -> None:
    labels = day.ground_truth()
    first = next(x for x in labels if x["episode"] == "lucun-night-discharge")
    assert first["start"] == "2026-05-31T18:00:00Z"  # 02:00 in the county
    assert first["end"] == "2026-05-31T19:30:00Z"
    assert day.ground_truth(day.start) == labels


def test_episode_labels_carry_the_decayed_peak(day: Scenario, county_plus: Registry) -> None:
    fire = [x for x in day.ground_truth() if x["episode"] == "yuezhuang-plant-fire"]
    (e,) = [e for e in day.episodes if e.id == "yuezhuang-plant-fire"]
    assert {x["node"] for x in fire} == e.nodes
    for x in fire:
        r = e.reach_of(x["node"])
        assert x["start_min"] == pytest.approx(600 + r.delay_min)
        assert x["end_min"] - x["start_min"] == pytest.approx(120)
        assert x["peak_add"] == pytest.approx(x["add"] * r.scale)
        assert x["params"] == {"delay_min": r.delay_min, "scale": r.scale,
                               "distance_km": r.distance_km}  # fmt: skip
    discharge = [x for x in day.ground_truth() if x["kind"] == "discharge"]
    assert {x["node"] for x in discharge} == {"yy-w01", "yy-w02"}  # only nodes measuring it
    assert {x["quantity"] for x in discharge} == {"COD", "NH3-N", "DO"}


def test_fault_labels(day: Scenario) -> None:
    labels = {x["id"]: x for x in day.ground_truth()}
    spike = labels["spike-pm10/yy-0026/PM10"]
    assert (spike["start_min"], spike["end_min"], spike["params"]) == (200, 201, {"add": 800})
    assert len([x for x in labels.values() if x["episode"] == "analyser-down"]) == 6
    assert labels["drift-o3/yy-0018/O3"]["params"] == {"rate_per_h": 3}
    assert labels["negative-pm25/yy-0061/PM2.5"]["params"] == {"value": -5}
    assert labels["ph-probe-broken/yy-w02/pH"]["params"] == {"value": 21.0}  # 1.5 x 14
    broker = labels["broker-maintenance/*/*"]
    assert (broker["node"], broker["quantity"], broker["end_min"]) == (None, None, 842)
    offline = [x for x in labels.values() if x["episode"] == "hedong-backhaul-down"]
    assert [x["node"] for x in offline] == ["yy-0021", "yy-0022", "yy-0023", "yy-0024"]
    assert all(x["quantity"] is None for x in offline)
    assert labels["yy-0064-local-time-as-utc/yy-0064/*"]["params"] == {"offset_s": 28800}


def test_every_sensor_fault_label_matches_what_the_driver_does(
    day: Scenario, county_plus: Registry
) -> None:
    """Inside a label's window the node's value differs from the same node without faults."""
    clean = Scenario(**{**{f: getattr(day, f) for f in day.__dataclass_fields__},
                        "sensor_faults": (), "shared": {}})  # fmt: skip
    labels = [x for x in day.ground_truth() if x["category"] == "sensor_fault"]
    for node in sorted({x["node"] for x in labels}):
        mine = [x for x in labels if x["node"] == node]
        faulty = SimulatedDriver(county_plus.nodes[node], day, day.start)
        ok = SimulatedDriver(county_plus.nodes[node], clean, day.start)
        for k in range(24 * 60):
            t = day.start + 60 * k
            bad = {v.quantity: v.value for v in read(faulty, t)}
            good = {v.quantity: v.value for v in read(ok, t)}
            for q in bad:
                active = [
                    x for x in mine if x["quantity"] == q and x["start_min"] <= k < x["end_min"]
                ]
                same = bad[q] == good[q] or (math.isnan(bad[q]) and math.isnan(good[q]))
                if not active:
                    assert same, (node, q, k)
                elif all(x["kind"] != "drift" or k > x["start_min"] for x in active):
                    assert not same, (node, q, k)  # a drift starts at 0; the rest show at once


def test_auto_scenario_labels_without_and_with_a_start(county: Registry) -> None:
    demo = load_scenario(EXAMPLES / "scenarios" / "demo.yaml", county)
    assert {x["start"] for x in demo.ground_truth()} == {None}
    start = demo.start_time(1_780_000_000.0)
    labels = demo.ground_truth(start)
    assert start == 1_779_991_200  # 2026-05-28T18:00Z: two hours before the last whole hour
    assert {x["start"] for x in labels} == {"2026-05-28T18:20:00Z"}
    assert {x["end"] for x in labels} == {"2026-05-28T19:40:00Z"}


def test_write_labels_csv_and_json_lines(day: Scenario, tmp_path: Path) -> None:
    n = write_labels(day, day.start, tmp_path / "labels.csv")
    with (tmp_path / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert n == len(rows) == len(day.ground_truth())
    assert tuple(rows[0]) == LABEL_FIELDS
    broker = next(r for r in rows if r["kind"] == "broker_restart")
    assert (broker["node"], broker["quantity"], json.loads(broker["params"])) == ("", "", {})
    assert write_labels(day, day.start, tmp_path / "labels.jsonl") == n
    lines = (tmp_path / "labels.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == day.ground_truth()
