"""Field readers for scenario files: every bad value becomes a ``ScenarioError`` naming its field.

The loader reads untrusted YAML, so nothing here assumes a type: each reader checks what it
got and says where (``episodes[2].add.NO2: must be a finite number, got 'a lot'``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from tianwang.registry import Registry

_IDENT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_REQUIRED: Any = object()
LARGEST = 1e12  # no number in a scenario is larger in magnitude (keeps every sum finite)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(2200, 1, 1, tzinfo=UTC).timestamp()


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the field."""


def join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Fields:
    """One mapping of a scenario file, with the path that names it in errors.

    Unknown keys are an error (a misspelt ``duraton_min`` must not be silently ignored).
    """

    def __init__(self, raw: Any, where: str, allowed: Collection[str]) -> None:
        if not isinstance(raw, dict):
            raise ScenarioError(f"{where or 'scenario'}: expected a mapping, got {_shown(raw)}")
        unknown = sorted(str(k) for k in raw if not isinstance(k, str) or k not in allowed)
        if unknown:
            raise ScenarioError(
                f"{where or 'scenario'}: unknown field(s) {unknown}; known: {sorted(allowed)}"
            )
        self.raw: dict[str, Any] = raw
        self.where = where

    def at(self, key: str) -> str:
        return join(self.where, key)

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def get(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self.raw.get(key)
        if value is None:
            if default is _REQUIRED:
                raise ScenarioError(f"{self.at(key)}: missing")
            return default
        return value

    def number(
        self,
        key: str,
        default: Any = _REQUIRED,
        *,
        low: float | None = None,
        high: float | None = None,
        positive: bool = False,
    ) -> float:
        return number(self.get(key, default), self.at(key), low=low, high=high, positive=positive)

    def integer(self, key: str, default: Any = _REQUIRED, *, low: int, high: int) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ScenarioError(
                f"{self.at(key)}: must be an integer in [{low}, {high}], got {_shown(value)}"
            )
        return value

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ScenarioError(f"{self.at(key)}: must be true or false, got {_shown(value)}")
        return value

    def string(self, key: str, default: Any = _REQUIRED, *, choices: Collection[str] = ()) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{self.at(key)}: must be a non-empty string, got {_shown(value)}")
        if choices and value not in choices:
            raise ScenarioError(f"{self.at(key)}: must be one of {sorted(choices)}, got {value!r}")
        return value

    def ident(self, key: str) -> str:
        value = self.string(key)
        if not _IDENT.fullmatch(value):
            raise ScenarioError(f"{self.at(key)}: {value!r} must match {_IDENT.pattern}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ScenarioError(f"{self.at(key)}: must be a list of strings, got {_shown(value)}")
        return tuple(value)

    def items(self, key: str) -> Iterator[tuple[str, Any]]:
        """The elements of an optional list, each with its path."""
        value = self.get(key, [])
        if not isinstance(value, list):
            raise ScenarioError(f"{self.at(key)}: must be a list, got {_shown(value)}")
        for i, item in enumerate(value):
            yield join(self.at(key), i), item

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ScenarioError(f"{self.at(key)}: must be a mapping, got {_shown(value)}")
        return value

    def time(self, key: str) -> float | None:
        """An RFC 3339 time with a UTC offset, as epoch seconds; None for null or "auto"."""
        return parse_time(self.raw.get(key), self.at(key))


def number(
    value: Any,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: must be a finite number, got {_shown(value)}")
    try:
        result = float(value)
    except OverflowError as exc:
        raise ScenarioError(f"{where}: number too large") from exc
    if not math.isfinite(result):
        raise ScenarioError(f"{where}: must be a finite number, got {_shown(value)}")
    if abs(result) > LARGEST:
        raise ScenarioError(f"{where}: {result:g} is out of range (|x| <= {LARGEST:g})")
    if positive and result <= 0:
        raise ScenarioError(f"{where}: must be > 0, got {result:g}")
    if low is not None and result < low:
        raise ScenarioError(f"{where}: must be >= {low:g}, got {result:g}")
    if high is not None and result > high:
        raise ScenarioError(f"{where}: must be <= {high:g}, got {result:g}")
    return result


def parse_time(value: Any, where: str) -> float | None:
    if value is None or value == "auto":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ScenarioError(f"{where}: expected RFC 3339 or 'auto', got {value!r}") from exc
    if not isinstance(value, datetime):
        raise ScenarioError(f"{where}: expected RFC 3339 or 'auto', got {_shown(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScenarioError(f"{where}: needs a UTC offset, e.g. 2026-06-01T00:00:00+08:00")
    try:
        result = value.timestamp()
    except (OverflowError, ValueError) as exc:
        raise ScenarioError(f"{where}: time out of range") from exc
    if not EARLIEST <= result <= LATEST:
        raise ScenarioError(f"{where}: must be between 1900 and 2200")
    return result


TARGET_KEYS = ("nodes", "villages", "townships")


def targets(fields: Fields, registry: Registry) -> frozenset[str] | None:
    """The union of ``nodes``, ``villages`` (``township/village``) and ``townships``;
    None when the entry names none of them (the caller decides what that means)."""
    if not any(fields.has(k) for k in TARGET_KEYS):
        return None
    nodes = set(fields.strings("nodes"))
    unknown = sorted(nodes - registry.nodes.keys())
    if unknown:
        raise ScenarioError(f"{fields.at('nodes')}: unknown nodes {unknown}")
    townships = set(fields.strings("townships"))
    for township in sorted(townships):
        if township not in registry.township_names:
            raise ScenarioError(f"{fields.at('townships')}: unknown township {township!r}")
    villages = set()
    for village in fields.strings("villages"):
        township, _, village_id = village.partition("/")
        if (township, village_id) not in registry.villages:
            raise ScenarioError(
                f"{fields.at('villages')}: unknown village {village!r} (township/village)"
            )
        villages.add((township, village_id))
    for node in registry.nodes.values():
        place = (node.place.township, node.place.village)
        if place in villages or node.place.township in townships:
            nodes.add(node.id)
    if not nodes:
        raise ScenarioError(f"{fields.where}: names no node")
    return frozenset(nodes)


def check_quantities(
    quantities: Collection[str], nodes: Collection[str], registry: Registry, where: str
) -> None:
    """Every quantity must be measured by at least one of ``nodes``."""
    have = {q for n in nodes for q in registry.nodes[n].quantities}
    for q in quantities:
        if q not in have:
            raise ScenarioError(f"{where}: no targeted node measures {q!r}")


def quantity_map(
    fields: Fields, key: str, known: Mapping[str, Any], **bounds: Any
) -> dict[str, float]:
    """``{quantity: number}``, every quantity known."""
    raw = fields.mapping(key)
    result = {}
    for q, value in raw.items():
        if q not in known:
            raise ScenarioError(f"{join(fields.at(key), q)}: unknown quantity")
        result[q] = number(value, join(fields.at(key), q), **bounds)
    return result
