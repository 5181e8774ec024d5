"""Sensor faults, each seen in what ``read()`` returns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from firmware_sim import ScenarioError, SimulatedDriver
from tests.firmware_sim.conftest import AIR, quiet, read, scenario
from tianwang.quantities import quantity_table
from tianwang.registry import Registry

Rows = list[dict[str, tuple[float, str]]]


def readings(grid: Registry, tmp: Path, fault: dict[str, Any], node: str = "e1",
             minutes: int = 120, step_s: float = 60.0,
             baseline: dict[str, Any] | None = None) -> Rows:  # fmt: skip
    sc = scenario(grid, tmp, baseline=quiet(*AIR) if baseline is None else baseline,
                  sensor_faults=[fault])  # fmt: skip
    start = sc.start_time(0.0)
    driver = SimulatedDriver(grid.nodes[node], sc, start)
    out = []
    for k in range(int(minutes * 60 / step_s)):
        out.append({v.quantity: (v.value, v.flag) for v in read(driver, start + k * step_s)})
    return out


def fault(kind: str, **extra: Any) -> dict[str, Any]:
    return {"id": "f", "kind": kind, "nodes": ["e1"], "quantities": ["NO2"], "start_min": 30,
            "duration_min": 40, **extra}  # fmt: skip


def test_stuck_repeats_the_last_value_before_the_fault(grid: Registry, tmp_path: Path) -> None:
    baseline = {**quiet(*AIR), "NO2": {"mean": 50, "noise": 5}}
    rows = readings(grid, tmp_path, fault("stuck"), baseline=baseline)
    no2 = [r["NO2"] for r in rows]
    assert {v for v in no2[30:70]} == {no2[29]}  # minutes 30..69 repeat minute 29
    assert len({v for v in no2[:30]}) > 20 and len({v for v in no2[70:]}) > 20
    assert all(r["O3"] == (10.0, "N") for r in rows)  # other quantities untouched


def test_drift_adds_a_bias_growing_from_the_start(grid: Registry, tmp_path: Path) -> None:
    rows = readings(grid, tmp_path, fault("drift", rate_per_h=6))
    no2 = [r["NO2"][0] for r in rows]
    assert no2[29] == 10.0 and no2[30] == 10.0
    assert no2[40] == pytest.approx(11.0) and no2[69] == pytest.approx(10 + 6 * 39 / 60)
    assert no2[70] == 10.0  # recalibrated at the end
    assert {r["NO2"][1] for r in rows} == {"N"}


def test_spike_is_one_sample(grid: Registry, tmp_path: Path) -> None:
    rows = readings(grid, tmp_path, {**fault("spike", add=500), "duration_min": None})
    no2 = [r["NO2"][0] for r in rows]
    assert no2.count(510.0) == 1 and no2.index(510.0) == 30
    assert no2.count(10.0) == len(no2) - 1


def test_spike_is_one_sample_at_any_sampling_period(grid: Registry, tmp_path: Path) -> None:
    spike = {"id": "f", "kind": "spike", "nodes": ["s1"], "start_min": 30, "add": 50}
    rows = readings(grid, tmp_path, spike, node="s1", step_s=30,  # s1 samples every 30 s
                    baseline=quiet("LAeq"))  # fmt: skip
    laeq = [r["LAeq"][0] for r in rows]
    assert sum(v != 10.0 for v in laeq) == 1 and laeq.index(60.0) == 60


def test_default_spike_is_eight_baseline_sds(grid: Registry, tmp_path: Path) -> None:
    spike = {"id": "f", "kind": "spike", "nodes": ["e1"], "start_min": 30}
    sc = scenario(grid, tmp_path, sensor_faults=[spike])
    for q in AIR:
        b = sc.baseline[q]
        expected = 8 * math.hypot(b.noise, b.weather_sd)
        assert sc.sensor_faults[0].magnitude[q] == pytest.approx(expected)
    sc = scenario(grid, tmp_path, sensor_faults=[spike], baseline=quiet(*AIR))
    assert sc.sensor_faults[0].magnitude == dict.fromkeys(AIR, 10.0)  # no sd: the mean


def test_dropout_gives_nan_with_flag_d(grid: Registry, tmp_path: Path) -> None:
    rows = readings(grid, tmp_path, fault("dropout", quantities=["NO2", "CO"]))
    for k, row in enumerate(rows):
        for q in ("NO2", "CO"):
            value, flag = row[q]
            assert (math.isnan(value) and flag == "D") == (30 <= k < 70), (k, q)
        assert row["O3"] == (10.0, "N")
    assert all(len(row) == 6 for row in rows)  # still one value per quantity


def test_out_of_range_defaults_beyond_the_maximum(grid: Registry, tmp_path: Path) -> None:
    rows = readings(grid, tmp_path, fault("out_of_range"))
    top = quantity_table().quantities["NO2"].max
    assert [r["NO2"][0] > top for r in rows] == [30 <= k < 70 for k in range(120)]
    rows = readings(grid, tmp_path, fault("out_of_range", value=-3))
    assert rows[45]["NO2"] == (-3.0, "N") and rows[75]["NO2"] == (10.0, "N")


def test_out_of_range_must_be_out_of_range(grid: Registry, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"sensor_faults\[0\].value: 100 is inside"):
        readings(grid, tmp_path, fault("out_of_range", value=100))


def test_a_fault_without_quantities_hits_every_quantity(grid: Registry, tmp_path: Path) -> None:
    rows = readings(grid, tmp_path, {**fault("dropout"), "quantities": None})
    assert all(math.isnan(v) for v, _ in rows[40].values()) and len(rows[40]) == len(AIR)


def test_faults_on_one_value_apply_in_a_fixed_order(grid: Registry, tmp_path: Path) -> None:
    faults = [
        {**fault("dropout"), "id": "a", "start_min": 50, "duration_min": 10},
        {**fault("drift", rate_per_h=60), "id": "b"},
    ]
    sc = scenario(grid, tmp_path, baseline=quiet(*AIR), sensor_faults=faults)
    start = sc.start_time(0.0)
    driver = SimulatedDriver(grid.nodes["e1"], sc, start)
    values = [{v.quantity: v.value for v in read(driver, start + 60 * k)}["NO2"]
              for k in range(80)]  # fmt: skip
    assert values[40] == 20.0 and math.isnan(values[55]) and values[65] == 45.0
