"""Duty rosters (值班表): which of a cell's officers is on duty when, as a weekly rota.

A rota is a list of shifts in local wall time of its time zone: days of the week, a start
and an end ``"HH:MM"`` and the officer. A shift that ends at or before its start runs over
midnight into the next day (``"20:00"`` to ``"08:00"``; ``"08:00"`` to ``"08:00"`` is 24
hours). Together the shifts must cover the 168 hours of the week exactly once: no gap (a
time with nobody on duty) and no overlap (two officers on duty). Format:
docs/architecture.md ("Duty rosters").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN
_TIME = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])")


class RosterError(ValueError):
    """A roster that cannot be used; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class Rota:
    """The week cut into stretches: ``officers[i]`` is on duty from minute ``starts[i]`` of
    the week (Monday 00:00 local is 0) to ``starts[i + 1]`` (the last to the week's end)."""

    timezone: str
    starts: tuple[int, ...]
    officers: tuple[str, ...]

    def at(self, when: datetime) -> str:
        """Who is on duty at ``when`` (timezone-aware)."""
        return self.officers[bisect.bisect_right(self.starts, _week_minute(when, self)) - 1]

    def hand_offs(self, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
        """Each time in ``[start, end)`` at which duty passes to another officer, with the
        officer who takes over; times are in the rota's zone."""
        zone = ZoneInfo(self.timezone)
        local = _aware(start, "start").astimezone(zone)
        monday = (local - timedelta(days=local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0, tzinfo=None
        )
        changes = [(m, o) for i, (m, o) in enumerate(zip(self.starts, self.officers, strict=True))
                   if o != self.officers[i - 1]]  # fmt: skip
        found: list[tuple[datetime, str]] = []
        while monday.replace(tzinfo=zone) < _aware(end, "end"):
            for minute, officer in changes:
                # wall-clock arithmetic: a shift starts at its local time whatever the offset
                moment = (monday + timedelta(minutes=minute)).replace(tzinfo=zone)
                if start <= moment < end:
                    found.append((moment, officer))
            monday += timedelta(days=7)
        return found


def always(officer: str, timezone: str) -> Rota:
    """One officer on duty all the time (a cell with one holder and no roster)."""
    return Rota(timezone, (0,), (officer,))


def check_timezone(value: Any, where: str) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RosterError(f"{where}: unknown time zone {value!r}") from exc
    return str(value)


def parse_rota(raw: dict[str, Any], where: str, timezone: str, holders: Collection[str],
               role: str) -> Rota:  # fmt: skip
    """A roster entry's ``timezone`` (default ``timezone``) and ``shifts``; every shift's
    officer must be one of ``holders`` (the cell's ``role``)."""
    zone = check_timezone(raw.get("timezone", timezone), f"{where}.timezone")
    shifts = raw.get("shifts")
    if not isinstance(shifts, list) or not shifts:
        raise RosterError(f"{where}.shifts: missing (a list of shifts)")
    spans: list[tuple[int, int, str, int]] = []  # (start, end, officer, shift index)
    for si, shift in enumerate(shifts):
        spans += _spans(shift, f"{where}.shifts[{si}]", si, holders, role)
    spans.sort()
    _check_cover(spans, where, zone)
    return _merge(zone, spans)


def _spans(shift: Any, where: str, index: int, holders: Collection[str],
           role: str) -> list[tuple[int, int, str, int]]:  # fmt: skip
    """A shift as spans of week minutes; one that runs past Sunday midnight wraps to Monday."""
    if not isinstance(shift, dict):
        raise RosterError(f"{where}: must be a mapping with days, from, to and officer")
    officer = str(_need(shift, "officer", where))
    if officer not in holders:
        raise RosterError(f"{where}.officer: {officer!r} is not a {role} of this cell "
                          f"(holders: {', '.join(holders) or 'none'})")  # fmt: skip
    begin = _time(_need(shift, "from", where), f"{where}.from", allow_24=False)
    end = _time(_need(shift, "to", where), f"{where}.to", allow_24=True)
    length = end - begin if end > begin else end + DAY_MIN - begin
    spans = []
    for day in _days(_need(shift, "days", where), f"{where}.days"):
        first = day * DAY_MIN + begin
        last = first + length
        spans.append((first, min(last, WEEK_MIN), officer, index))
        if last > WEEK_MIN:
            spans.append((0, last - WEEK_MIN, officer, index))
    return spans


def _need(raw: dict[str, Any], key: str, where: str) -> Any:
    if raw.get(key) in (None, "", []):
        raise RosterError(f"{where}.{key}: missing")
    return raw[key]


def _time(value: Any, where: str, allow_24: bool) -> int:
    """Minutes after local midnight of ``"HH:MM"``; ``"24:00"`` only as an end."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 20:00 as the number 1200 (base 60)
        raise RosterError(f'{where}: write the time as a quoted "HH:MM", got the number '
                          f"{value} (YAML reads an unquoted 20:00 as 1200)")  # fmt: skip
    match = _TIME.fullmatch(str(value))
    minutes = int(match[1]) * 60 + int(match[2]) if match else -1
    if not 0 <= minutes <= (DAY_MIN if allow_24 else DAY_MIN - 1):
        allowed = "00:00 to 24:00" if allow_24 else "00:00 to 23:59"
        raise RosterError(f'{where}: must be a time "HH:MM" from {allowed}, got {value!r}')
    return minutes


def _days(value: Any, where: str) -> list[int]:
    """``[mon, wed]``, ``mon-fri`` (a range, may wrap: ``fri-mon``), ``sat`` or ``daily``."""
    if value == "daily":
        return list(range(7))
    if isinstance(value, str) and "-" in value:
        first, _, last = value.partition("-")
        a, b = _day(first, where), _day(last, where)
        return [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    items = value if isinstance(value, list) else [value]
    days = [_day(item, where) for item in items]
    if len(set(days)) != len(days):
        raise RosterError(f"{where}: a day is listed twice in {value!r}")
    return days


def _day(value: Any, where: str) -> int:
    name = str(value).strip().lower()
    if name not in DAYS:
        raise RosterError(f"{where}: unknown day {value!r}; days are {', '.join(DAYS)}, "
                          "a range like mon-fri, or daily")  # fmt: skip
    return DAYS.index(name)


def _check_cover(spans: list[tuple[int, int, str, int]], where: str, zone: str) -> None:
    """Sorted spans must tile the week: none starts before the one before it ends (an
    overlap), and each starts where the one before ends (else a gap, named in full: a gap
    over the week's end is one stretch, sun 20:00 to mon 08:00)."""
    reached, last_index = 0, -1  # the week is covered up to here, by this shift
    gaps = []
    for first, last, _, index in spans:
        if first < reached:
            raise RosterError(f"{where}.shifts[{index}]: overlaps shifts[{last_index}] at "
                              f"{_clock(first)} ({zone})")  # fmt: skip
        if first > reached:
            gaps.append([reached, first])
        reached, last_index = last, index
    if reached < WEEK_MIN:
        # joins a gap at the start of the week
        until = gaps.pop(0)[1] if gaps and gaps[0][0] == 0 else 0
        gaps.append([reached, WEEK_MIN + until])
    if gaps:
        text = ", ".join(f"{_clock(a)} to {_clock(b)}" for a, b in gaps)
        raise RosterError(f"{where}: nobody on duty from {text} ({zone})")


def _merge(zone: str, spans: list[tuple[int, int, str, int]]) -> Rota:
    """Adjacent spans of the same officer are one stretch: no hand-off between them."""
    starts: list[int] = []
    officers: list[str] = []
    for first, _, officer, _ in spans:
        if not officers or officers[-1] != officer:
            starts.append(first)
            officers.append(officer)
    return Rota(zone, tuple(starts), tuple(officers))


def _clock(minute: int) -> str:
    day, rest = divmod(minute % WEEK_MIN, DAY_MIN)
    return f"{DAYS[day]} {rest // 60:02d}:{rest % 60:02d}"


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name}: a timezone-aware datetime is needed, got {when!r}")
    return when


def _week_minute(when: datetime, rota: Rota) -> int:
    local = _aware(when, "at").astimezone(ZoneInfo(rota.timezone))
    return local.weekday() * DAY_MIN + local.hour * 60 + local.minute
