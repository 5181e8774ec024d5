"""Events the detector emits: one episode of exceedance is open, updates, close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal["open", "update", "close", "warning"]


@dataclass(frozen=True, slots=True)
class ExceedanceEvent:
    """A change in an exceedance episode of one series under one rule.

    ``value`` is the statistic that decided: the hourly mean (rule ``1h_mean``), the mean of
    a natural day (``24h_mean``) or the day's maximum 8-hour mean (``8h_max``, O3);
    ``hour_start_s`` is the start of the hour or of the local day it covers (epoch s UTC).
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
    periods: int = 1  # exceeding hours (or days, for the daily rules) in the episode so far
