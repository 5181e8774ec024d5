"""GB 3095 limit tables: the edition in force on a date, pinning, and the limit values."""

from __future__ import annotations

from datetime import date

import pytest

from tianwang.standards import Limit, StandardError, gb3095

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
