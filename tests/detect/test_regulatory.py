"""DailyMeans and EightHourMeans (Numba kernels) against naive.py and hand-checked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detect._hourly import ClosedHours
from detect._regulatory import ClosedDays, ClosedMax8h, DailyMeans, EightHourMeans
from tests.detect import naive
from tests.detect.naive import HourMean

H = 3600
DAY = 86400
CST = 8 * H  # Asia/Shanghai
D0 = 1_717_171_200  # 2024-06-01T00:00+08:00 (a local midnight), epoch s


def closed(rows: list[HourMean]) -> ClosedHours:
    return ClosedHours(
        np.array([r.series for r in rows], np.int64),
        np.array([r.hour_start_s for r in rows], np.int64),
        np.array([r.mean for r in rows], np.float64),
        np.array([r.minutes for r in rows], np.int64),
    )


def day_of(values: list[float], start: int = D0, series: int = 0) -> list[HourMean]:
    """Consecutive full hours from ``start``; NaN values are hours without data."""
    return [
        HourMean(series, start + i * H, v, 0 if math.isnan(v) else 60) for i, v in enumerate(values)
    ]


def new(cls, n_series: int, capacity: int = 1024):
    state = cls(capacity=capacity)
    for i in range(n_series):
        assert state.add_series() == i
    return state


def day_rows(days: ClosedDays) -> dict[tuple[int, int], tuple[float, int]]:
    return {
        (int(s), int(d)): (float(m), int(n))
        for s, d, m, n in zip(
            days.series, days.day_start_s, days.mean, days.valid_hours, strict=True
        )
    }


def max_rows(days: ClosedMax8h) -> dict[tuple[int, int], tuple[float, int]]:
    return {
        (int(s), int(d)): (float(m), int(n))
        for s, d, m, n in zip(
            days.series, days.day_start_s, days.max8h, days.valid_windows, strict=True
        )
    }


def run_daily(rows: list[HourMean], n_series: int, offset: int, cuts: list[int], capacity=1024):
    state = new(DailyMeans, n_series, capacity)
    out: dict[tuple[int, int], tuple[float, int]] = {}
    emitted = 0
    for lo, hi in itertools.pairwise([0, *cuts, len(rows)]):
        got = state.update(closed(rows[lo:hi]), offset)
        emitted += len(got)
        out |= day_rows(got)
    end = max((r.hour_start_s for r in rows), default=D0) + 2 * DAY
    got = state.close_until(end)
    emitted += len(got)
    out |= day_rows(got)
    assert emitted == len(out), "a day was emitted twice"
    assert len(state.close_until(end + 10 * DAY)) == 0
    return out, state.late


def run_eight(rows: list[HourMean], n_series: int, offset: int, cuts: list[int], capacity=1024):
    state = new(EightHourMeans, n_series, capacity)
    days: dict[tuple[int, int], tuple[float, int]] = {}
    moving: dict[tuple[int, int], tuple[float, int]] = {}
    emitted = 0
    for lo, hi in itertools.pairwise([0, *cuts, len(rows)]):
        mov, got = state.update(closed(rows[lo:hi]), offset)
        emitted += len(got)
        days |= max_rows(got)
        for s, h, m, n in zip(mov.series, mov.hour_start_s, mov.mean, mov.valid_hours, strict=True):
            if (int(s), int(h)) not in moving:  # a late duplicate does not replace the first
                moving[(int(s), int(h))] = (float(m), int(n))
    end = max((r.hour_start_s for r in rows), default=D0) + 2 * DAY
    got = state.close_until(end)
    emitted += len(got)
    days |= max_rows(got)
    assert emitted == len(days), "a day was emitted twice"
    return days, moving, state.late


def same(a: tuple[float, int], b: tuple[float, int]) -> bool:
    if a[1] != b[1]:
        return False
    if math.isnan(a[0]) or math.isnan(b[0]):
        return math.isnan(a[0]) and math.isnan(b[0])
    return math.isclose(a[0], b[0], rel_tol=1e-12, abs_tol=1e-9)


# --- hand-checked cases --------------------------------------------------------------------


def test_19_valid_hours_give_no_daily_mean_and_20_do():
    nineteen = day_of([10.0] * 19 + [math.nan] * 5)
    twenty = day_of([10.0] * 19 + [30.0] + [math.nan] * 4, start=D0 + DAY)
    got, _ = run_daily(nineteen + twenty, 1, CST, [])
    assert math.isnan(got[(0, D0)][0]) and got[(0, D0)][1] == 19
    assert got[(0, D0 + DAY)] == (11.0, 20)  # (19 * 10 + 30) / 20


def test_hours_with_under_45_minutes_are_not_valid_hourly_means():
    rows = [HourMean(0, D0 + i * H, 10.0, 60) for i in range(20)]
    rows[3] = HourMean(0, D0 + 3 * H, 1000.0, 44)  # GB 3095-2026 Table 4: >= 45 min
    got, _ = run_daily(rows, 1, CST, [])
    assert math.isnan(got[(0, D0)][0]) and got[(0, D0)][1] == 19


def test_natural_day_is_local():
    # the hour 15:00-16:00 UTC is 23:00-24:00 local (day D0), 16:00 UTC starts the next day
    last = HourMean(0, D0 + 23 * H, 1.0, 60)
    first_next = HourMean(0, D0 + 24 * H, 1.0, 60)
    got, _ = run_daily([last, first_next], 1, CST, [])
    assert set(got) == {(0, D0), (0, D0 + DAY)}
    got_utc, _ = run_daily([last, first_next], 1, 0, [])
    assert set(got_utc) == {(0, D0 + 8 * H)}  # both in the UTC day 2024-06-01


def test_window_with_5_valid_hours_is_invalid_and_6_is_valid():
    five = day_of([math.nan] * 3 + [10.0] * 5)
    _, moving, _ = run_eight(five, 1, CST, [])
    assert math.isnan(moving[(0, D0 + 7 * H)][0]) and moving[(0, D0 + 7 * H)][1] == 5
    six = day_of([math.nan] * 2 + [10.0] * 5 + [40.0])
    _, moving, _ = run_eight(six, 1, CST, [])
    assert moving[(0, D0 + 7 * H)] == (15.0, 6)


def test_daily_max_8h_uses_windows_t8_to_t24_only():
    previous = day_of([1000.0] * 24, start=D0 - DAY)  # high the day before
    today = day_of([10.0] * 23 + [math.nan])
    days, moving, _ = run_eight(previous + today, 1, CST, [])
    assert moving[(0, D0)][0] > 10.0  # window T1 of today reaches into yesterday: not used
    # 17 windows T8..T24; T24 (hours 17..24, hour 24 missing) has 7 valid hours: valid
    assert days[(0, D0)] == (10.0, 17)


def test_daily_max_8h_hand_count_of_windows():
    today = day_of([10.0] * 16 + [50.0] * 8)  # hours 17..24 (labels) at 50
    days, _, _ = run_eight(today, 1, CST, [])
    assert days[(0, D0)] == (50.0, 17)  # windows T8..T24: 17 of them, T24 = 50


def test_late_hours_are_skipped_and_counted():
    rows = day_of([10.0] * 24)
    rows.insert(5, HourMean(0, D0 + 2 * H, 1000.0, 60))  # out of order
    got, late = run_daily(rows, 1, CST, [])
    assert late == 1 and got[(0, D0)] == (10.0, 24)
    state = new(DailyMeans, 1)
    state.update(closed(day_of([10.0] * 24)), CST)
    assert len(state.close_until(D0 + DAY)) == 1
    state.update(closed([HourMean(0, D0 + 23 * H, 1.0, 60)]), CST)  # the closed day again
    assert state.late == 1


def test_unknown_series_is_refused():
    state = new(DailyMeans, 1)
    try:
        state.update(closed([HourMean(1, D0, 1.0, 60)]), CST)
    except ValueError:
        return
    raise AssertionError("expected ValueError")


# --- random inputs against the reference ---------------------------------------------------


def random_hours(rng: np.random.Generator, n_series: int, p_late: float) -> list[HourMean]:
    per: list[list[HourMean]] = []
    for s in range(n_series):
        t = D0 + int(rng.integers(-30, 30)) * H
        rows = []
        for _ in range(int(rng.integers(0, 120))):
            t += H * (int(rng.integers(2, 30)) if rng.random() < 0.05 else 1)
            h = t - int(rng.integers(1, 40)) * H if rng.random() < p_late else t
            u = rng.random()
            mean = math.nan if u < 0.1 else float(rng.uniform(0, 300))
            minutes = int(rng.choice([0, 30, 44, 45, 60])) if rng.random() < 0.3 else 60
            rows.append(HourMean(s, h, mean, minutes))
        per.append(rows)
    labels = np.repeat(np.arange(n_series), [len(r) for r in per])
    rng.shuffle(labels)
    cursor = [0] * n_series
    out = []
    for s in labels.tolist():
        out.append(per[s][cursor[s]])
        cursor[s] += 1
    return out


offsets = st.sampled_from([CST, 0, -5 * H, 19800])
cases = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from([0.0, 0.05]), offsets
)


@settings(max_examples=60, deadline=None)
@given(case=cases, data=st.data())
def test_daily_means_match_reference_whatever_the_batches(case, data):
    seed, n_series, p_late, offset = case
    rows = random_hours(np.random.default_rng(seed), n_series, p_late)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=6)))
    batch = closed(rows)
    before = [a.copy() for a in (batch.series, batch.hour_start_s, batch.mean, batch.minutes)]
    got, late = run_daily(rows, n_series, offset, cuts, capacity=1)
    expected = naive.daily_means(rows, offset)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert same(got[key], value), (key, got[key], value)
    assert late == naive.in_order(rows)[1]
    state = new(DailyMeans, n_series)
    state.update(batch, offset)  # the inputs are not mutated
    after = (batch.series, batch.hour_start_s, batch.mean, batch.minutes)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(case=cases, data=st.data())
def test_eight_hour_means_match_reference_whatever_the_batches(case, data):
    seed, n_series, p_late, offset = case
    rows = random_hours(np.random.default_rng(seed), n_series, p_late)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=6)))
    batch = closed(rows)
    copies = [a.copy() for a in (batch.series, batch.hour_start_s, batch.mean, batch.minutes)]
    state = new(EightHourMeans, n_series, capacity=1)
    state.update(batch, offset)  # the inputs are not mutated
    for a, b in zip(
        copies, (batch.series, batch.hour_start_s, batch.mean, batch.minutes), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    days, moving, late = run_eight(rows, n_series, offset, cuts, capacity=1)
    kept, expected_late = naive.in_order(rows)
    assert late == expected_late
    expected_moving = naive.moving_8h(rows)
    for h in kept:
        key = (h.series, h.hour_start_s)
        assert same(moving[key], expected_moving[key]), (key, moving[key], expected_moving[key])
    expected = naive.daily_max_8h(rows, offset)
    assert set(days) == set(expected)
    for key, value in expected.items():
        assert same(days[key], value), (key, days[key], value)
