"""Limit tables of the national standards, versioned by edition and effective date.

The tables are data files (data/standards/*.yaml); this module only reads them and picks
the edition in force at a sample's local date, unless configuration pins one. A *limit
class* names which table applies to a series (``LimitBook``): ``air:<grade>`` (GB 3095 zone
grade 1 or 2), ``water:<class>`` (GB 3838 target class I-V), ``noise:<zone>`` (GB 3096
functional zone 0-4b, day or night), ``permit:<id>`` (a site's own permit limits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources

import yaml


class StandardError(LookupError):
    """No edition in force, or an unknown pinned edition."""


@dataclass(frozen=True, slots=True)
class Limit:
    """``value`` is the upper bound (``inf``: none), ``lower`` the lower bound (``-inf``:
    none): DO and pH in water have a floor."""

    standard: str
    edition: str
    clause: str
    quantity: str
    period: str
    value: float
    lower: float = -math.inf

    def crossed_by(self, x: float) -> bool:
        return x > self.value or x < self.lower

    def bound(self, x: float) -> float:
        """The bound ``x`` is judged against: the floor when below it or when there is no
        ceiling, else the ceiling (what an event reports as its limit)."""
        return self.lower if x < self.lower or math.isinf(self.value) else self.value

    def inside_by(self, x: float, margin: float) -> bool:
        """Back inside with a margin (hysteresis): below ``value * (1 - margin)`` and above
        ``lower * (1 + margin)``."""
        return x < self.value * (1.0 - margin) and x > self.lower * (1.0 + margin)

    def severity(self, x: float) -> float:
        """How far beyond the bound, as a ratio (> 1 exceeds); to pick an episode's peak."""
        up = x / self.value if self.value > 0 and math.isfinite(self.value) else -math.inf
        if self.lower > 0 and math.isfinite(self.lower):
            down = self.lower / x if x > 0 else math.inf
        else:
            down = -math.inf
        return max(up, down)


@dataclass(frozen=True, slots=True)
class Edition:
    name: str
    effective_from: date | None  # None: no date sourced, in force for every date
    effective_until: date | None
    clause: str
    # (quantity, period, class) -> (lower, upper); class: air grade 1/2, water "I".."V",
    # noise zone "0".."4b" (period "1h_day" or "1h_night")
    limits: Mapping[tuple[str, str, object], tuple[float, float]]

    def in_force(self, day: date) -> bool:
        return (self.effective_from is None or self.effective_from <= day) and (
            self.effective_until is None or day < self.effective_until
        )


@dataclass(frozen=True, slots=True)
class Standard:
    name: str
    editions: tuple[Edition, ...]

    def edition(self, day: date, pinned: str | None = None) -> Edition:
        for edition in self.editions:
            if (pinned is None and edition.in_force(day)) or edition.name == pinned:
                return edition
        raise StandardError(
            f"{self.name}: no edition {pinned!r}"
            if pinned
            else f"{self.name}: none in force on {day}"
        )

    def limit(
        self, quantity: str, period: str, grade: object, day: date, pinned: str | None = None
    ) -> Limit | None:
        """The limit for a class (GB 3095 zone grade 1 or 2, GB 3838 class "I".."V", GB 3096
        zone "0".."4b") on a local date, or None if none is set."""
        edition = self.edition(day, pinned)
        bounds = edition.limits.get((quantity, period, grade))
        if bounds is None:
            return None
        lower, upper = bounds
        return Limit(self.name, edition.name, edition.clause, quantity, period, upper, lower)


def _read(name: str) -> dict:
    text = resources.files("tianwang").joinpath(f"data/standards/{name}").read_text("utf-8")
    return yaml.safe_load(text)


def _edition(e: dict, limits: dict[tuple[str, str, object], tuple[float, float]]) -> Edition:
    return Edition(e["edition"], e["effective_from"], e["effective_until"], e["clause"], limits)


@cache
def gb3095() -> Standard:
    """GB 3095 ambient air quality standard, Table 1, all editions."""
    raw = _read("gb3095.yaml")
    editions = []
    for e in raw["editions"]:
        limits: dict[tuple[str, str, object], tuple[float, float]] = {}
        for quantity, period, grade_1, grade_2 in e["limits"]:
            limits[(quantity, period, 1)] = (-math.inf, float(grade_1))
            limits[(quantity, period, 2)] = (-math.inf, float(grade_2))
        editions.append(_edition(e, limits))
    return Standard(raw["standard"], tuple(editions))


WATER_CLASSES = ("I", "II", "III", "IV", "V")
NOISE_ZONES = ("0", "1", "2", "3", "4a", "4b")


@cache
def gb3838() -> Standard:
    """GB 3838-2002 surface water, Table 1, single-factor limits per target class (period
    ``1h``: the detector judges hourly means; the standard sets no averaging time)."""
    raw = _read("gb3838.yaml")
    editions = []
    for e in raw["editions"]:
        limits: dict[tuple[str, str, object], tuple[float, float]] = {}
        for quantity, direction, *per_class in e["limits"]:
            for klass, value in zip(WATER_CLASSES, per_class, strict=True):
                bound = float(value)
                limits[(quantity, "1h", klass)] = (
                    (bound, math.inf) if direction == "min" else (-math.inf, bound)
                )
        low, high = e["ph_range"]
        for klass in WATER_CLASSES:
            limits[("pH", "1h", klass)] = (float(low), float(high))
        editions.append(_edition(e, limits))
    return Standard(raw["standard"], tuple(editions))


@cache
def gb3096() -> Standard:
    """GB 3096-2008 environmental noise, Table 1: L_Aeq limits per functional zone, period
    ``1h_day`` or ``1h_night`` (an hour's equivalent level against the limit of the part of
    the day it falls in)."""
    raw = _read("gb3096.yaml")
    editions = []
    for e in raw["editions"]:
        limits: dict[tuple[str, str, object], tuple[float, float]] = {}
        for zone, day_db, night_db in e["limits"]:
            limits[("LAeq", "1h_day", str(zone))] = (-math.inf, float(day_db))
            limits[("LAeq", "1h_night", str(zone))] = (-math.inf, float(night_db))
        editions.append(_edition(e, limits))
    return Standard(raw["standard"], tuple(editions))


@dataclass(frozen=True, slots=True)
class AqiCategory:
    """One AQI level of HJ 633 Table 2: AQI up to ``aqi_max`` (None: no bound)."""

    level: int
    aqi_max: int | None
    zh: str
    en: str
    color: str


@cache
def aqi_categories() -> tuple[AqiCategory, ...]:
    """The six AQI levels, lowest first (data/standards/hj633.yaml ``categories``)."""
    return tuple(AqiCategory(**c) for c in _read("hj633.yaml")["categories"])


def aqi_level(aqi: float) -> int:
    """The HJ 633 level (1-6) of an AQI value (an integer, as the standard rounds it)."""
    for category in aqi_categories():
        if category.aqi_max is None or aqi <= category.aqi_max:
            return category.level
    raise StandardError(f"no AQI level for {aqi}")


def noise_day_hours() -> tuple[int, int]:
    """GB 3096 day (昼间) as local [start, end) hours from the data file (06-22); counties
    may set their own (HJ 212-2017 Table 4)."""
    day = _read("gb3096.yaml")["editions"][0]["day"]
    return int(day["start"].split(":")[0]), int(day["end"].split(":")[0])


@dataclass(frozen=True, slots=True)
class Permit:
    """A site's permit limits: (quantity, period) -> (lower, upper)."""

    id: str
    holder: str
    clause: str
    limits: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def covers(self, quantity: str) -> bool:
        return any(q == quantity for q, _ in self.limits)


class LimitBook:
    """Resolves a limit class (module docstring), quantity, period and local date to a
    ``Limit``. ``pinned_edition`` pins the standard whose editions carry that name (e.g.
    "GB 3095-2012"); the other standards keep their edition in force."""

    def __init__(self, pinned_edition: str | None = None,
                 permits: Mapping[str, Permit] | None = None) -> None:  # fmt: skip
        self.pinned_edition = pinned_edition
        self.permits = dict(permits or {})
        if pinned_edition is not None:
            standard = self._standard_of(pinned_edition)
            standard.edition(date.today(), pinned_edition)  # an unknown pin fails now

    @staticmethod
    def _standard_of(edition: str) -> Standard:
        for standard in (gb3095(), gb3838(), gb3096()):
            if any(e.name == edition for e in standard.editions):
                return standard
        raise StandardError(f"no standard has an edition {edition!r}")

    def _pin(self, standard: Standard) -> str | None:
        pin = self.pinned_edition
        return pin if pin and any(e.name == pin for e in standard.editions) else None

    def limit(self, limit_class: str, quantity: str, period: str, day: date,
              night: bool = False) -> Limit | None:  # fmt: skip
        """None where the class sets no limit for that quantity and period. Raises
        ``StandardError`` for a date before every edition of the standard."""
        medium, _, klass = limit_class.partition(":")
        if medium == "air":
            return gb3095().limit(quantity, period, int(klass), day, self._pin(gb3095()))
        if medium == "water":
            return gb3838().limit(quantity, period, klass, day, self._pin(gb3838()))
        if medium == "noise":
            if period != "1h":
                return None
            period = "1h_night" if night else "1h_day"
            return gb3096().limit(quantity, period, klass, day, self._pin(gb3096()))
        if medium == "permit":
            permit = self.permits.get(klass)
            bounds = permit.limits.get((quantity, period)) if permit else None
            if permit is None or bounds is None:
                return None
            return Limit(f"permit {permit.id}", permit.id, permit.clause, quantity, period,
                         bounds[1], bounds[0])  # fmt: skip
        raise StandardError(f"unknown limit class {limit_class!r}")
