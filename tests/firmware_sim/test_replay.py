"""Replay of real hourly data: interpolation against hand-computed values, gaps, units, errors.

Rows used (PRSA_Data_Aotizhongxin, local time; PM2.5, PM10, SO2, NO2, CO, O3):
    2013-03-01 h1:  8,  8,  4,  7, 300, 77      2013-03-04 h1: SO2 39, NO2 64, CO 1000
               h2:  7,  7,  5, 10, 300, 73                 h2: SO2 NA, NO2 14, CO  300
               h3:  6,  6, 11, 11, 300, 72                 h3: SO2  6, NO2 12, CO  NA
                                                           h4: SO2 14, NO2 NA, CO  400
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from firmware_sim import ScenarioError, SimulatedDriver
from tests.firmware_sim.conftest import AOTI, read, scenario
from tianwang.quantities import quantity_table
from tianwang.registry import Registry


def at(local: str) -> float:
    return datetime.fromisoformat(local + "+08:00").timestamp()


def values(grid: Registry, tmp: Path, t: float, start: str = "2013-03-01T01:00:00",
           **replay: Any) -> dict[str, tuple[float, str, str]]:  # fmt: skip
    replay = {"station_csv": str(AOTI), "noise": False, "nodes": ["e1"], **replay}
    sc = scenario(grid, tmp, start=start + "+08:00", duration_h=4, replay=replay)
    driver = SimulatedDriver(grid.nodes["e1"], sc, sc.start_time(0.0))
    return {v.quantity: (v.value, v.unit, v.flag) for v in read(driver, t)}


def test_hour_ending_values_interpolate_between_hour_midpoints(
    grid: Registry, tmp_path: Path
) -> None:
    # 01:45 lies between hour 2 (01:00-02:00, placed at 01:30) and hour 3 (at 02:30): 1/4 on.
    got = values(grid, tmp_path, at("2013-03-01T01:45:00"))
    assert got["PM2.5"] == (6.75, "ug/m3", "N")
    assert got["SO2"] == (6.5, "ug/m3", "N")
    assert got["NO2"] == (10.25, "ug/m3", "N")
    assert got["O3"] == (72.75, "ug/m3", "N")
    assert got["CO"] == (300.0, "ug/m3", "N")  # as the station reported it
    assert got["CO"][0] * quantity_table().factor("CO", "ug/m3") == pytest.approx(0.3)
    # at a midpoint: exactly the hour's value
    assert values(grid, tmp_path, at("2013-03-01T02:30:00"))["NO2"][0] == 11.0


def test_hour_beginning_shifts_the_placement_by_an_hour(grid: Registry, tmp_path: Path) -> None:
    got = values(grid, tmp_path, at("2013-03-01T01:45:00"), hour_label="beginning")
    assert got["NO2"][0] == 7.75  # hour 1 (7) at 01:30, hour 2 (10) at 02:30
    assert got["O3"][0] == 76.0


def test_from_replays_the_station_time_at_the_run_start(grid: Registry, tmp_path: Path) -> None:
    t = at("2026-06-01T00:45:00")
    got = values(
        grid, tmp_path, t, start="2026-06-01T00:00:00", **{"from": "2013-03-01T01:00:00+08:00"}
    )
    assert got["NO2"][0] == 10.25


def test_model_noise_is_added_unless_switched_off(grid: Registry, tmp_path: Path) -> None:
    got = values(grid, tmp_path, at("2013-03-01T01:45:00"), noise=True)
    assert got["NO2"][0] != 10.25 and abs(got["NO2"][0] - 10.25) < 30


def test_gaps_stay_gaps_nan_with_flag_d(grid: Registry, tmp_path: Path) -> None:
    def so2(local: str) -> tuple[float, str, str]:
        return values(grid, tmp_path, at(local), start="2013-03-04T00:00:00")["SO2"]

    assert so2("2013-03-04T00:30:00") == (39.0, "ug/m3", "N")  # last valid hour, exactly
    for inside in ("2013-03-04T00:31:00", "2013-03-04T01:30:00", "2013-03-04T02:29:00"):
        value, _, flag = so2(inside)
        assert math.isnan(value) and flag == "D", inside
    assert so2("2013-03-04T02:30:00") == (6.0, "ug/m3", "N")


def test_gaps_are_labelled(grid: Registry, tmp_path: Path) -> None:
    sc = scenario(grid, tmp_path, start="2013-03-04T00:00:00+08:00", duration_h=4,
                  replay={"station_csv": str(AOTI), "nodes": ["e1"]})  # fmt: skip
    gaps = [x for x in sc.ground_truth() if x["kind"] == "replay_gap"]
    assert [(x["quantity"], x["start_min"], x["end_min"]) for x in gaps] == [
        ("SO2", 30.0, 150.0),
        ("CO", 90.0, 210.0),
        ("NO2", 150.0, 240.0),  # 02:30-04:30, cut at the end of the run
    ]
    assert {x["node"] for x in gaps} == {"e1"} and {x["category"] for x in gaps} == {"replay"}
    assert gaps[0]["start"] == "2013-03-03T16:30:00Z"


@pytest.mark.parametrize(
    ("replay", "message"),
    [
        ({"from": "2012-01-01T00:00:00+08:00"}, r"replay.from: the run is not inside the data"),
        ({"columns": {"NO2": "NOX"}}, r"replay.station_csv: .* has no column\(s\) \['NOX'\]"),
        ({"columns": {"XX": "NO2"}}, r"replay.columns.XX: unknown quantity"),
        ({"units": {"CO": "furlong"}}, r"replay.units.CO: "),
        ({"station_csv": "nowhere.csv"}, r"replay.station_csv: .*nowhere.csv is not a file"),
        ({"hour_label": "middle"}, r"replay.hour_label: must be one of"),
        (
            {"columns": {"COD": "NO2"}, "units": {"COD": "mg/L"}, "nodes": ["e1"]},
            r"replay.columns: no targeted node measures 'COD'",
        ),
    ],
)
def test_bad_replay_entries_are_named(grid: Registry, tmp_path: Path, replay: dict[str, Any],
                                      message: str) -> None:  # fmt: skip
    raw = {"station_csv": str(AOTI), "from": "2013-03-02T00:00:00+08:00", **replay}
    with pytest.raises(ScenarioError, match=message):
        scenario(grid, tmp_path, replay=raw)


def test_auto_start_needs_from(grid: Registry, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"replay\.from: needed"):
        scenario(grid, tmp_path, start="auto", replay={"station_csv": str(AOTI)})


def test_a_broken_station_file_is_named(grid: Registry, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('"year","month","day","hour","NO2"\n2014,1,1,0,5\n2014,1,1,2,x\n')
    with pytest.raises(ScenarioError, match=r"replay.station_csv: .*bad.csv:3: rows must be"):
        scenario(grid, tmp_path, replay={"station_csv": str(bad), "columns": {"NO2": "NO2"},
                                         "from": "2014-01-01T01:00:00+08:00"})  # fmt: skip
