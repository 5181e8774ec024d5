"""Numba kernels of the anomaly rules: pure functions over columnar batches and state arrays.

Per series ``s`` the state is a running baseline: an exponentially weighted level and mean
absolute deviation (``scale``; sd ~ sqrt(pi/2) * scale for Gaussian noise), with time-based
weights ``1 - exp(-dt / tau)`` (cumulative means during the warm-up), CUSUM sums of the
standardised residual (Page 1954, "Continuous inspection schemes", Biometrika 41), the last
plausible value and the length of its run of repeats. A sample that fires a rule does not
update the baseline, so a spike or a fault does not drag it; a CUSUM alarm accepts the new
level: the level restarts from the sample as a cumulative mean, and the CUSUM waits
``relearn`` samples before it scores again (else the noise of a young level would alarm again).

Rules, per sample (bits of ``flags``): ``SPIKE`` robust z-score ``|x - level| / sd > k``;
``LEVEL_SHIFT`` two-sided CUSUM of the clipped z-score above ``h``; ``STUCK`` ``stuck_n``
consecutive values within ``stuck_eps`` of each other (not at the range's lower bound, where
a reading below the detection limit, or clipped to zero, legitimately repeats);
``IMPLAUSIBLE`` outside the quantity's physical range; ``RATE`` ``|dx / dt|`` above the
quantity's limit; ``MISSING`` NaN or not valid (no rule applies); ``OUT_OF_ORDER`` a sample
not newer than the series' last (not scored, state untouched). A value at the range's lower
bound is censored (below the detection limit, or clipped): it is neither scored against the
baseline nor learnt by it. The score is ``r / (1 + r)`` of the largest rule statistic ``r``
(each rule's statistic is 1 at its threshold, so a fired rule scores > 0.5), 1 for an
implausible value, 0 for a missing or out-of-order sample.

``drift_batch`` is the cross-series rule (a node against the median of its group); its state
and rule are described in ``detect/_drift.py``, its wrapper.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

JIT = {"cache": True, "nogil": True}
NO_TIME = np.iinfo(np.int64).min

SPIKE = 1
LEVEL_SHIFT = 2
STUCK = 4
IMPLAUSIBLE = 8
RATE = 16
MISSING = 32
OUT_OF_ORDER = 64
DRIFT = 128  # drift against neighbours: drift_batch (wrapper: detect/_drift.py)
_BASELINE_VETO = SPIKE | STUCK | RATE
SD_PER_MAD = math.sqrt(math.pi / 2.0)  # sd / mean |x - mu| for Gaussian noise

# fmt: off


@njit(**JIT)
def _squash(r):
    return r / (1.0 + r)


@njit(**JIT)
def _learn(s, t, x, tau_level_s, tau_scale_s, warmup, level, scale, n_seen, n_level, base_t):
    """Move the baseline of series ``s`` towards ``x``: cumulative means while young (the
    level since its last restart, the scale since the start), then time-weighted EWMAs."""
    n_seen[s] += 1
    n_level[s] += 1
    if n_seen[s] == 1:
        level[s] = x
        scale[s] = 0.0
        base_t[s] = t
        return
    dt = float(t - base_t[s])
    a_level = max(1.0 - math.exp(-dt / tau_level_s), 1.0 / n_level[s])
    a_scale = 1.0 - math.exp(-dt / tau_scale_s)
    if n_seen[s] <= warmup:
        a_scale = max(a_scale, 1.0 / (n_seen[s] - 1))
    r = x - level[s]
    level[s] += a_level * r
    scale[s] += a_scale * (abs(r) - scale[s])
    base_t[s] = t


@njit(**JIT)
def score_batch(series, ts_s, values, valid,
                low, high, rate_max, sd_floor,
                k_spike, tau_level_s, tau_scale_s, warmup,
                cusum_k, cusum_h, cusum_clip, relearn, stuck_n, stuck_eps,
                level, scale, n_seen, n_level, base_t, cpos, cneg,
                last_t, prev_t, prev_x, run_len,
                out_flags, out_score):
    """Score every sample of a batch in arrival order, updating the state in place.

    ``low``, ``high``, ``rate_max`` (per second) and ``sd_floor`` are per series; the state
    arrays are per series; ``out_flags`` (uint16) and ``out_score`` hold one row per sample.
    """
    for i in range(series.shape[0]):
        s = series[i]
        t = ts_s[i]
        x = values[i]
        if last_t[s] != NO_TIME and t <= last_t[s]:
            out_flags[i] = OUT_OF_ORDER
            out_score[i] = 0.0
            continue
        last_t[s] = t
        if not valid[i] or not np.isfinite(x):
            out_flags[i] = MISSING
            out_score[i] = 0.0
            continue
        if x < low[s] or x > high[s]:
            out_flags[i] = IMPLAUSIBLE
            out_score[i] = 1.0
            continue
        flags = 0
        r_max = 0.0
        if prev_t[s] != NO_TIME:
            step = abs(x - prev_x[s])
            r_rate = step / (float(t - prev_t[s]) * rate_max[s])
            if r_rate > 1.0:
                flags |= RATE
            r_max = max(r_max, r_rate)
            run_len[s] = run_len[s] + 1 if step <= stuck_eps and x > low[s] else 1
        else:
            run_len[s] = 1
        prev_t[s] = t
        prev_x[s] = x
        r_stuck = (run_len[s] - 1) / (stuck_n - 1.0)
        if run_len[s] >= stuck_n:
            flags |= STUCK
        r_max = max(r_max, r_stuck)
        censored = x <= low[s]  # at the lower bound: below detection, or clipped
        if n_seen[s] >= warmup and not censored:
            sd = max(SD_PER_MAD * scale[s], sd_floor[s])
            z = (x - level[s]) / sd
            r_spike = abs(z) / k_spike
            if r_spike > 1.0:
                flags |= SPIKE
            r_max = max(r_max, r_spike)
            if n_level[s] >= relearn:
                zc = min(max(z, -cusum_clip), cusum_clip)
                cpos[s] = max(0.0, cpos[s] + zc - cusum_k)
                cneg[s] = max(0.0, cneg[s] - zc - cusum_k)
                r_cusum = max(cpos[s], cneg[s]) / cusum_h
                r_max = max(r_max, r_cusum)
                if r_cusum > 1.0:  # accept the new level: relearn it from here, keep the scale
                    flags |= LEVEL_SHIFT
                    cpos[s] = 0.0
                    cneg[s] = 0.0
                    n_level[s] = 1
                    level[s] = x
                    base_t[s] = t
        if flags & _BASELINE_VETO == 0 and flags & LEVEL_SHIFT == 0 and not censored:
            _learn(s, t, x, tau_level_s, tau_scale_s, warmup, level, scale, n_seen, n_level,
                   base_t)
        out_flags[i] = flags
        out_score[i] = _squash(r_max)



@njit(**JIT)
def _reference(s, t, group_of, members, start, last_x, last_t, fresh_s, scratch):
    """Median of the fresh latest values of the other members of ``s``'s group; NaN and the
    count when there are none."""
    g = group_of[s]
    k = 0
    for j in range(start[g], start[g + 1]):
        o = members[j]
        if o != s and last_t[o] != NO_TIME and t - last_t[o] <= fresh_s:
            scratch[k] = last_x[o]
            k += 1
    if k == 0:
        return np.nan, 0
    part = scratch[:k]
    part.sort()
    mid = k // 2
    return (part[mid] if k % 2 else 0.5 * (part[mid - 1] + part[mid])), k


@njit(**JIT)
def drift_batch(series, ts_s, values, valid, flags_in,
                group_of, members, start,
                k, tau_fast_s, tau_slow_s, warmup, fresh_s, min_neighbours, sd_floor,
                last_x, last_t, dev, offset, scale, n_dev, dev_t, scratch,
                out_flags, out_score):
    """Score a batch for drift against neighbours, updating the state in place."""
    for i in range(series.shape[0]):
        s = series[i]
        t = ts_s[i]
        x = values[i]
        out_flags[i] = 0
        out_score[i] = 0.0
        if flags_in[i] != 0 or not valid[i] or not np.isfinite(x):
            continue
        last_x[s] = x
        last_t[s] = t
        ref, count = _reference(s, t, group_of, members, start, last_x, last_t, fresh_s,
                                scratch)
        if count < min_neighbours:
            continue
        d = x - ref
        n_dev[s] += 1
        if n_dev[s] == 1:
            dev[s] = d
            offset[s] = d
            scale[s] = 0.0
            dev_t[s] = t
            continue
        dt = float(t - dev_t[s])
        dev_t[s] = t
        a_fast = max(1.0 - math.exp(-dt / tau_fast_s), 1.0 / n_dev[s])
        a_slow = max(1.0 - math.exp(-dt / tau_slow_s), 1.0 / n_dev[s])
        dev[s] += a_fast * (d - dev[s])
        z = (dev[s] - offset[s]) / max(SD_PER_MAD * scale[s], sd_floor[s])
        r = abs(z) / k
        if n_dev[s] > warmup and r > 1.0:
            out_flags[i] = DRIFT
        else:
            scale[s] += a_slow * (abs(d - offset[s]) - scale[s])
            offset[s] += a_slow * (d - offset[s])
        if n_dev[s] > warmup:
            out_score[i] = r / (1.0 + r)
