"""Severity of an incident and its escalation policy (village -> township -> county).

The rule -> severity mapping and the default policy are data (data/severity.yaml); a grid
file's ``escalation:`` overrides the policy per severity. Format: docs/architecture.md
("Escalation").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from tianwang.quantities import quantity_table

LEVELS = ("village", "township", "county")  # the order an incident climbs
_KEYS = ("ack_within_min", "up_to")


class EscalationError(ValueError):
    """An escalation policy that cannot be used; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class Escalation:
    """An officer on duty has ``ack_within_min`` to acknowledge before the incident goes
    up one level; it climbs no higher than ``up_to``."""

    ack_within_min: float
    up_to: str = "county"


@dataclass(frozen=True, slots=True)
class SeverityRules:
    severities: tuple[str, ...]  # most severe first
    rules: Mapping[str, str]  # event rule -> severity
    default: str
    critical_rules: frozenset[str]
    critical_ratio: float
    critical_db_over: float

    def severity(self, rule: str, quantity: str | None = None, value: float | None = None,
                 limit: float | None = None) -> str:  # fmt: skip
        """The severity of an event of ``rule``; a regulatory exceedance far enough beyond
        its limit (``value`` against ``limit`` of ``quantity``) is critical."""
        if (rule in self.critical_rules and quantity is not None and value is not None
                and limit is not None and self._far_beyond(quantity, value, limit)):  # fmt: skip
            return self.severities[0]
        return self.rules.get(rule, self.default)

    def _far_beyond(self, quantity: str, value: float, limit: float) -> bool:
        if quantity_table().quantities[quantity].medium == "noise":
            return value - limit >= self.critical_db_over
        if value <= 0 or limit <= 0 or not math.isfinite(value / limit):
            return False
        return max(value / limit, limit / value) >= self.critical_ratio


@cache
def _data() -> dict[str, Any]:
    text = resources.files("tianwang").joinpath("data/severity.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@cache
def severity_rules() -> SeverityRules:
    data = _data()
    critical = data["critical"]
    return SeverityRules(
        severities=tuple(data["severities"]),
        rules=dict(data["rules"]),
        default=data["default"],
        critical_rules=frozenset(critical["rules"]),
        critical_ratio=float(critical["ratio"]),
        critical_db_over=float(critical["db_over"]),
    )


def severity(rule: str, quantity: str | None = None, value: float | None = None,
             limit: float | None = None) -> str:  # fmt: skip
    """``severity_rules().severity``: e.g. ``severity("1h_mean", "PM2.5", 160, 75)``."""
    return severity_rules().severity(rule, quantity, value, limit)


def default_escalation() -> dict[str, Escalation]:
    """The policy of data/severity.yaml."""
    return parse_escalation(None, "escalation")


def parse_escalation(raw: Any, where: str) -> dict[str, Escalation]:
    """A grid file's ``escalation:`` mapping over the defaults of data/severity.yaml, key
    by key: ``{critical: {ack_within_min: 10}}`` changes only that."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise EscalationError(f"{where}: must be a mapping severity -> policy")
    severities = severity_rules().severities
    for name in raw:
        if name not in severities:
            raise EscalationError(f"{where}.{name}: unknown severity; one of "
                                  f"{', '.join(severities)}")  # fmt: skip
    defaults = _data()["escalation"]
    return {name: _escalation(defaults[name] | _entry(raw.get(name), f"{where}.{name}"),
                              f"{where}.{name}")
            for name in severities}  # fmt: skip


def _entry(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EscalationError(f"{where}: must be a mapping with {' and/or '.join(_KEYS)}")
    for key in raw:
        if key not in _KEYS:
            raise EscalationError(f"{where}.{key}: unknown key; keys are {', '.join(_KEYS)}")
    return raw


def _escalation(entry: dict[str, Any], where: str) -> Escalation:
    minutes = entry["ack_within_min"]
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes > 0:
        raise EscalationError(f"{where}.ack_within_min: must be a positive number of "
                              f"minutes, got {minutes!r}")  # fmt: skip
    up_to = str(entry["up_to"])
    if up_to not in LEVELS:
        raise EscalationError(f"{where}.up_to: must be one of {', '.join(LEVELS)}, "
                              f"got {up_to!r}")  # fmt: skip
    return Escalation(float(minutes), up_to)
