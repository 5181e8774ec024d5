"""GB 3095 limit tables: the edition in force on a date, pinning, and the limit values."""

from __future__ import annotations

import math
from datetime import date

import pytest

from tianwang.standards import (
    Limit,
    LimitBook,
    Permit,
    StandardError,
    gb3095,
    gb3096,
    gb3838,
    noise_day_hours,
)

E2012 = "GB 3095-2012"
E2026_TRANSITIONAL = "GB 3095-2026 (transitional)"
E2026 = "GB 3095-2026"


@pytest.mark.parametrize(
    ("day", "edition"),
    [
        (date(2012, 2, 29), E2012),
        (date(2016, 5, 1), E2012),
        (date(2026, 2, 28), E2012),
        (date(2026, 3, 1), E2026_TRANSITIONAL),
        (date(2030, 12, 31), E2026_TRANSITIONAL),
        (date(2031, 1, 1), E2026),
        (date(2099, 1, 1), E2026),
    ],
)
def test_edition_in_force(day: date, edition: str) -> None:
    assert gb3095().edition(day).name == edition


def test_no_edition_before_2012() -> None:
    with pytest.raises(StandardError, match="none in force on 2012-02-28"):
        gb3095().edition(date(2012, 2, 28))


@pytest.mark.parametrize("pinned", [E2012, E2026_TRANSITIONAL, E2026])
@pytest.mark.parametrize("day", [date(2016, 5, 1), date(2027, 1, 1), date(2035, 1, 1)])
def test_pinned_edition_wins(day: date, pinned: str) -> None:
    assert gb3095().edition(day, pinned).name == pinned


def test_unknown_pinned_edition() -> None:
    with pytest.raises(StandardError, match="GB 3095-1996"):
        gb3095().edition(date(2016, 5, 1), "GB 3095-1996")
    with pytest.raises(StandardError):
        gb3095().limit("NO2", "1h", 2, date(2016, 5, 1), "GB 3095-1996")


@pytest.mark.parametrize(
    ("quantity", "value"), [("NO2", 200), ("SO2", 500), ("O3", 200), ("CO", 10)]
)
@pytest.mark.parametrize("day", [date(2016, 5, 1), date(2027, 1, 1)])
def test_one_hour_grade_ii_limits(quantity: str, value: float, day: date) -> None:
    limit = gb3095().limit(quantity, "1h", 2, day)
    assert limit is not None
    assert limit.value == value


def test_o3_one_hour_grade_i_is_stricter() -> None:
    limit = gb3095().limit("O3", "1h", 1, date(2016, 5, 1))
    assert limit is not None
    assert limit.value == 160


@pytest.mark.parametrize(
    ("day", "value", "edition"),
    [
        (date(2016, 5, 1), 75, E2012),
        (date(2026, 3, 1), 60, E2026_TRANSITIONAL),
        (date(2031, 1, 1), 50, E2026),
    ],
)
def test_pm25_24h_grade_ii(day: date, value: float, edition: str) -> None:
    assert gb3095().limit("PM2.5", "24h", 2, day) == Limit(
        "GB 3095", edition, gb3095().edition(day).clause, "PM2.5", "24h", value
    )


def test_pinned_edition_sets_the_limit() -> None:
    limit = gb3095().limit("PM2.5", "24h", 2, date(2031, 1, 1), E2012)
    assert limit is not None
    assert (limit.edition, limit.value) == (E2012, 75)


@pytest.mark.parametrize("quantity", ["PM2.5", "PM10"])
def test_no_one_hour_limit_for_particles(quantity: str) -> None:
    assert gb3095().limit(quantity, "1h", 2, date(2016, 5, 1)) is None


def test_unknown_quantity_or_grade_has_no_limit() -> None:
    assert gb3095().limit("COD", "1h", 2, date(2016, 5, 1)) is None
    assert gb3095().limit("NO2", "1h", 3, date(2016, 5, 1)) is None


def test_limit_names_its_source() -> None:
    limit = gb3095().limit("NO2", "1h", 2, date(2016, 5, 1))
    assert limit == Limit("GB 3095", E2012, "Table 1", "NO2", "1h", 200.0)


# --- GB 3838-2002 surface water, GB 3096-2008 noise, permits, LimitBook -------------------
# Expected values are copied from ../shared/standards/README.md §1c (GB 3838 Table 1) and
# §1d (GB 3096 Table 1), not from the data files under test.

DAY = date(2026, 6, 1)
CLASSES = ("I", "II", "III", "IV", "V")
README_1C = {  # item: (direction, I, II, III, IV, V)
    "DO": ("min", 7.5, 6, 5, 3, 2),  # class I: "saturation 90% (or 7.5)"
    "CODMn": ("max", 2, 4, 6, 10, 15),
    "COD": ("max", 15, 15, 20, 30, 40),
    "NH3-N": ("max", 0.15, 0.5, 1.0, 1.5, 2.0),
    "TP": ("max", 0.02, 0.1, 0.2, 0.3, 0.4),
    "Hg": ("max", 0.00005, 0.00005, 0.0001, 0.001, 0.001),
}
README_1D = {  # zone: (day, night)
    "0": (50, 40),
    "1": (55, 45),
    "2": (60, 50),
    "3": (65, 55),
    "4a": (70, 55),
    "4b": (70, 60),
}


@pytest.mark.parametrize(("klass", "column"), [(c, i) for i, c in enumerate(CLASSES)])
@pytest.mark.parametrize("quantity", sorted(README_1C))
def test_gb3838_class_limits_match_the_readme(quantity: str, klass: str, column: int) -> None:
    direction, *values = README_1C[quantity]
    limit = gb3838().limit(quantity, "1h", klass, DAY)
    assert limit is not None
    assert (limit.standard, limit.edition, limit.clause) == ("GB 3838", "GB 3838-2002", "Table 1")
    expected = float(values[column])
    if direction == "min":
        assert (limit.lower, limit.value) == (expected, math.inf)
    else:
        assert (limit.lower, limit.value) == (-math.inf, expected)


@pytest.mark.parametrize("klass", CLASSES)
def test_gb3838_ph_is_6_to_9_for_every_class(klass: str) -> None:
    limit = gb3838().limit("pH", "1h", klass, DAY)
    assert limit is not None
    assert (limit.lower, limit.value) == (6.0, 9.0)


def test_gb3838_sets_only_the_1h_period_and_known_classes() -> None:
    assert gb3838().limit("COD", "24h", "III", DAY) is None
    assert gb3838().limit("COD", "1h", "VI", DAY) is None
    assert gb3838().limit("NO2", "1h", "III", DAY) is None


@pytest.mark.parametrize("zone", sorted(README_1D))
def test_gb3096_day_and_night_for_every_zone(zone: str) -> None:
    day_db, night_db = README_1D[zone]
    day = gb3096().limit("LAeq", "1h_day", zone, DAY)
    night = gb3096().limit("LAeq", "1h_night", zone, DAY)
    assert day is not None and night is not None
    assert (day.value, night.value) == (day_db, night_db)
    assert day.lower == night.lower == -math.inf
    assert (day.standard, day.edition) == ("GB 3096", "GB 3096-2008")


def test_gb3096_default_day_is_06_to_22() -> None:
    assert noise_day_hours() == (6, 22)


@pytest.mark.parametrize(
    ("limit_class", "quantity", "night", "expected"),
    [
        ("air:2", "NO2", False, ("GB 3095", -math.inf, 200.0)),
        ("air:1", "O3", False, ("GB 3095", -math.inf, 160.0)),
        ("water:III", "DO", False, ("GB 3838", 5.0, math.inf)),
        ("water:I", "NH3-N", False, ("GB 3838", -math.inf, 0.15)),
        ("water:V", "pH", False, ("GB 3838", 6.0, 9.0)),
        ("noise:2", "LAeq", False, ("GB 3096", -math.inf, 60.0)),
        ("noise:2", "LAeq", True, ("GB 3096", -math.inf, 50.0)),
        ("noise:4b", "LAeq", True, ("GB 3096", -math.inf, 60.0)),
    ],
)
def test_limit_book_dispatches_on_the_limit_class(
    limit_class: str, quantity: str, night: bool, expected: tuple[str, float, float]
) -> None:
    limit = LimitBook().limit(limit_class, quantity, "1h", DAY, night)
    assert limit is not None
    assert (limit.standard, limit.lower, limit.value) == expected


def test_limit_book_noise_has_only_hourly_limits() -> None:
    assert LimitBook().limit("noise:2", "LAeq", "24h", DAY) is None


def test_limit_book_medium_mismatch_has_no_limit() -> None:
    assert LimitBook().limit("water:III", "NO2", "1h", DAY) is None
    assert LimitBook().limit("noise:2", "COD", "1h", DAY) is None


def test_pin_of_gb3095_leaves_water_and_noise_on_their_own_edition() -> None:
    book = LimitBook(E2012)
    air = book.limit("air:2", "PM2.5", "24h", date(2031, 1, 1))
    water = book.limit("water:III", "COD", "1h", date(2031, 1, 1))
    noise = book.limit("noise:2", "LAeq", "1h", date(2031, 1, 1), night=True)
    assert air is not None and water is not None and noise is not None
    assert (air.edition, air.value) == (E2012, 75)
    assert (water.edition, water.value) == ("GB 3838-2002", 20)
    assert (noise.edition, noise.value) == ("GB 3096-2008", 50)


def test_pin_of_gb3838_leaves_air_on_the_edition_in_force() -> None:
    book = LimitBook("GB 3838-2002")
    air = book.limit("air:2", "PM2.5", "24h", date(2031, 1, 1))
    assert air is not None and air.edition == E2026


def test_unknown_pin_is_refused_by_the_limit_book() -> None:
    with pytest.raises(StandardError, match="GB 3838-1988"):
        LimitBook("GB 3838-1988")


@pytest.mark.parametrize("limit_class", ["soil:1", "sea:II", "", "2"])
def test_unknown_limit_class_medium_raises(limit_class: str) -> None:
    with pytest.raises(StandardError, match="unknown limit class"):
        LimitBook().limit(limit_class, "NO2", "1h", DAY)


PERMIT = Permit(
    "zb-001",
    "Yiyuan Paper Co.",
    "排污许可证 91370323 §3",
    {("COD", "1h"): (-math.inf, 50.0), ("pH", "1h"): (6.0, 9.0), ("DO", "24h"): (4.0, math.inf)},
)


def test_permit_limits_upper_and_lower() -> None:
    book = LimitBook(permits={PERMIT.id: PERMIT})
    cod = book.limit("permit:zb-001", "COD", "1h", DAY)
    assert cod == Limit("permit zb-001", "zb-001", PERMIT.clause, "COD", "1h", 50.0)
    ph = book.limit("permit:zb-001", "pH", "1h", DAY)
    assert ph is not None and (ph.lower, ph.value) == (6.0, 9.0)
    do = book.limit("permit:zb-001", "DO", "24h", DAY)
    assert do is not None and (do.lower, do.value) == (4.0, math.inf)
    assert do.crossed_by(3.9) and not do.crossed_by(4.0)


def test_permit_not_covering_a_quantity_or_period_gives_none() -> None:
    book = LimitBook(permits={PERMIT.id: PERMIT})
    assert book.limit("permit:zb-001", "NH3-N", "1h", DAY) is None
    assert book.limit("permit:zb-001", "COD", "24h", DAY) is None
    assert PERMIT.covers("DO") and not PERMIT.covers("NH3-N")


def test_unknown_permit_id_gives_none() -> None:
    assert LimitBook(permits={PERMIT.id: PERMIT}).limit("permit:other", "COD", "1h", DAY) is None


def _limit(value: float = math.inf, lower: float = -math.inf) -> Limit:
    return Limit("S", "E", "C", "q", "1h", value, lower)


CEILING = _limit(200.0)
FLOOR = _limit(lower=5.0)
RANGE = _limit(9.0, 6.0)


@pytest.mark.parametrize(
    ("limit", "x", "crossed"),
    [
        (CEILING, 200.0, False), (CEILING, 200.001, True), (CEILING, -1e9, False),
        (FLOOR, 5.0, False), (FLOOR, 4.999, True), (FLOOR, 1e9, False),
        (RANGE, 6.0, False), (RANGE, 9.0, False), (RANGE, 5.99, True), (RANGE, 9.01, True),
        (RANGE, 7.0, False),
    ],
)  # fmt: skip
def test_crossed_by_is_strict_at_the_bound(limit: Limit, x: float, crossed: bool) -> None:
    assert limit.crossed_by(x) is crossed


@pytest.mark.parametrize(
    ("limit", "x", "bound"),
    [
        (CEILING, 250.0, 200.0), (CEILING, 10.0, 200.0),
        (FLOOR, 4.0, 5.0), (FLOOR, 8.0, 5.0),  # no ceiling: always the floor
        (RANGE, 5.5, 6.0), (RANGE, 9.4, 9.0), (RANGE, 7.0, 9.0),
    ],
)  # fmt: skip
def test_bound_is_the_side_judged(limit: Limit, x: float, bound: float) -> None:
    assert limit.bound(x) == bound


@pytest.mark.parametrize(
    ("limit", "x", "inside"),
    [
        (CEILING, 189.9, True), (CEILING, 190.1, False), (CEILING, 250.0, False),
        (FLOOR, 5.26, True), (FLOOR, 5.24, False), (FLOOR, 4.0, False), (FLOOR, 1e9, True),
        (RANGE, 8.54, True), (RANGE, 8.56, False), (RANGE, 6.29, False), (RANGE, 6.31, True),
        (RANGE, 9.5, False), (RANGE, 5.0, False),
    ],
)  # fmt: skip
def test_inside_by_margin_on_each_side(limit: Limit, x: float, inside: bool) -> None:
    # close_margin 0.05: ceiling 200 -> below 190; floor 5 -> above 5.25; range 6-9 -> 6.3-8.55
    assert limit.inside_by(x, 0.05) is inside


def test_inside_by_without_margin_is_not_crossed_except_at_the_bound() -> None:
    for limit, x in [(CEILING, 199.9), (FLOOR, 5.1), (RANGE, 7.0)]:
        assert limit.inside_by(x, 0.0) and not limit.crossed_by(x)
    assert not CEILING.inside_by(200.0, 0.0)  # equal to the bound: not crossed, not inside


def test_severity_is_the_ratio_beyond_the_bound() -> None:
    assert CEILING.severity(300.0) == pytest.approx(1.5)
    assert FLOOR.severity(2.5) == pytest.approx(2.0)
    assert FLOOR.severity(0.0) == math.inf
    assert RANGE.severity(9.9) == pytest.approx(1.1)
    assert RANGE.severity(5.0) == pytest.approx(1.2)
    # further beyond is more severe, on either side
    assert FLOOR.severity(2.0) > FLOOR.severity(4.0) > 1.0 > FLOOR.severity(6.0)
    assert RANGE.severity(4.0) > RANGE.severity(9.9) > 1.0 > RANGE.severity(7.5)
    assert CEILING.severity(150.0) < 1.0
