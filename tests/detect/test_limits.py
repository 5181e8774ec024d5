"""Detector against water (GB 3838), noise (GB 3096) and permit limits.

Every expected hourly value is computed here with plain numpy from the samples fed in, not
by the detector's code. Expected limits are the numbers of ../shared/standards/README.md
§1c (GB 3838-2002 Table 1) and §1d (GB 3096-2008 Table 1).
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from detect import (
    RULE_1H,
    Detector,
    DetectorConfig,
    ExceedanceEvent,
    ReadingBatch,
)
from tests.detect.test_detector import regulatory
from tianwang.standards import Permit

H = 3600
SHANGHAI = ZoneInfo("Asia/Shanghai")
RNG_SEED = 20260601


def local(year: int, month: int, day: int, hour: int) -> int:
    """Epoch seconds of a local (Asia/Shanghai) hour start."""
    return int(datetime(year, month, day, hour, tzinfo=SHANGHAI).timestamp())


T0 = local(2026, 6, 1, 10)  # 10:00 local, daytime for noise


def minutes(sid: int, hour_s: int, values: np.ndarray | list[float], first: int = 0,
            valid: np.ndarray | list[bool] | None = None) -> ReadingBatch:  # fmt: skip
    """One sample a minute from minute ``first`` of the hour, one per value."""
    values = np.asarray(values, np.float64)
    n = values.shape[0]
    return ReadingBatch(
        np.full(n, sid, np.int64),
        hour_s + 60 * (first + np.arange(n, dtype=np.int64)),
        values.copy(),
        np.ones(n, np.bool_) if valid is None else np.asarray(valid, np.bool_),
    )


def around(mean: float, sd: float, n: int = 60, seed: int = RNG_SEED) -> np.ndarray:
    """``n`` noisy minute values around ``mean``."""
    return mean + np.random.default_rng(seed).normal(0.0, sd, n)


def run(detector: Detector, sid: int, start_s: int,
        hours: list[np.ndarray | float]) -> list[ExceedanceEvent]:  # fmt: skip
    """Feed consecutive hours (an array of minute values, or one value for 60 minutes),
    then close the last hour."""
    events: list[ExceedanceEvent] = []
    for i, values in enumerate(hours):
        if np.isscalar(values):
            values = np.full(60, float(values))  # type: ignore[arg-type]
        events += detector.update(minutes(sid, start_s + i * H, values))  # type: ignore[arg-type]
    return regulatory(events + detector.close_until(start_s + len(hours) * H))


def energy_mean(levels: np.ndarray) -> float:
    """GB 3096 equivalent continuous level of equally long samples."""
    return float(10.0 * np.log10(np.mean(10.0 ** (np.asarray(levels) / 10.0))))


def brief(events: list[ExceedanceEvent]) -> list[tuple[str, int, float, float]]:
    """(kind, hour from T0, limit, peak), the peak rounded (a mean of 60 equal floats)."""
    return [(e.kind, (e.hour_start_s - T0) // H, e.limit, round(e.peak, 9)) for e in events]


# --- water: DO floor, pH range ------------------------------------------------------------


@pytest.mark.parametrize(
    ("water_class", "floor"),
    [
        pytest.param("III", 5.0, marks=()),
        pytest.param("II", 6.0, marks=()),
        ("V", None),  # floor 2: 4.2 meets it
    ],
)
def test_do_hourly_mean_below_the_class_floor_opens_an_episode(
    water_class: str, floor: float | None
) -> None:
    values = around(4.2, 0.3)
    expected = float(np.mean(values))
    detector = Detector()
    sid = detector.series_id("yy-w01", "DO", f"water:{water_class}")
    events = run(detector, sid, T0, [values])
    if floor is None:
        assert events == []
        assert detector.stats.hours_exceeded == 0
        return
    [event] = events
    assert (event.kind, event.rule, event.node, event.quantity, event.unit) == (
        "open", RULE_1H, "yy-w01", "DO", "mg/L"
    )  # fmt: skip
    assert (event.limit, event.standard, event.edition, event.clause) == (
        floor, "GB 3838", "GB 3838-2002", "Table 1"
    )  # fmt: skip
    assert event.value == pytest.approx(expected, rel=1e-12)
    assert event.peak == pytest.approx(expected, rel=1e-12)


def test_do_above_every_floor_gives_nothing() -> None:
    detector = Detector()
    for klass in ("I", "II", "III", "IV", "V"):
        sid = detector.series_id(f"w-{klass}", "DO", f"water:{klass}")
        assert run(detector, sid, T0, [around(8.0, 0.2)]) == []


@pytest.mark.parametrize(
    ("mean", "limit"), [(9.4, 9.0), (5.5, 6.0), (7.0, None), (9.0, None), (6.0, None)]
)
@pytest.mark.parametrize("water_class", ["I", "III", "V"])
def test_ph_outside_6_to_9_exceeds_on_either_side(
    mean: float, limit: float | None, water_class: str
) -> None:
    values = np.full(60, mean)
    values[::2] += 0.05
    values[1::2] -= 0.05  # mean unchanged, samples on both sides of it
    detector = Detector()
    sid = detector.series_id("yy-w01", "pH", f"water:{water_class}")
    events = run(detector, sid, T0, [values])
    if limit is None:
        assert events == []
        return
    [event] = events
    assert (event.kind, event.limit, event.standard, event.unit) == ("open", limit, "GB 3838", "pH")
    assert event.value == pytest.approx(float(np.mean(values)))


def test_water_hour_needs_45_minutes() -> None:
    detector = Detector()
    sid = detector.series_id("yy-w01", "pH", "water:III")
    assert run(detector, sid, T0, [np.full(44, 9.5), np.full(44, 5.0)]) == []
    assert detector.stats.hours_invalid == 2
    [event] = run(detector, sid, T0 + 2 * H, [np.full(45, 9.5)])
    assert event.kind == "open"


def test_cod_is_judged_against_the_target_class() -> None:
    values = around(25.0, 1.0)  # III: 20, IV: 30
    detector = Detector()
    iii = detector.series_id("w3", "COD", "water:III")
    iv = detector.series_id("w4", "COD", "water:IV")
    events = run(detector, iii, T0, [values]) + run(detector, iv, T0, [values])
    assert [(e.node, e.limit) for e in events] == [("w3", 20.0)]
    assert events[0].value == pytest.approx(float(np.mean(values)))


# --- hysteresis and peak on floors --------------------------------------------------------


def test_do_episode_closes_only_above_the_floor_plus_margin() -> None:
    # class III floor 5, close_margin 0.05: back inside only above 5.25
    detector = Detector()
    sid = detector.series_id("yy-w01", "DO", "water:III")
    events = run(detector, sid, T0, [4.2, 3.5, 5.1, 5.2, 4.9, 5.24, 5.3])
    assert brief(events) == [
        ("open", 0, 5.0, 4.2),
        ("update", 1, 5.0, 3.5),  # peak: the lowest value, furthest below the floor
        ("update", 4, 5.0, 3.5),
        ("close", 6, 5.0, 3.5),
    ]


def test_ph_low_episode_closes_only_above_6_3() -> None:
    detector = Detector()
    sid = detector.series_id("yy-w01", "pH", "water:III")
    events = run(detector, sid, T0, [5.5, 5.0, 5.8, 6.2, 6.29, 6.35])
    assert brief(events) == [
        ("open", 0, 6.0, 5.5),
        ("update", 1, 6.0, 5.0),
        ("update", 2, 6.0, 5.0),  # 5.8 exceeds but is not worse than 5.0
        ("close", 5, 9.0, 5.0),  # back inside: the bound reported is the ceiling
    ]


def test_ph_high_episode_closes_only_below_8_55() -> None:
    detector = Detector()
    sid = detector.series_id("yy-w01", "pH", "water:III")
    events = run(detector, sid, T0, [9.4, 9.8, 9.1, 8.6, 8.56, 8.5])
    assert brief(events) == [
        ("open", 0, 9.0, 9.4),
        ("update", 1, 9.0, 9.8),
        ("update", 2, 9.0, 9.8),
        ("close", 5, 9.0, 9.8),
    ]


def test_ph_swinging_from_high_to_low_stays_one_episode_with_the_worse_peak() -> None:
    # severity: 9.5 / 9 = 1.056, 6 / 5.5 = 1.091: the low value is further beyond its bound
    detector = Detector()
    sid = detector.series_id("yy-w01", "pH", "water:III")
    events = run(detector, sid, T0, [9.5, 5.5, 7.0])
    assert [(e.kind, e.limit, e.peak) for e in events] == [
        ("open", 9.0, 9.5), ("update", 6.0, 5.5), ("close", 9.0, 5.5),
    ]  # fmt: skip


# --- noise: day or night, energy mean -----------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "limit"),
    [(23, 50.0), (22, 50.0), (0, 50.0), (5, 50.0), (6, None), (10, None), (21, None)],
)
def test_noise_zone_2_night_limit_50_day_60(hour: int, limit: float | None) -> None:
    start = local(2026, 6, 1, hour)
    values = around(52.0, 0.5)
    detector = Detector()
    sid = detector.series_id("yy-n01", "LAeq", "noise:2")
    events = run(detector, sid, start, [values])
    if limit is None:
        assert events == []
        return
    [event] = events
    assert (event.kind, event.limit, event.standard, event.edition, event.unit) == (
        "open", limit, "GB 3096", "GB 3096-2008", "dB(A)"
    )  # fmt: skip
    assert event.value == pytest.approx(energy_mean(values), rel=1e-12)


def test_noise_day_at_62_db_exceeds_the_zone_2_day_limit_but_not_zone_3() -> None:
    detector = Detector()
    zone_2 = detector.series_id("n2", "LAeq", "noise:2")
    zone_3 = detector.series_id("n3", "LAeq", "noise:3")
    events = run(detector, zone_2, T0, [62.0]) + run(detector, zone_3, T0, [62.0])
    assert [(e.node, e.limit) for e in events] == [("n2", 60.0)]


@pytest.mark.parametrize(
    ("hour", "default_night", "custom_night"),
    [(6, False, True), (7, False, False), (21, False, False), (22, True, False),
     (23, True, True)],
)  # fmt: skip
def test_custom_noise_day_hours_move_the_boundary(
    hour: int, default_night: bool, custom_night: bool
) -> None:
    start = local(2026, 6, 1, hour)
    for config, night in ((DetectorConfig(), default_night),
                          (DetectorConfig(noise_day_hours=(7, 23)), custom_night)):  # fmt: skip
        detector = Detector(config)
        sid = detector.series_id("yy-n01", "LAeq", "noise:2")
        events = run(detector, sid, start, [52.0])
        assert [e.limit for e in events] == ([50.0] if night else []), config


def test_noise_hourly_value_is_the_energy_mean() -> None:
    values = np.array([70.0] * 30 + [40.0] * 30)
    expected = 10.0 * math.log10((10.0**7 + 10.0**4) / 2.0)  # ≈ 67.0
    assert expected == pytest.approx(energy_mean(values), rel=1e-12)
    assert expected == pytest.approx(66.99, abs=0.01)
    assert float(np.mean(values)) == 55.0  # arithmetic: would be within the day limit 60
    detector = Detector()
    sid = detector.series_id("yy-n01", "LAeq", "noise:2")
    [event] = run(detector, sid, T0, [values])
    assert (event.kind, event.limit) == ("open", 60.0)
    assert event.value == pytest.approx(expected, rel=1e-9)
    assert event.peak == pytest.approx(expected, rel=1e-9)


def test_noise_energy_mean_over_two_batches_and_ignores_invalid_samples() -> None:
    loud, quiet = np.full(20, 75.0), np.full(40, 45.0)
    detector = Detector()
    sid = detector.series_id("yy-n01", "LAeq", "noise:2")
    events = detector.update(minutes(sid, T0, loud))
    spikes = np.full(5, 120.0)  # flagged invalid: must not enter the Leq
    events += detector.update(minutes(sid, T0, spikes, first=20, valid=[False] * 5))
    events += detector.update(minutes(sid, T0, quiet, first=20))
    events += detector.close_until(T0 + H)
    [event] = regulatory(events)
    assert event.value == pytest.approx(energy_mean(np.concatenate([loud, quiet])), rel=1e-9)


def test_air_series_keep_the_arithmetic_mean_next_to_noise() -> None:
    detector = Detector()
    noise = detector.series_id("yy-n01", "LAeq", "noise:2")
    air = detector.series_id("yy-0001", "NO2", "air:2")
    no2 = np.array([100.0] * 30 + [320.0] * 30)  # arithmetic 210 > 200; energy would differ
    batch = ReadingBatch(
        np.concatenate([np.full(60, noise), np.full(60, air)]).astype(np.int64),
        np.tile(T0 + 60 * np.arange(60, dtype=np.int64), 2),
        np.concatenate([np.full(60, 40.0), no2]),
        np.ones(120, np.bool_),
    )
    events = detector.update(batch) + detector.close_until(T0 + H)
    [event] = regulatory(events)
    assert (event.node, event.limit) == ("yy-0001", 200.0)
    assert event.value == pytest.approx(float(np.mean(no2)))


def test_the_input_batch_is_not_mutated_by_the_energy_transform() -> None:
    detector = Detector()
    sid = detector.series_id("yy-n01", "LAeq", "noise:2")
    other = detector.series_id("yy-w01", "pH", "water:III")
    batch = ReadingBatch(
        np.array([sid] * 60 + [other] * 60, np.int64),
        np.tile(T0 + 60 * np.arange(60, dtype=np.int64), 2),
        np.concatenate([np.full(30, 70.0), np.full(30, 40.0), np.full(60, 7.2)]),
        np.ones(120, np.bool_),
    )
    before = [column.copy() for column in (batch.series, batch.ts_s, batch.value, batch.valid)]
    detector.update(batch)
    detector.close_until(T0 + H)
    for column, saved in zip((batch.series, batch.ts_s, batch.value, batch.valid), before,
                             strict=True):  # fmt: skip
        assert np.array_equal(column, saved)


# --- permits ------------------------------------------------------------------------------

PERMIT = Permit(
    "zb-001",
    "Yiyuan Paper Co.",
    "排污许可证 91370323 §3",
    {("COD", "1h"): (-math.inf, 50.0), ("DO", "1h"): (4.0, math.inf)},
)


def test_permit_cod_limit_judges_the_site_not_gb_3838() -> None:
    detector = Detector(permits={PERMIT.id: PERMIT})
    sid = detector.series_id("src", "COD", "permit:zb-001")
    ambient = detector.series_id("river", "COD", "water:III")  # III: 20
    values = around(45.0, 1.0)
    events = run(detector, sid, T0, [values]) + run(detector, ambient, T0, [values])
    assert [(e.node, e.limit, e.standard) for e in events] == [("river", 20.0, "GB 3838")]
    values = around(60.0, 1.0, seed=RNG_SEED + 1)
    [event] = run(detector, sid, T0 + H, [values])
    assert (event.kind, event.node, event.limit) == ("open", "src", 50.0)
    assert (event.standard, event.edition, event.clause) == (
        "permit zb-001", "zb-001", "排污许可证 91370323 §3"
    )  # fmt: skip
    assert event.value == pytest.approx(float(np.mean(values)))


def test_permit_quantity_it_does_not_cover_gives_no_events() -> None:
    detector = Detector(permits={PERMIT.id: PERMIT})
    sid = detector.series_id("src", "NH3-N", "permit:zb-001")
    assert run(detector, sid, T0, [50.0]) == []


def test_permit_min_only_limit_is_a_floor() -> None:
    detector = Detector(permits={PERMIT.id: PERMIT})
    sid = detector.series_id("src", "DO", "permit:zb-001")
    [event] = run(detector, sid, T0, [3.5, 4.5])[:1]
    assert (event.kind, event.limit, event.standard) == ("open", 4.0, "permit zb-001")


# --- checkpoint and restore ---------------------------------------------------------------


def _split_run(tmp_path: Path, split: bool, config: DetectorConfig | None = None,
               permits: dict[str, Permit] | None = None) -> list[ExceedanceEvent]:  # fmt: skip
    """A water series (pH), a noise series (LAeq, night) and a permit series (COD), each in
    an episode and mid-hour when the detector is checkpointed."""
    start = local(2026, 6, 1, 21)  # 21:00 day, 22:00 and 23:00 night (default hours)
    detector = Detector(config, permits)
    keys = [("yy-w01", "pH", "water:III"), ("yy-n01", "LAeq", "noise:2")]
    if permits:
        keys.append(("src", "COD", "permit:zb-001"))
    sids = [detector.series_id(*key) for key in keys]
    first = {"pH": 9.5, "LAeq": 63.0, "COD": 60.0}  # all exceed in hour 0
    loud = {"pH": 9.7, "LAeq": 70.0, "COD": 80.0}  # hour 1, first half
    late = {"pH": 9.1, "LAeq": 40.0, "COD": 40.0}  # hour 1, second half
    calm = {"pH": 7.5, "LAeq": 40.0, "COD": 20.0}  # hour 2: every episode closes
    events: list[ExceedanceEvent] = []
    for sid, (_, quantity, _) in zip(sids, keys, strict=True):
        events += detector.update(minutes(sid, start, np.full(60, first[quantity])))
        events += detector.update(minutes(sid, start + H, np.full(30, loud[quantity])))
    if split:
        detector.checkpoint(tmp_path / "detector.npz")
        detector = Detector.restore(tmp_path / "detector.npz", permits=permits)
        assert [detector.series_id(*key) for key in keys] == sids
    for sid, (_, quantity, _) in zip(sids, keys, strict=True):
        events += detector.update(minutes(sid, start + H, np.full(30, late[quantity]), first=30))
        events += detector.update(minutes(sid, start + 2 * H, np.full(60, calm[quantity])))
    return regulatory(events + detector.close_until(start + 3 * H))


def test_restore_mid_hour_with_water_and_noise_gives_the_same_events(tmp_path: Path) -> None:
    straight = _split_run(tmp_path, split=False)
    restored = _split_run(tmp_path, split=True)
    assert restored == straight
    by_quantity = {q: [e for e in restored if e.quantity == q] for q in ("pH", "LAeq")}
    assert [e.kind for e in by_quantity["pH"]] == ["open", "update", "close"]
    assert [e.kind for e in by_quantity["LAeq"]] == ["open", "update", "close"]
    # the hour split by the checkpoint kept both halves: arithmetic for pH, energy for noise
    assert by_quantity["pH"][1].value == pytest.approx((9.7 + 9.1) / 2)
    noise_hour = np.array([70.0] * 30 + [40.0] * 30)
    assert by_quantity["LAeq"][1].value == pytest.approx(energy_mean(noise_hour), rel=1e-9)
    # 21:00 is day (60): 63 opens; 22:00 is night (50)
    assert [e.limit for e in by_quantity["LAeq"]] == [60.0, 50.0, 50.0]


def test_restore_keeps_custom_noise_day_hours(tmp_path: Path) -> None:
    # day 07-23: 21:00 and 22:00 are day (60), 23:00 night (50); default: 22:00 is night
    config = DetectorConfig(noise_day_hours=(7, 23))
    straight = _split_run(tmp_path, split=False, config=config)
    restored = _split_run(tmp_path, split=True, config=config)
    assert restored == straight
    assert [e.limit for e in restored if e.quantity == "LAeq"] == [60.0, 60.0, 50.0]


def test_restore_mid_hour_with_a_permit_series_gives_the_same_events(tmp_path: Path) -> None:
    permits = {PERMIT.id: PERMIT}
    straight = _split_run(tmp_path, split=False, permits=permits)
    restored = _split_run(tmp_path, split=True, permits=permits)
    assert [e.kind for e in straight if e.quantity == "COD"] == ["open", "update", "close"]
    assert restored == straight
