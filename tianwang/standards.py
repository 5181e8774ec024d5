"""Limit tables of the national standards, versioned by edition and effective date.

The tables are data files (data/standards/*.yaml); this module only reads them and picks
the edition in force at a sample's local date, unless configuration pins one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

import yaml


class StandardError(LookupError):
    """No edition in force, or an unknown pinned edition."""


@dataclass(frozen=True, slots=True)
class Limit:
    standard: str
    edition: str
    clause: str
    quantity: str
    period: str
    value: float


@dataclass(frozen=True, slots=True)
class Edition:
    name: str
    effective_from: date
    effective_until: date | None
    clause: str
    limits: dict[tuple[str, str, int], float]  # (quantity, period, grade) -> limit

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (
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
        self, quantity: str, period: str, grade: int, day: date, pinned: str | None = None
    ) -> Limit | None:
        """The limit for a zone grade (1 or 2) on a local date, or None if none is set."""
        edition = self.edition(day, pinned)
        value = edition.limits.get((quantity, period, grade))
        if value is None:
            return None
        return Limit(self.name, edition.name, edition.clause, quantity, period, value)


@cache
def gb3095() -> Standard:
    """GB 3095 ambient air quality standard, Table 1, all editions."""
    text = resources.files("tianwang").joinpath("data/standards/gb3095.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    editions = []
    for e in raw["editions"]:
        limits: dict[tuple[str, str, int], float] = {}
        for quantity, period, grade_1, grade_2 in e["limits"]:
            limits[(quantity, period, 1)] = float(grade_1)
            limits[(quantity, period, 2)] = float(grade_2)
        editions.append(
            Edition(e["edition"], e["effective_from"], e["effective_until"], e["clause"], limits)
        )
    return Standard(raw["standard"], tuple(editions))
