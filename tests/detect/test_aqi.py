"""IAQI / AQI per HJ 633 (detect/_aqi.py, data/standards/hj633.yaml), hand-checked."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detect._aqi import hj633
from tests.detect import naive
from tianwang.standards import StandardError, gb3095

OLD = date(2015, 6, 1)
NEW = date(2026, 6, 1)


def iaqi(day: date, q: str, p: str, c: list[float], fallback: list[float] | None = None):
    fb = None if fallback is None else np.array(fallback)
    return hj633().edition(day).iaqi(q, p, np.array(c, np.float64), fb).tolist()


def test_editions_change_on_2026_03_01():
    assert hj633().edition(date(2026, 2, 28)).name == "HJ 633-2012"
    assert hj633().edition(date(2026, 3, 1)).name == "HJ 633-2026"
    assert hj633().edition(NEW, "HJ 633-2012").name == "HJ 633-2012"
    with pytest.raises(StandardError):
        hj633().edition(NEW, "HJ 633-1999")


def test_breakpoints_map_exactly_to_their_levels():
    assert iaqi(OLD, "PM2.5", "24h", [0, 35, 75, 115, 150, 250, 350, 500]) == [
        0,
        50,
        100,
        150,
        200,
        300,
        400,
        500,
    ]
    assert iaqi(NEW, "PM2.5", "24h", [60]) == [100]
    assert iaqi(NEW, "PM10", "24h", [120]) == [100]
    assert iaqi(OLD, "PM10", "24h", [120]) == [85]  # 50 + 50 * 70 / 100


def test_interpolation_rounds_up():
    # PM2.5 36: 50 + 50 / 40 * 1 = 51.25 -> 52 (HJ 633 §6.2: 全部进位取整数)
    assert iaqi(OLD, "PM2.5", "24h", [36]) == [52]
    assert iaqi(OLD, "CO", "24h", [2.1]) == [53]  # 50 + 50 / 2 * 0.1 = 52.5
    assert iaqi(OLD, "SO2", "24h", [50.0000001]) == [51]


def test_missing_or_negative_concentration_gives_nan():
    assert all(math.isnan(x) for x in iaqi(OLD, "NO2", "24h", [math.nan, -1.0]))


def test_top_of_table_caps_at_500():
    assert iaqi(OLD, "PM2.5", "24h", [600, 999]) == [500, 500]


def test_so2_1h_above_800():
    # 2012 note 2: no 1-h IAQI; the 24-h IAQI is reported instead
    assert iaqi(OLD, "SO2", "1h", [801], fallback=[150]) == [100]
    assert math.isnan(iaqi(OLD, "SO2", "1h", [801])[0])
    assert iaqi(OLD, "SO2", "1h", [800], fallback=[150]) == [200]  # at 800 the 1-h row holds
    # 2026: counted as 200
    assert iaqi(NEW, "SO2", "1h", [801, 5000]) == [200, 200]


def test_o3_8h_above_800():
    # 2012 note 3: no 8-h IAQI; the 1-h IAQI is reported instead (O3 1h 1000 -> 400)
    assert iaqi(OLD, "O3", "8h_max", [900], fallback=[1000]) == [400]
    assert iaqi(NEW, "O3", "8h_max", [900]) == [300]
    assert iaqi(NEW, "O3", "8h", [800]) == [300]


def test_iaqi_100_equals_gb3095_grade_ii_and_50_grade_i():
    """README cross-check: HJ 633-2012 IAQI=100 breakpoints equal the GB 3095-2012 grade II
    limits; the same holds for HJ 633-2026 and GB 3095-2026 (transitional) particulates."""
    for day in (OLD, NEW):
        for q, p, gp in [
            ("PM2.5", "24h", "24h"),
            ("PM10", "24h", "24h"),
            ("O3", "8h", "8h_max"),
            ("SO2", "24h", "24h"),
            ("CO", "24h", "24h"),
        ]:
            limit = gb3095().limit(q, gp, 2, day)
            assert limit is not None
            assert iaqi(day, q, p, [limit.value]) == [100], (day, q)


def test_daily_aqi_and_primary_pollutants():
    std = hj633()
    got = std.daily_aqi({"PM2.5 24h": 120, "PM10 24h": 120, "O3 8h_max": 50}, NEW)
    assert got.aqi == 120 and got.primary == ("PM10", "PM2.5")  # ties all listed
    assert got.published  # incomplete, but above 100 (HJ 633-2026 §5.3)
    low = std.daily_aqi({"PM2.5 24h": 40, "O3 8h_max": 50}, NEW)
    assert low.primary == () and not low.published  # AQI <= 50: no primary; incomplete
    assert std.daily_aqi({}, NEW).aqi != std.daily_aqi({}, NEW).aqi  # NaN
    assert std.daily_aqi({"PM2.5 24h": 0.0}, NEW).aqi == 1  # 2026: AQI range 1-500
    assert std.daily_aqi({"PM2.5 24h": 0.0}, OLD).aqi == 0
    assert std.daily_aqi({"O3 1h_max": 80}, NEW).aqi != 80  # not a 2026 daily indicator


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 600), st.floats(0, 600))
def test_iaqi_is_monotone_and_vectorised(a, b):
    lo, hi = sorted([a, b])
    got = iaqi(OLD, "PM2.5", "24h", [lo, hi])
    assert got[0] <= got[1]
    assert got == [iaqi(OLD, "PM2.5", "24h", [lo])[0], iaqi(OLD, "PM2.5", "24h", [hi])[0]]


# rows copied from the standards README (HJ 633-2012 Table 1; 2026 Table 1 particulates)
README_ROWS = {
    (OLD, "PM2.5", "24h"): (0, 35, 75, 115, 150, 250, 350, 500),
    (NEW, "PM2.5", "24h"): (0, 35, 60, 115, 150, 250, 350, 500),
    (OLD, "PM10", "24h"): (0, 50, 150, 250, 350, 420, 500, 600),
    (NEW, "PM10", "24h"): (0, 50, 120, 250, 350, 420, 500, 600),
    (OLD, "SO2", "24h"): (0, 50, 150, 475, 800, 1600, 2100, 2620),
    (OLD, "NO2", "24h"): (0, 40, 80, 180, 280, 565, 750, 940),
    (OLD, "NO2", "1h"): (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    (OLD, "CO", "24h"): (0, 2, 4, 14, 24, 36, 48, 60),
    (OLD, "CO", "1h"): (0, 5, 10, 35, 60, 90, 120, 150),
    (OLD, "O3", "1h"): (0, 160, 200, 300, 400, 800, 1000, 1200),
}


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(sorted(README_ROWS, key=str)),
    st.lists(st.one_of(st.floats(-10, 5000), st.just(math.nan)), min_size=1, max_size=40),
)
def test_iaqi_matches_reference(row, concentrations):
    day, q, p = row
    got = iaqi(day, q, p, concentrations)
    expected = [naive.iaqi(README_ROWS[row], c) for c in concentrations]
    assert [x if x == x else None for x in got] == [x if x == x else None for x in expected]
