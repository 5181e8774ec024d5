"""IAQI and AQI per HJ 633 (2012 and 2026 editions); breakpoints are data (hj633.yaml).

IAQI_P = (IAQI_Hi - IAQI_Lo) / (BP_Hi - BP_Lo) * (C_P - BP_Lo) + IAQI_Lo   (HJ 633-2012 §4.2)
AQI = max(IAQI_1, ..., IAQI_n)                                              (§4.4)
IAQI and AQI are rounded up to an integer (2012 §6.2 "全部进位取整数"; 2026 "向上进位取整").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

import numpy as np
import yaml

from tianwang.standards import StandardError

# A computed IAQI such as 100.00000000000001 (float error at a breakpoint) must not round up
# to 101: round to this many decimals before taking the ceiling.
_CEIL_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """One row of HJ 633 Table 1: concentrations at the IAQI levels, defined ones only.

    ``above_use`` names the period whose IAQI applies above the last breakpoint (2012
    notes 2, 3); ``above_iaqi`` the fixed IAQI there (2026); neither: capped at the top.
    """

    quantity: str
    period: str
    conc: np.ndarray
    iaqi: np.ndarray
    above_use: str | None = None
    above_iaqi: float | None = None


@dataclass(frozen=True, slots=True)
class AqiEdition:
    name: str
    effective_from: date
    effective_until: date | None
    clause: str
    aqi_min: int
    partial_publish_above: int | None
    daily: tuple[tuple[str, str], ...]
    rows: Mapping[tuple[str, str], Breakpoints]

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_until is None or day < self.effective_until
        )

    def iaqi(
        self, quantity: str, period: str, conc: np.ndarray, fallback: np.ndarray | None = None
    ) -> np.ndarray:
        """Vectorised IAQI (float array of integers, NaN where not computable).

        ``period``: 24h, 1h or 8h; ``1h_max`` / ``8h_max`` use the 1h / 8h rows. Negative or
        NaN concentrations give NaN. Above the last breakpoint of a row with a 2012 note,
        the IAQI of ``fallback`` (the concentration over the note's period) applies; with no
        fallback it is NaN. Above the top of a full row the IAQI is capped at 500 (decision:
        the standard's table ends there).
        """
        row = self.rows[(quantity, period.removesuffix("_max"))]
        c = np.asarray(conc, np.float64)
        out = _interpolate(row, c)
        above = np.isfinite(c) & (c > row.conc[-1])
        if row.above_iaqi is not None:
            out[above] = row.above_iaqi
        elif row.above_use is not None:
            out[above] = np.nan
            if fallback is not None:
                alt = self.iaqi(quantity, row.above_use, np.asarray(fallback, np.float64))
                out[above] = np.broadcast_to(alt, c.shape)[above]
        return out


def _interpolate(row: Breakpoints, c: np.ndarray) -> np.ndarray:
    """HJ 633-2012 §4.2 linear interpolation, rounded up; above the table: its top IAQI."""
    bp, levels = row.conc, row.iaqi
    hi = np.clip(np.searchsorted(bp, c, side="left"), 1, bp.shape[0] - 1)
    lo = hi - 1
    with np.errstate(invalid="ignore"):
        raw = (levels[hi] - levels[lo]) / (bp[hi] - bp[lo]) * (c - bp[lo]) + levels[lo]
        raw = np.minimum(raw, levels[-1])
        out = np.ceil(np.round(raw, _CEIL_DECIMALS))
    out[~np.isfinite(c) | (c < 0)] = np.nan
    return out


@dataclass(frozen=True, slots=True)
class DailyAqi:
    """AQI of a day, its primary pollutants (HJ 633 §3.3: when AQI > 50, the pollutant(s)
    with the largest IAQI, ties all listed), and whether it may be published."""

    aqi: float  # NaN when no indicator is available
    primary: tuple[str, ...]
    published: bool


@dataclass(frozen=True, slots=True)
class Hj633:
    name: str
    editions: tuple[AqiEdition, ...]

    def edition(self, day: date, pinned: str | None = None) -> AqiEdition:
        for e in self.editions:
            if (pinned is None and e.in_force(day)) or e.name == pinned:
                return e
        raise StandardError(
            f"{self.name}: no edition {pinned!r}" if pinned else f"{self.name}: none on {day}"
        )

    def daily_aqi(
        self, iaqis: Mapping[str, float], day: date, pinned: str | None = None
    ) -> DailyAqi:
        """AQI = max IAQI over the daily report's indicators (keys ``"O3 8h_max"``,
        ``"PM2.5 24h"``, ...; missing or NaN = not available). HJ 633-2026 §5.3: with an
        indicator missing, the AQI is published only when above 100."""
        edition = self.edition(day, pinned)
        keys = [f"{q} {p}" for q, p in edition.daily]
        values = {k: float(iaqis[k]) for k in keys if k in iaqis and math.isfinite(iaqis[k])}
        if not values:
            return DailyAqi(math.nan, (), False)
        aqi = max(max(values.values()), float(edition.aqi_min))
        primary = (
            tuple(sorted({k.split(" ")[0] for k, v in values.items() if v == aqi}))
            if aqi > 50
            else ()
        )
        complete = len(values) == len(keys)
        limit = edition.partial_publish_above
        published = complete or limit is None or aqi > limit
        return DailyAqi(aqi, primary, published)


@cache
def hj633() -> Hj633:
    """HJ 633 IAQI breakpoints, all editions, from data/standards/hj633.yaml."""
    text = resources.files("tianwang").joinpath("data/standards/hj633.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    levels = np.asarray(raw["iaqi"], np.float64)
    editions = []
    for e in raw["editions"]:
        rows = {}
        for r in e["breakpoints"]:
            defined = [i for i, v in enumerate(r["bp"]) if v is not None]
            above = r.get("above_last") or {}
            rows[(r["quantity"], r["period"])] = Breakpoints(
                r["quantity"],
                r["period"],
                np.asarray([r["bp"][i] for i in defined], np.float64),
                levels[defined],
                above.get("use"),
                above.get("iaqi"),
            )
        editions.append(
            AqiEdition(
                e["edition"],
                e["effective_from"],
                e["effective_until"],
                e["clause"],
                int(e["aqi_min"]),
                e["partial_publish_above"],
                tuple((q, p) for q, p in e["daily"]),
                rows,
            )
        )
    return Hj633(raw["standard"], tuple(editions))
