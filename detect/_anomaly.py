"""Anomaly rules over reading streams: spike, level shift, stuck, implausible value, rate.

Score, don't decide: ``AnomalyDetector.update`` returns, per sample, the bitmask of the rules
that fired (``AnomalyRule``) and a score in [0, 1]; turning flags into events is the caller's
policy. The kernels are in ``detect/_anomaly_kernels.py`` (the rules and the score are
described there); this module owns the per-series state arrays and the configuration.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import yaml

from detect import _anomaly_kernels as _k
from detect._batch import ReadingBatch
from detect._kernels import as_index
from detect._state import new_records
from tianwang.quantities import quantity_table


class AnomalyRule(enum.IntFlag):
    """Bits of ``AnomalyFlags.flags``."""

    SPIKE = _k.SPIKE
    LEVEL_SHIFT = _k.LEVEL_SHIFT
    STUCK = _k.STUCK
    IMPLAUSIBLE = _k.IMPLAUSIBLE
    RATE = _k.RATE
    MISSING = _k.MISSING
    OUT_OF_ORDER = _k.OUT_OF_ORDER


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of the anomaly rules; ``AnomalyConfig.default()`` reads detect/data/anomaly.yaml.

    Args:
        spike_k: robust z-score above which a sample is a spike.
        tau_level_s: time constant of the baseline level (exponential weights by elapsed time).
        tau_scale_s: time constant of the baseline's mean absolute deviation.
        warmup: samples learned before the spike and CUSUM rules score; after it, no sample
            weighs more than ``1 / warmup`` in the deviation (not even after a long gap).
        cusum_k: CUSUM drift allowance (sd); cusum_h: alarm threshold (sd);
        cusum_clip: residuals are clipped to +-this (sd) first, so one spike cannot alarm.
        relearn: after a CUSUM alarm the level is relearnt over this many samples (each
            learnt) before the spike and CUSUM rules score again.
        stuck_n: consecutive values within ``stuck_eps`` of the previous one that make a
            stuck sensor (``stuck_n`` >= 2).
        rate_per_min: per quantity, the largest plausible change per minute.
        sd_floor: per quantity, the smallest sd the baseline assumes.
        default_rate_per_min, default_sd_floor: for a quantity not named in the maps.
    """

    spike_k: float = 6.0
    tau_level_s: float = 600.0
    tau_scale_s: float = 7200.0
    warmup: int = 30
    cusum_k: float = 1.0
    cusum_h: float = 20.0
    cusum_clip: float = 4.0
    relearn: int = 10
    stuck_n: int = 10
    stuck_eps: float = 0.0
    rate_per_min: Mapping[str, float] = field(default_factory=dict)
    sd_floor: Mapping[str, float] = field(default_factory=dict)
    default_rate_per_min: float = math.inf
    default_sd_floor: float = 1e-6

    def __post_init__(self) -> None:
        positive = ("spike_k", "tau_level_s", "tau_scale_s", "cusum_h", "cusum_clip")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"AnomalyConfig.{name}: must be > 0")
        if self.warmup < 1 or self.stuck_n < 2 or self.relearn < 1:
            raise ValueError("AnomalyConfig: warmup and relearn must be >= 1, stuck_n >= 2")
        if self.cusum_k < 0 or self.stuck_eps < 0:
            raise ValueError("AnomalyConfig: cusum_k and stuck_eps must be >= 0")
        rates = [*self.rate_per_min.values(), self.default_rate_per_min]
        floors = [*self.sd_floor.values(), self.default_sd_floor]
        if min(rates) <= 0 or min(floors) <= 0:
            raise ValueError("AnomalyConfig: rates and sd floors must be > 0")

    @classmethod
    def default(cls) -> AnomalyConfig:
        """The packaged defaults (detect/data/anomaly.yaml)."""
        return _default_config()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> AnomalyConfig:
        """A configuration from the layout of detect/data/anomaly.yaml."""
        raw = dict(raw)
        per_q: dict[str, dict[str, float]] = raw.pop("quantities", None) or {}
        fallback: dict[str, float] = raw.pop("default", None) or {}
        scalars = {
            k: (int(v) if k in ("warmup", "stuck_n", "relearn") else float(v))
            for k, v in raw.items()
        }
        return cls(
            **scalars,
            rate_per_min={q: float(v["rate_per_min"]) for q, v in per_q.items()},
            sd_floor={q: float(v["sd_floor"]) for q, v in per_q.items()},
            default_rate_per_min=float(fallback.get("rate_per_min", math.inf)),
            default_sd_floor=float(fallback.get("sd_floor", 1e-6)),
        )

    def kernel_args(self) -> tuple[float | int, ...]:
        """The scalar settings in the kernel's argument order."""
        return (
            float(self.spike_k), float(self.tau_level_s), float(self.tau_scale_s),
            int(self.warmup), float(self.cusum_k), float(self.cusum_h),
            float(self.cusum_clip), int(self.relearn), int(self.stuck_n),
            float(self.stuck_eps),
        )  # fmt: skip


@cache
def _default_config() -> AnomalyConfig:
    text = resources.files("detect").joinpath("data/anomaly.yaml").read_text("utf-8")
    return AnomalyConfig.from_mapping(yaml.safe_load(text))


@dataclass(frozen=True, slots=True)
class AnomalyFlags:
    """Per sample of one batch, in its order: the rules that fired (``AnomalyRule`` bits)
    and the score in [0, 1]."""

    flags: np.ndarray  # uint16
    score: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.flags.shape[0])


class AnomalyDetector:
    """Streaming anomaly rules for many series; state in records grown by doubling.

    ``add_series(quantity)`` registers a series (its index is the batch's ``series``);
    ``update(batch)`` scores a batch. Results do not depend on how a stream is cut into
    batches; the batch is not modified.
    """

    # One record per series (detect/_state.py): field -> (dtype, initial value, 0 = scalar).
    # Parameters and state share the record, fields read by every sample first, so a
    # sample in random series order touches two cache lines instead of fifteen arrays.
    _FIELDS: ClassVar[dict[str, tuple[type, float, int]]] = {
        "last_t": (np.int64, _k.NO_TIME, 0),
        "low": (np.float64, -math.inf, 0),
        "high": (np.float64, math.inf, 0),
        "prev_t": (np.int64, _k.NO_TIME, 0),
        "prev_x": (np.float64, math.nan, 0),
        "rate_max": (np.float64, math.inf, 0),  # per second
        "run_len": (np.int64, 0, 0),
        "n_seen": (np.int64, 0, 0),
        "level": (np.float64, 0.0, 0),
        "scale": (np.float64, 0.0, 0),
        "sd_floor": (np.float64, 1e-6, 0),
        "n_level": (np.int64, 0, 0),
        "cpos": (np.float64, 0.0, 0),
        "cneg": (np.float64, 0.0, 0),
        "base_t": (np.int64, _k.NO_TIME, 0),
    }

    def __init__(self, config: AnomalyConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or AnomalyConfig.default()
        self.n_series = 0
        self._alloc(max(1, capacity))

    def _alloc(self, capacity: int) -> None:
        grown = new_records(self._FIELDS, capacity)
        if self.n_series:
            grown[: self.n_series] = self._rows[: self.n_series]
        self._rows = grown

    def add_series(self, quantity: str | None = None) -> int:
        """Register a series of ``quantity`` (None: no range, rate limit or floor known)."""
        if self.n_series == self._rows.shape[0]:
            self._alloc(2 * self.n_series)
        sid = self.n_series
        self.n_series += 1
        low, high = -math.inf, math.inf
        known = quantity_table().quantities.get(quantity) if quantity else None
        if known is not None:
            low, high = known.min, known.max
        cfg = self.config
        rate = cfg.rate_per_min.get(quantity, cfg.default_rate_per_min) if quantity else math.inf
        floor = cfg.default_sd_floor
        if quantity:
            floor = cfg.sd_floor.get(quantity, floor)
        rows = self._rows  # column views: 3x faster than setting fields of a record scalar
        rows["low"][sid] = low
        rows["high"][sid] = high
        rows["rate_max"][sid] = rate / 60.0
        rows["sd_floor"][sid] = floor
        return sid

    def state(self, name: str) -> np.ndarray:
        """A copy of one per-series state array (``level``, ``scale``, ``cpos``, ...)."""
        if name not in self._FIELDS:
            raise KeyError(name)
        return self._rows[name][: self.n_series].copy()

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The used part of every per-series field as its own array, parameters included
        (for checkpoints: a restored detector needs no quantities)."""
        return {name: self.state(name) for name in self._FIELDS}

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Replace all series and their state by what ``state_arrays`` returned."""
        n = int(arrays["level"].shape[0])
        self.n_series = 0
        self._alloc(max(n, 16))
        for name in self._FIELDS:
            self._rows[name][:n] = arrays[name]
        self.n_series = n

    def update(self, batch: ReadingBatch) -> AnomalyFlags:
        n = len(batch)
        if n and (int(batch.series.min()) < 0 or int(batch.series.max()) >= self.n_series):
            raise ValueError("batch names a series the detector does not know")
        flags = np.empty(n, np.uint16)
        score = np.empty(n, np.float64)
        _k.score_batch(
            as_index(batch.series),
            np.ascontiguousarray(batch.ts_s, np.int64),
            np.ascontiguousarray(batch.value, np.float64),
            np.ascontiguousarray(batch.valid, np.bool_),
            self._rows,
            *self.config.kernel_args(),
            flags,
            score,
        )
        return AnomalyFlags(flags, score)


def _seconds(timestamps: np.ndarray | None, n: int) -> np.ndarray:
    if timestamps is None:
        return np.arange(n, dtype=np.int64)
    ts = np.asarray(timestamps)
    if ts.shape != (n,):
        raise ValueError("timestamps and values differ in length")
    if np.issubdtype(ts.dtype, np.datetime64):
        return ts.astype("datetime64[s]").astype(np.int64)
    return ts.astype(np.int64)


def anomaly_scores(
    values: np.ndarray,
    timestamps: np.ndarray | None = None,
    *,
    quantity: str | None = None,
    config: AnomalyConfig | None = None,
) -> np.ndarray:
    """Streaming anomaly scores in [0, 1] of one series, one per sample.

    Score ``i`` depends only on samples ``0..i`` (the same kernels as ``AnomalyDetector``),
    so the function can be scored on public streaming-anomaly benchmarks (e.g. NAB).

    Args:
        values: the series; NaN is a missing sample (score 0).
        timestamps: epoch seconds (integers) or ``datetime64``; None: one sample per second.
        quantity: a quantity of tianwang/data/quantities.yaml, for its range, rate limit and
            sd floor; None: none of those apply.
        config: the rules' settings; default ``AnomalyConfig.default()``.
    """
    x = np.asarray(values, np.float64)
    if x.ndim != 1:
        raise ValueError("values must be one-dimensional")
    ts = _seconds(timestamps, x.shape[0])
    detector = AnomalyDetector(config, capacity=1)
    detector.add_series(quantity)
    batch = ReadingBatch(np.zeros(x.shape[0], np.int64), ts, x, np.ones(x.shape[0], np.bool_))
    return detector.update(batch).score
