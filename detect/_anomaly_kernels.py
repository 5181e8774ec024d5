"""Numba kernels of the anomaly rules: pure functions over columnar batches and state arrays.

Per series ``s`` the state is a running baseline: an exponentially weighted level and mean
absolute deviation (``scale``; sd ~ sqrt(pi/2) * scale for Gaussian noise), with time-based
weights ``1 - exp(-dt / tau)`` (cumulative means during the warm-up; the scale's weight is at
most ``1 / warmup``, so after a long gap, stuck run or fault one sample cannot set it), CUSUM
sums of the standardised residual (Page 1954, "Continuous inspection schemes", Biometrika 41),
the last plausible value and the length of its run of repeats. A sample that fires a rule does
not update the baseline, so a spike or a fault does not drag it; a CUSUM alarm accepts the new
level: the level restarts from the sample as a cumulative mean, and for ``relearn`` samples
the spike and CUSUM rules do not score and every sample is learnt (else the noise of a young
level would alarm again, and samples judged against one noisy sample would be spikes that the
level never learns).

Rules, per sample (bits of ``flags``): ``SPIKE`` robust z-score ``|x - level| / sd > k``;
``LEVEL_SHIFT`` two-sided CUSUM of the clipped z-score above ``h``; ``STUCK`` ``stuck_n``
consecutive values within ``stuck_eps`` of each other (not at the range's lower bound, where
a reading below the detection limit, or clipped to zero, legitimately repeats);
``IMPLAUSIBLE`` outside the quantity's physical range; ``RATE`` ``|dx / dt|`` above the
quantity's limit; ``MISSING`` NaN or not valid (no rule applies); ``OUT_OF_ORDER`` a sample
not newer than the series' last (not scored, state untouched). A value at the range's lower
bound is censored (below the detection limit, or clipped; the true value is at most the
bound): it is not a spike and does not move the scale, but the CUSUM takes its z-score
``(low - level) / sd`` (an upper bound of the true one) and the level learns it, so a series
that falls to the bound and stays there is a level shift, not a high level against which
every later small reading is a spike. The score is ``r / (1 + r)`` of the largest rule
statistic ``r`` (each rule's statistic is 1 at its threshold, so a fired rule scores at least
0.5), 1 for an implausible value, 0 for a missing or out-of-order sample.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from detect._kernels import prefetch_item

JIT = {"cache": True, "nogil": True}
NO_TIME = np.iinfo(np.int64).min

SPIKE = 1
LEVEL_SHIFT = 2
STUCK = 4
IMPLAUSIBLE = 8
RATE = 16
MISSING = 32
OUT_OF_ORDER = 64
DRIFT = 128  # drift against neighbours: detect/_drift_kernels.py (its rule)
_BASELINE_VETO = SPIKE | STUCK | RATE
SD_PER_MAD = math.sqrt(math.pi / 2.0)  # sd / mean |x - mu| for Gaussian noise
GAIN_SLOTS = 64  # entries of score_batch's cache of time gains (a power of 2)
AHEAD = 32  # rows ahead whose record score_batch prefetches (about one memory latency)

# fmt: off


@njit(**JIT)
def _squash(r):
    return r / (1.0 + r)


@njit(inline="always", **JIT)
def _gain_slot(dt):
    """The slot of ``dt`` in the table of time gains (direct-mapped)."""
    return dt & (GAIN_SLOTS - 1)


@njit(**JIT)
def _fill_gains(dt, tau_level_s, tau_scale_s, gain_dt, gain):
    """Put ``1 - exp(-dt / tau)`` of the level and of the scale in ``dt``'s slot."""
    slot = _gain_slot(dt)
    gain_dt[slot] = dt
    gain[slot, 0] = 1.0 - math.exp(-float(dt) / tau_level_s)
    gain[slot, 1] = 1.0 - math.exp(-float(dt) / tau_scale_s)


@njit(inline="always", **JIT)
def _learn(r, t, x, warmup, inv_warmup, gain):
    """Move the baseline of record ``r`` towards ``x``: cumulative means while young (the
    level since its last restart, the scale since the start), then time-weighted EWMAs whose
    scale gain is at most ``1 / warmup`` (after a long gap, a stuck run or a fault, one
    sample would otherwise set the scale). A censored ``x`` (at the lower bound) moves the
    level, not the scale: its deviation is unknown. ``gain`` holds this sample's time gains
    (``_score_run`` made sure)."""
    r.n_seen += 1
    r.n_level += 1
    if r.n_seen == 1:
        r.level = x
        r.scale = 0.0
        r.base_t = t
        return
    slot = _gain_slot(t - r.base_t)
    g_level, g_scale = gain[slot, 0], gain[slot, 1]
    # max(g, 1 / n) without a division once the gain has overtaken the cumulative mean
    a_level = g_level if g_level * r.n_level >= 1.0 else max(g_level, 1.0 / r.n_level)
    young = r.n_seen <= warmup
    a_scale = max(g_scale, 1.0 / (r.n_seen - 1)) if young else min(g_scale, inv_warmup)
    d = x - r.level
    r.level += a_level * d
    if x > r.low:
        r.scale += a_scale * (abs(d) - r.scale)
    r.base_t = t


@njit(inline="always", **JIT)
def _score(r, t, x, k_spike, cusum_k, cusum_h, cusum_clip, relearn, stuck_n, stuck_eps,
           warmup, inv_spike, inv_cusum, inv_stuck):
    """Flags and largest rule statistic of a plausible sample ``x`` at ``t``; updates the
    rate, stuck and CUSUM state of record ``r`` (not the baseline). A rule fires when its
    statistic's numerator passes the threshold (no rounding of a quotient can flip it); the
    statistics use the thresholds' reciprocals ``inv_*`` (divisions are the costliest
    arithmetic of a sample)."""
    flags = 0
    r_max = 0.0
    if r.prev_t != NO_TIME:
        step = abs(x - r.prev_x)
        limit = float(t - r.prev_t) * r.rate_max
        r_rate = step / limit
        if step > limit:
            flags |= RATE
        r_max = max(r_max, r_rate)
        r.run_len = r.run_len + 1 if step <= stuck_eps and x > r.low else 1
    else:
        r.run_len = 1
    r.prev_t = t
    r.prev_x = x
    r_stuck = (r.run_len - 1) * inv_stuck
    if r.run_len >= stuck_n:
        flags |= STUCK
    r_max = max(r_max, r_stuck)
    if r.n_seen < warmup or r.n_level < relearn:  # a young baseline: learn, don't judge
        return flags, r_max
    sd = max(SD_PER_MAD * r.scale, r.sd_floor)
    z = (x - r.level) / sd  # at the lower bound (censored): an upper bound of the true z
    if x > r.low:  # a censored value is not a spike
        r_spike = abs(z) * inv_spike
        if abs(z) > k_spike:
            flags |= SPIKE
        r_max = max(r_max, r_spike)
    zc = min(max(z, -cusum_clip), cusum_clip)
    r.cpos = max(0.0, r.cpos + zc - cusum_k)
    r.cneg = max(0.0, r.cneg - zc - cusum_k)
    cusum = max(r.cpos, r.cneg)
    r_max = max(r_max, cusum * inv_cusum)
    if cusum > cusum_h:  # accept the new level: relearn it from here, keep the scale
        flags |= LEVEL_SHIFT
        r.cpos = 0.0
        r.cneg = 0.0
        r.n_level = 1
        r.level = x
        r.base_t = t
    return flags, r_max


@njit(**JIT)
def _score_run(first, series, ts_s, values, valid, state, k_spike, warmup, cusum_k, cusum_h,
               cusum_clip, relearn, stuck_n, stuck_eps, inv, gain_dt, gain, out_flags,
               out_score):
    """Score samples ``first``.. until one needs a time gain the table lacks; returns its
    row (not scored yet), or the batch's length. The table is only read here: with stores
    to it inside this loop, rare as they were, the loop ran 3.5 times slower (27 against
    8 ns a sample, measured). ``inv``: the reciprocals of spike_k, cusum_h, stuck_n - 1
    and warmup."""
    inv_spike, inv_cusum, inv_stuck, inv_warmup = inv
    n = series.shape[0]
    for i in range(first, n):
        if i + AHEAD < n:
            prefetch_item(state, series[i + AHEAD])
        r = state[series[i]]
        t = ts_s[i]
        x = values[i]
        if r.n_seen > 0 and gain_dt[_gain_slot(t - r.base_t)] != t - r.base_t:
            return i  # it may learn: its gains first
        if r.last_t != NO_TIME and t <= r.last_t:
            out_flags[i] = OUT_OF_ORDER
            out_score[i] = 0.0
            continue
        r.last_t = t
        if not valid[i] or not np.isfinite(x):
            out_flags[i] = MISSING
            out_score[i] = 0.0
            continue
        if x < r.low or x > r.high:
            out_flags[i] = IMPLAUSIBLE
            out_score[i] = 1.0
            continue
        flags, r_max = _score(r, t, x, k_spike, cusum_k, cusum_h, cusum_clip, relearn,
                              stuck_n, stuck_eps, warmup, inv_spike, inv_cusum, inv_stuck)
        if flags & (_BASELINE_VETO | LEVEL_SHIFT) == 0:
            _learn(r, t, x, warmup, inv_warmup, gain)
        out_flags[i] = flags
        out_score[i] = _squash(r_max)
    return n


@njit(**JIT)
def score_batch(series, ts_s, values, valid, state,
                k_spike, tau_level_s, tau_scale_s, warmup,
                cusum_k, cusum_h, cusum_clip, relearn, stuck_n, stuck_eps,
                out_flags, out_score):
    """Score every sample of a batch in arrival order, updating the state in place.

    ``state`` holds one record per series: its parameters ``low``, ``high``, ``rate_max``
    (per second), ``sd_floor`` and its state (``detect/_anomaly.py`` lists the fields), so
    a sample touches one record; ``out_flags`` (uint16) and ``out_score`` hold one row per
    sample.

    The time gains ``1 - exp(-dt / tau)`` come from a small direct-mapped table keyed by
    ``dt``: sensors sample at a fixed period, so a batch holds a few distinct ``dt`` and
    exp() would otherwise be most of a sample's arithmetic. A sample whose ``dt`` is not in
    the table ends a run of ``_score_run``; its gains are computed (the same expressions, so
    the results are bit-identical) and the run resumes at that sample.
    """
    inv = (1.0 / k_spike, 1.0 / cusum_h, 1.0 / (stuck_n - 1.0), 1.0 / warmup)
    # key 0 in every slot: right for slot 0 (dt = 0 has gains 0), matched by no dt elsewhere
    gain_dt = np.zeros(GAIN_SLOTS, np.int64)
    gain = np.zeros((GAIN_SLOTS, 2), np.float64)
    n = series.shape[0]
    i = 0
    while i < n:
        i = _score_run(i, series, ts_s, values, valid, state, k_spike, warmup, cusum_k,
                       cusum_h, cusum_clip, relearn, stuck_n, stuck_eps, inv, gain_dt,
                       gain, out_flags, out_score)
        if i < n:
            _fill_gains(ts_s[i] - state[series[i]].base_t, tau_level_s, tau_scale_s,
                        gain_dt, gain)
