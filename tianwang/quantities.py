"""Quantities, their canonical units and physically possible ranges (a data file)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    medium: str
    unit: str
    min: float
    max: float


@dataclass(frozen=True, slots=True)
class QuantityTable:
    quantities: dict[str, Quantity]
    unit_aliases: dict[str, str]

    def canonical_unit(self, unit: str) -> str:
        return self.unit_aliases.get(unit, unit)


@cache
def quantity_table() -> QuantityTable:
    text = resources.files("tianwang").joinpath("data/quantities.yaml").read_text("utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    quantities = {
        name: Quantity(name, q["medium"], q["unit"], float(q["min"]), float(q["max"]))
        for name, q in raw["quantities"].items()
    }
    return QuantityTable(quantities, dict(raw.get("unit_aliases") or {}))
