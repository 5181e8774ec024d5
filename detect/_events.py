"""Events the detector emits: one episode of exceedance is open, updates, close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal["open", "update", "close"]


@dataclass(frozen=True, slots=True)
class ExceedanceEvent:
    """A change in an exceedance episode of one series under one rule.

    ``value`` is the statistic that decided (the hourly mean for rule ``1h_mean``);
    ``hour_start_s`` is the start of the hour it covers (epoch seconds UTC).
    """

    kind: EventKind
    node: str
    quantity: str
    rule: str
    hour_start_s: int
    value: float
    limit: float
    unit: str
    standard: str
    edition: str
    clause: str
    episode_start_s: int
    peak: float
    hours: int = 1  # exceeding hours in the episode so far
