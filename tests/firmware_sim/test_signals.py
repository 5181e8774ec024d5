"""The baseline signal model: daily shapes, weather-like variation, determinism, units."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import SimulatedDriver
from firmware_sim._baseline import CommonWeather, signal_defaults
from tests.firmware_sim.conftest import quiet, read, scenario, series
from tianwang.quantities import quantity_table
from tianwang.registry import Registry

LOCAL_MIDNIGHT = datetime(2026, 6, 1, tzinfo=UTC).timestamp() - 8 * 3600  # 00:00 +08:00


def local_hours(times: np.ndarray) -> np.ndarray:
    return ((times - LOCAL_MIDNIGHT) % 86400) / 3600


def run(registry: Registry, tmp: Path, node: str, quantity: str, days: float, step_s: float,
        **sections: object) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    sc = scenario(registry, tmp, duration_h=days * 24, **sections)
    start = sc.start_time(0.0)
    driver = SimulatedDriver(registry.nodes[node], sc, start)
    times = start + step_s * np.arange(int(days * 86400 / step_s))
    return times, np.array(series(driver, list(times), quantity))


def test_packaged_defaults_cover_every_quantity(grid: Registry, tmp_path: Path) -> None:
    sc = scenario(grid, tmp_path)
    assert set(sc.baseline) == set(quantity_table().quantities)
    assert signal_defaults().night_hours == (22.0, 6.0)
    for q, b in sc.baseline.items():
        assert b.mean > 0 and b.weather_sd > 0 and b.noise > 0, q


def test_o3_peaks_in_the_afternoon_and_no2_at_rush_hours(grid: Registry, tmp_path: Path) -> None:
    times, o3 = run(grid, tmp_path, "e1", "O3", days=20, step_s=600)
    _, no2 = run(grid, tmp_path, "e1", "NO2", days=20, step_s=600)
    hour = local_hours(times)
    afternoon, night = (hour >= 12) & (hour < 17), hour < 5
    assert o3[afternoon].mean() > o3[night].mean() + 30
    morning, evening = (hour >= 7) & (hour < 9), (hour >= 19) & (hour < 21)
    assert no2[morning].mean() > no2[afternoon].mean() + 8
    assert no2[evening].mean() > no2[afternoon].mean() + 8
    profile_o3 = [o3[np.floor(hour) == h].mean() for h in range(24)]
    profile_no2 = [no2[np.floor(hour) == h].mean() for h in range(24)]
    assert np.corrcoef(profile_o3, profile_no2)[0, 1] < -0.5  # anti-correlated shapes


def test_do_peaks_by_day(grid: Registry, tmp_path: Path) -> None:
    times, do = run(grid, tmp_path, "w1", "DO", days=20, step_s=600)
    hour = local_hours(times)
    assert do[(hour >= 13) & (hour < 17)].mean() > do[hour < 5].mean() + 1.5


def test_noise_has_gb3096_day_and_night_levels(grid: Registry, tmp_path: Path) -> None:
    baseline = {"LAeq": {"mean": 55, "diurnal": 0, "noise": 0, "weather_sd": 0,
                         "night_offset": -10}}  # fmt: skip
    sc = scenario(grid, tmp_path, baseline=baseline)
    driver = SimulatedDriver(grid.nodes["s1"], sc, sc.start_time(0.0))
    at = {  # local time -> expected level; night is [22:00, 06:00)
        "05:59": 45.0, "06:00": 55.0, "12:00": 55.0, "21:59": 55.0, "22:00": 45.0, "23:59": 45.0,
    }  # fmt: skip
    for clock, expected in at.items():
        h, m = map(int, clock.split(":"))
        (value,) = read(driver, LOCAL_MIDNIGHT + h * 3600 + m * 60)
        assert value.quantity == "LAeq" and value.unit == "dB(A)"
        assert value.value == expected, clock


WEATHER_ONLY = {"mean": 1000, "diurnal": 0, "noise": 0, "weather_sd": 50, "weather_tau_h": 1,
                "common_fraction": 0}  # fmt: skip


def test_weather_variation_has_the_configured_time_constant(grid: Registry, tmp_path: Path) -> None:
    _, o3 = run(grid, tmp_path, "e1", "O3", days=25, step_s=60, baseline={"O3": WEATHER_ONLY})
    x = o3 - o3.mean()
    lag1 = np.dot(x[:-1], x[1:]) / np.dot(x, x)
    tau_s = -60 / math.log(lag1)
    assert 0.8 * 3600 < tau_s < 1.25 * 3600
    lag_tau = np.dot(x[:-60], x[60:]) / np.dot(x, x)
    assert abs(lag_tau - math.exp(-1)) < 0.1
    assert 40 < x.std() < 60


@pytest.mark.parametrize("share", [0.0, 0.8])
def test_common_component_correlates_neighbours(
    grid: Registry, tmp_path: Path, share: float
) -> None:
    baseline = {"O3": {**WEATHER_ONLY, "common_fraction": share}}
    sc = scenario(grid, tmp_path, duration_h=50 * 24, baseline=baseline)
    start = sc.start_time(0.0)
    a, b = (SimulatedDriver(grid.nodes[n], sc, start) for n in ("e1", "e2"))
    times = [start + 600 * k for k in range(50 * 144)]
    corr = np.corrcoef(series(a, times, "O3"), series(b, times, "O3"))[0, 1]
    assert abs(corr - share) < 0.12


def test_same_seed_same_values_other_seed_or_node_other_values(
    grid: Registry, tmp_path: Path
) -> None:
    def values(seed: int, node: str) -> list[float]:
        sc = scenario(grid, tmp_path, seed=seed)
        driver = SimulatedDriver(grid.nodes[node], sc, sc.start_time(0.0))
        times = [sc.start_time(0.0) + 60 * k for k in range(200)]
        return [v.value for t in times for v in read(driver, t)]

    first = values(1, "e1")
    assert values(1, "e1") == first
    assert values(2, "e1") != first
    assert values(1, "e2") != first


def test_county_weather_is_the_same_whatever_the_order_of_asking() -> None:
    tau = np.array([3600.0, 86400.0])
    forward = CommonWeather(5, ("O3", "pH"), tau, 60.0)
    backward = CommonWeather(5, ("O3", "pH"), tau, 60.0)
    knots = [10**6 + k * 997 for k in range(20)]
    ahead = [forward.knot(k).copy() for k in knots]
    behind = [backward.knot(k).copy() for k in reversed(knots)][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(ahead, behind, strict=True))
    other_seed = CommonWeather(6, ("O3", "pH"), tau, 60.0)
    assert not np.array_equal(other_seed.knot(knots[0]), ahead[0])


def test_values_are_in_the_physical_range_and_rounded(grid: Registry, tmp_path: Path) -> None:
    sc = scenario(grid, tmp_path, baseline={"PM2.5": {"mean": 1, "noise": 30}})
    driver = SimulatedDriver(grid.nodes["e1"], sc, sc.start_time(0.0))
    values = series(driver, [sc.start_time(0.0) + 60 * k for k in range(500)], "PM2.5")
    assert min(values) == 0.0  # clipped, never negative
    assert all(round(v, 3) == v for v in values)


def test_a_sensor_reports_in_its_configured_unit(grid: Registry, tmp_path: Path) -> None:
    baseline = quiet("NO2")
    baseline["NO2"]["unit"] = "ppb"
    sc = scenario(grid, tmp_path, baseline=baseline)
    driver = SimulatedDriver(grid.nodes["e1"], sc, sc.start_time(0.0))
    (no2,) = [v for v in read(driver, sc.start_time(0.0)) if v.quantity == "NO2"]
    assert no2.unit == "ppb"
    assert no2.value == pytest.approx(10.0 / quantity_table().factor("NO2", "ppb"), abs=1e-3)
    assert no2.value * quantity_table().factor("NO2", "ppb") == pytest.approx(10.0, abs=1e-3)
