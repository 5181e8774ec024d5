"""Quantities, their canonical units, physically possible ranges and unit conversion.

All numbers come from a data file (data/quantities.yaml). Conversions happen at the edge,
once (BRIEF); ingest converts only spelling aliases of the canonical unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


class UnitError(ValueError):
    """A unit that cannot be converted to the quantity's canonical unit."""


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    medium: str
    unit: str
    min: float
    max: float
    molar_mass: float | None = None
    averaging: str = "arithmetic"  # "energy": levels in dB are averaged as 10^(L/10)


@dataclass(frozen=True, slots=True)
class QuantityTable:
    quantities: dict[str, Quantity]
    unit_aliases: dict[str, str]
    unit_scales: dict[str, dict[str, float]]
    molar_volume_l: float

    def canonical_unit(self, unit: str) -> str:
        return self.unit_aliases.get(unit, unit)

    def _family(self, unit: str) -> tuple[str, float] | None:
        for family, scales in self.unit_scales.items():
            if unit in scales:
                return family, scales[unit]
        return None

    def factor(self, quantity: str, unit: str) -> float:
        """Multiply a value in ``unit`` by this to get the quantity's canonical unit."""
        q = self.quantities.get(quantity)
        if q is None:
            raise UnitError(f"unknown quantity {quantity!r}")
        unit = self.canonical_unit(unit)
        if unit == q.unit:
            return 1.0
        source, target = self._family(unit), self._family(q.unit)
        if source is None or target is None:
            raise UnitError(f"{quantity}: cannot convert {unit!r} to {q.unit!r}")
        if source[0] == target[0]:
            return source[1] / target[1]
        if source[0] == "mixing_ratio" and target[0] == "mass_per_volume_air" and q.molar_mass:
            # ppb -> ug/m3 at the reference state: M / Vm
            return source[1] * q.molar_mass / self.molar_volume_l / target[1]
        raise UnitError(f"{quantity}: cannot convert {unit!r} to {q.unit!r}")


def _quantity(name: str, q: dict[str, Any]) -> Quantity:
    mass = q.get("molar_mass")
    return Quantity(name, q["medium"], q["unit"], float(q["min"]), float(q["max"]),
                    None if mass is None else float(mass),
                    str(q.get("averaging", "arithmetic")))  # fmt: skip


@cache
def quantity_table() -> QuantityTable:
    text = resources.files("tianwang").joinpath("data/quantities.yaml").read_text("utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    return QuantityTable(
        quantities={name: _quantity(name, q) for name, q in raw["quantities"].items()},
        unit_aliases=dict(raw.get("unit_aliases") or {}),
        unit_scales={k: {u: float(f) for u, f in v.items()} for k, v in raw["unit_scales"].items()},
        molar_volume_l=float(raw["molar_volume_l"]),
    )
