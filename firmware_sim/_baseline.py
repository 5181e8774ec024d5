"""The baseline signal model: per-quantity parameters (data), daily cycles, county-wide weather.

Parameters come from ``data/signals.yaml`` (the format is described there), overridden key by
key by a scenario's ``baseline:`` section. This module turns them into what a driver needs per
read: a daily-cycle table by local minute, and the county-wide weather component ``C_q(t)``,
shared by every node of a scenario.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from firmware_sim._parse import Fields, ScenarioError, join, number
from tianwang.quantities import UnitError, quantity_table

DAY_S = 86400.0
MINUTES_PER_DAY = 1440
_BASELINE_KEYS = (
    "mean", "diurnal", "peak_h", "noise", "night_offset",
    "weather_sd", "weather_tau_h", "common_fraction", "unit",
)  # fmt: skip
_COMMON_TAG = 0x636F6D6D  # "comm": keeps the county-wide draws apart from any node's
_COMMON_BLOCK = 1440  # knots per generated block
_COMMON_WARMUP_TAUS = 10.0  # a block starts this many time constants early: exp(-10) ~ 5e-5
_COMMON_CACHE_BLOCKS = 8
MAX_TAU_H = 720.0  # a month: longer weather memory would make each block's warm-up long


@dataclass(frozen=True, slots=True)
class Harmonic:
    """One cosine of the daily cycle: ``amplitude * cos(2 pi (h - peak_h) / period_h)``."""

    amplitude: float
    peak_h: float  # local hour of the maximum
    period_h: float = 24.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """Signal-model parameters for one quantity, canonical units (see data/signals.yaml)."""

    mean: float
    diurnal: tuple[Harmonic, ...] = ()
    noise: float = 0.0  # sd of white noise per sample
    night_offset: float = 0.0  # added at night (GB 3096: 22:00-06:00 local)
    weather_sd: float = 0.0  # stationary sd of the slow, weather-like variation
    weather_tau_h: float = 6.0  # its time constant
    common_fraction: float = 0.0  # share of its variance common to the whole county
    unit: str | None = None  # unit the simulated sensor reports; None: canonical

    def cycle(self, local_h: np.ndarray, night: np.ndarray) -> np.ndarray:
        """The daily cycle (without ``mean``) at local hours ``local_h``."""
        value = np.where(night, self.night_offset, 0.0)
        for h in self.diurnal:
            value = value + h.amplitude * np.cos(2 * np.pi * (local_h - h.peak_h) / h.period_h)
        return value


@dataclass(frozen=True, slots=True)
class SignalDefaults:
    quantities: dict[str, dict[str, Any]]  # raw per-quantity mappings, merged before parsing
    night_hours: tuple[float, float]  # local hours [begin, end) of the night
    common_step_s: float


def _diurnal(fields: Fields) -> tuple[Harmonic, ...]:
    raw = fields.get("diurnal", 0)
    if isinstance(raw, list):
        if fields.has("peak_h"):
            raise ScenarioError(f"{fields.at('peak_h')}: only with a single-number diurnal")
        terms = []
        for where, item in fields.items("diurnal"):
            term = Fields(item, where, ("amplitude", "peak_h", "period_h"))
            terms.append(
                Harmonic(
                    term.number("amplitude"),
                    term.number("peak_h", low=0, high=24),
                    term.number("period_h", 24.0, low=1, high=24 * 366),
                )
            )
        return tuple(terms)
    amplitude = number(raw, fields.at("diurnal"))
    peak = fields.number("peak_h", 15.0, low=0, high=24)
    return (Harmonic(amplitude, peak),) if amplitude else ()


def parse_baseline(raw: Any, where: str, quantity: str) -> Baseline:
    fields = Fields(raw, where, _BASELINE_KEYS)
    unit = fields.get("unit", None)
    if unit is not None:
        unit = fields.string("unit")
        try:
            quantity_table().factor(quantity, unit)
        except UnitError as exc:
            raise ScenarioError(f"{fields.at('unit')}: {exc}") from exc
    return Baseline(
        mean=fields.number("mean"),
        diurnal=_diurnal(fields),
        noise=fields.number("noise", 0.0, low=0),
        night_offset=fields.number("night_offset", 0.0),
        weather_sd=fields.number("weather_sd", 0.0, low=0),
        weather_tau_h=fields.number("weather_tau_h", 6.0, low=0.01, high=MAX_TAU_H),
        common_fraction=fields.number("common_fraction", 0.0, low=0, high=1),
        unit=unit,
    )


@cache
def signal_defaults() -> SignalDefaults:
    """The packaged defaults (data/signals.yaml); their per-quantity entries are checked when a
    scenario is parsed, like the scenario's own overrides."""
    text = resources.files("firmware_sim").joinpath("data/signals.yaml").read_text("utf-8")
    fields = Fields(yaml.safe_load(text), "signals.yaml",
                    ("night_hours", "common_step_s", "quantities"))  # fmt: skip
    night = [number(h, where, low=0, high=24) for where, h in fields.items("night_hours")]
    if len(night) != 2:
        raise ScenarioError("signals.yaml.night_hours: expected [begin, end]")
    return SignalDefaults(
        quantities=fields.mapping("quantities"),
        night_hours=(night[0], night[1]),
        common_step_s=fields.number("common_step_s", positive=True),
    )


def parse_baselines(fields: Fields) -> dict[str, Baseline]:
    """Every known quantity's parameters: the defaults, overridden key by key by the
    scenario's ``baseline:`` section."""
    overrides = fields.mapping("baseline")
    known = quantity_table().quantities
    defaults = signal_defaults().quantities
    result = {}
    for q in overrides:
        if q not in known:
            raise ScenarioError(f"{join('baseline', q)}: unknown quantity")
    for q in known:
        override = overrides.get(q) or {}
        where = join("baseline", q)
        if not isinstance(override, dict):
            raise ScenarioError(f"{where}: expected a mapping, got {override!r}")
        merged = {**defaults.get(q, {}), **override}
        if "diurnal" in override and "peak_h" not in override:
            merged.pop("peak_h", None)  # a new daily cycle does not inherit the old peak
        result[q] = parse_baseline(merged, where, q)
    return result


def diurnal_table(baselines: list[Baseline], night_hours: tuple[float, float]) -> np.ndarray:
    """``mean + cycle`` per local minute of the day, shape (1440, len(baselines))."""
    local_h = np.arange(MINUTES_PER_DAY) / 60.0
    begin, end = night_hours
    night = (local_h >= begin) | (local_h < end) if begin > end else (
        (local_h >= begin) & (local_h < end))  # fmt: skip
    columns = [b.mean + b.cycle(local_h, night) for b in baselines]
    return np.ascontiguousarray(np.stack(columns, axis=1)) if columns else np.zeros((1440, 0))


class CommonWeather:
    """The county-wide component ``C_q(t)``: one unit-variance Ornstein-Uhlenbeck path per
    quantity, sampled on knots every ``step_s`` of absolute time and held between them.

    Knot ``k`` (time ``k * step_s``) depends only on the seed, the quantity and ``k``: knots
    come in blocks, and each block continues from a stationary draw made
    ``_COMMON_WARMUP_TAUS`` time constants before it, with innovations seeded per (seed,
    quantity, block). So every node of every process sees the same path whatever the order in
    which it asks, and no path is ever run from the epoch. With ``step_s`` at most the
    sampling period, holding is exact OU sampling for nodes on the knot grid; nodes that
    sample in the same step share one computation.
    """

    def __init__(self, seed: int, quantities: tuple[str, ...], tau_s: np.ndarray,
                 step_s: float) -> None:  # fmt: skip
        self.seed = seed
        self.quantities = quantities
        self.step_s = step_s
        self._phi = np.exp(-step_s / tau_s)
        self._sigma = np.sqrt(1.0 - self._phi**2)
        # One block in closed form: x_B = phi^B x_0 + sigma sum_j phi^(B-1-j) z_j.
        powers = np.arange(_COMMON_BLOCK - 1, -1, -1)[:, None]
        self._weights = self._sigma * self._phi**powers
        self._phi_block = self._phi**_COMMON_BLOCK
        longest = float(tau_s.max()) if len(tau_s) else 0.0
        self._warmup = math.ceil(_COMMON_WARMUP_TAUS * longest / (step_s * _COMMON_BLOCK))
        self._tags = [zlib.crc32(q.encode()) for q in quantities]
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()

    def at(self, t: float) -> np.ndarray:
        """``C_q(t)`` for every quantity (shape ``(len(quantities),)``); do not modify."""
        return self.knot(math.floor(t / self.step_s))

    def knot(self, k: int) -> np.ndarray:
        block, i = divmod(k, _COMMON_BLOCK)
        knots = self._blocks.get(block)
        if knots is None:
            knots = self._generate(block)
            self._blocks[block] = knots
            if len(self._blocks) > _COMMON_CACHE_BLOCKS:
                self._blocks.popitem(last=False)
        return knots[i]

    def _innovations(self, block: int) -> np.ndarray:
        n = len(self.quantities)
        out = np.empty((_COMMON_BLOCK + 1, n))
        for j, tag in enumerate(self._tags):
            rng = np.random.default_rng([self.seed, _COMMON_TAG, tag, block % 2**62])
            out[:, j] = rng.standard_normal(_COMMON_BLOCK + 1)
        return out

    def _generate(self, block: int) -> np.ndarray:
        first = block - self._warmup
        x = self._innovations(first)[-1]  # a stationary start (unit variance)
        for b in range(first, block):
            z = self._innovations(b)[:_COMMON_BLOCK]
            x = self._phi_block * x + (self._weights * z).sum(axis=0)
        z = self._innovations(block)
        knots = np.empty((_COMMON_BLOCK, len(self.quantities)))
        for i in range(_COMMON_BLOCK):
            x = self._phi * x + self._sigma * z[i]
            knots[i] = x
        knots.setflags(write=False)
        return knots
