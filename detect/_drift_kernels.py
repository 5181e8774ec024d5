"""Numba kernel of the drift rule: a node against the median of the other nodes of its group.

Pure functions over columnar batches and state arrays; the rule, its state and its settings
are described in ``detect/_drift.py``, the wrapper. Samples are visited in the order given by
``order`` (the wrapper passes the batch sorted by time: the reference of a sample is the
latest value of each neighbour, so a batch must be visited in time order whatever the order of
its rows).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from detect._anomaly_kernels import DRIFT, IMPLAUSIBLE, NO_TIME

JIT = {"cache": True, "nogil": True}
SD_PER_MAD = math.sqrt(math.pi / 2.0)  # sd / mean |x| for Gaussian noise
SD_PER_MEDIAN_ABS = 1.482602218505602  # sd / median |x| for Gaussian noise

# fmt: off


@njit(**JIT)
def _median(part):
    part.sort()
    k = part.shape[0]
    mid = k // 2
    return part[mid] if k % 2 else 0.5 * (part[mid - 1] + part[mid])


@njit(**JIT)
def _reference(s, t, g, members, start, last_x, last_t, fresh_s, scratch):
    """Median of the latest values, no further than ``fresh_s`` from ``t``, of the other
    members of group ``g``; NaN and the count when there are none."""
    k = 0
    for j in range(start[g], start[g + 1]):
        o = members[j]
        if o != s and last_t[o] != NO_TIME and abs(t - last_t[o]) <= fresh_s:
            scratch[k] = last_x[o]
            k += 1
    if k == 0:
        return np.nan, 0
    return _median(scratch[:k]), k


@njit(**JIT)
def _spread(s, t, g, members, start, stat, last_t, n_dev, on, fresh_s, scratch):
    """Gaussian-equivalent sd of the statistic across the other fresh, started, unflagged
    members of group ``g`` (from the median of its absolute values); the count."""
    k = 0
    for j in range(start[g], start[g + 1]):
        o = members[j]
        if o != s and on[o] == 0 and n_dev[o] >= 2 and abs(t - last_t[o]) <= fresh_s:
            scratch[k] = abs(stat[o])
            k += 1
    if k == 0:
        return 0.0, 0
    return SD_PER_MEDIAN_ABS * _median(scratch[:k]), k


@njit(**JIT)
def drift_batch(order, series, ts_s, values, valid, flags_in,
                group_of, members, start, group_size, sd_floor, low,
                k, release, tau_fast_s, tau_slow_s, tau_cross_s, tau_pool_s, pool_clip,
                warmup_s, relearn_s, fresh_s, min_neighbours,
                last_x, last_t, n_dev, score_from, dev_t, fast, slow, stat, cross, on,
                pool, n_pool, scratch, out_flags, out_score):
    """Score a batch for drift against neighbours in the order ``order``, updating the state
    in place; ``out_flags`` (uint16) and ``out_score`` are indexed like the batch."""
    for j in range(order.shape[0]):
        i = order[j]
        s = series[i]
        t = ts_s[i]
        x = values[i]
        out_flags[i] = 0
        out_score[i] = 0.0
        g = group_of[s]
        if g < 0 or not valid[i] or not np.isfinite(x):
            continue
        if flags_in[i] != 0:
            if flags_in[i] == IMPLAUSIBLE and x < low[s]:
                x = low[s]  # below the range: counts as its bound (censored)
            else:
                continue
        last_x[s] = x
        last_t[s] = t
        ref, count = _reference(s, t, g, members, start, last_x, last_t, fresh_s, scratch)
        if count < min_neighbours:
            continue
        d = x - ref
        n_dev[s] += 1
        if n_dev[s] == 1:
            fast[s] = d
            slow[s] = d
            stat[s] = 0.0
            dev_t[s] = t
            if score_from[s] == NO_TIME:
                score_from[s] = t + warmup_s
            continue
        dt = float(t - dev_t[s])
        dev_t[s] = t
        a_fast = max(1.0 - math.exp(-dt / tau_fast_s), 1.0 / n_dev[s])
        a_slow = max(1.0 - math.exp(-dt / tau_slow_s), 1.0 / n_dev[s])
        fast[s] += a_fast * (d - fast[s])
        stat[s] = fast[s] - slow[s]
        learn = x > low[s]  # a censored value (at or below the bound) is not learnt
        sd_x, n_x = _spread(s, t, g, members, start, stat, last_t, n_dev, on, fresh_s,
                            scratch)
        if n_x >= min_neighbours:
            if cross[s] == 0.0:
                cross[s] = sd_x
            else:
                cross[s] += (1.0 - math.exp(-dt / tau_cross_s)) * (sd_x - cross[s])
        if t < score_from[s] or n_x < min_neighbours:
            if learn:
                slow[s] += a_slow * (d - slow[s])
            continue
        sd = max(SD_PER_MAD * pool[g], cross[s], sd_floor[s])
        r = abs(stat[s]) / (k * sd)
        out_score[i] = r / (1.0 + r)
        if r > 1.0 or (on[s] and r > release):
            on[s] = 1
            out_flags[i] = DRIFT
        elif on[s]:  # the flag ends: relearn the offset from here
            on[s] = 0
            n_dev[s] = 1
            fast[s] = d
            slow[s] = d
            stat[s] = 0.0
            score_from[s] = t + relearn_s
        elif learn:
            slow[s] += a_slow * (d - slow[s])
            n_pool[g] += 1
            a = abs(stat[s])
            if n_pool[g] > 100:
                a = min(a, pool_clip * pool[g])
            a_pool = max(1.0 / n_pool[g], (1.0 - math.exp(-dt / tau_pool_s)) / group_size[g])
            pool[g] += a_pool * (a - pool[g])
