"""Numba kernels of the drift rule: a node against the median of the other nodes of its group.

Pure functions over columnar batches and state arrays; the rule, its state and its settings
are described in ``detect/_drift.py``, the wrapper. Samples are visited in the order given by
``order`` (the wrapper passes the batch sorted by time: the reference of a sample is the
latest value of each neighbour, so a batch must be visited in time order whatever the order of
its rows).

Both medians of a sample (its neighbours' latest values; ``|stat|`` of its fresh, started,
unflagged neighbours) come from two sorted sets per group, kept in step with the state: the
latest value of every member that has one, and ``|stat|`` of every started, unflagged member.
A sample moves its member's entry (the ranks of the old and new value are counted, the entries
in between shifted by one: O(group size), no sort). While every member with a value is fresh
(``|t - last_t| <= fresh_s``, checked against a lower and an upper bound of the group's latest
times) the median of the others is read at the sample's own rank; otherwise the group is
scanned and the stale members' entries are left out too. The sets are derived state
(``drift_index`` rebuilds them from the per-series state, so checkpoints hold none of it);
entries of equal value are interchangeable in a median, so results are those of sorting the
fresh neighbours' values, bit for bit. The state of the next ``TOUCH`` samples is read ahead
(``_touch``) so that their cache misses overlap.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from detect._anomaly_kernels import DRIFT, IMPLAUSIBLE, LEVEL_SHIFT, NO_TIME, RATE, SPIKE

JIT = {"cache": True, "nogil": True}
SD_PER_MAD = math.sqrt(math.pi / 2.0)  # sd / mean |x| for Gaussian noise
SD_PER_MEDIAN_ABS = 1.482602218505602  # sd / median |x| for Gaussian noise
LATEST = np.iinfo(np.int64).max

# fmt: off


# columns of a group's row in ``grp``: one cache line per group
START, N_X, N_S, LO_T, HI_T, SIZE = 0, 1, 2, 3, 4, 5
GROUP_COLUMNS = 8
TOUCH = 32  # samples whose state is read ahead at once (drift_batch)
POLLUTION = SPIKE | RATE | LEVEL_SHIFT  # another rule's flags that mark an excursion of a node


@njit(**JIT)
def _below(vals, lo, hi, v):
    """How many of ``vals[lo:hi]`` are below ``v`` (no branch on the data)."""
    c = 0
    for q in range(lo, hi):
        c += vals[q] < v
    return c


@njit(**JIT)
def _move(vals, base, n, old, new):
    """Replace one entry ``old`` of the sorted ``vals[base:base + n]`` by ``new``."""
    p = base + _below(vals, base, base + n, old)
    q = base + _below(vals, base, base + n, new)
    if q > p:  # upwards: the entries in between move down one
        q -= 1
        for r in range(p, q):
            vals[r] = vals[r + 1]
    else:
        for r in range(p, q, -1):
            vals[r] = vals[r - 1]
    vals[q] = new


@njit(**JIT)
def _insert(vals, base, n, v):
    """Insert ``v`` into the sorted ``vals[base:base + n]`` (room at ``base + n``)."""
    q = base + _below(vals, base, base + n, v)
    for r in range(base + n, q, -1):
        vals[r] = vals[r - 1]
    vals[q] = v


@njit(**JIT)
def _delete(vals, base, n, v):
    """Take one entry ``v`` out of the sorted ``vals[base:base + n]``."""
    for r in range(base + _below(vals, base, base + n, v), base + n - 1):
        vals[r] = vals[r + 1]


@njit(**JIT)
def _add_value(ex, m, v):
    """Insert ``v`` into the ascending ``ex[:m]``; the new length."""
    q = m
    while q > 0 and ex[q - 1] > v:
        ex[q] = ex[q - 1]
        q -= 1
    ex[q] = v
    return m + 1


@njit(**JIT)
def _at(q, ranks, m):
    """Rank in the set of its ``q``-th entry (from 0) that is not excluded (``ranks[:m]``,
    ascending)."""
    for e in range(m):
        if ranks[e] <= q:
            q += 1
        else:
            break
    return q


@njit(**JIT)
def _median_excluding(vals, base, n, ex, m, ranks):
    """Median of the sorted ``vals[base:base + n]`` without one entry of each value of
    ``ex[:m]`` (ascending, each an entry of the set; at least one entry left): the median of
    sorting what is left. ``ranks``: scratch."""
    if m == 1:  # the sample's own entry only (every neighbour fresh): no branch on the data
        r = _below(vals, base, base + n, ex[0])
        mid = (n - 1) // 2
        upper = vals[base + mid + (mid >= r)]
        if (n - 1) % 2:
            return upper
        return 0.5 * (vals[base + mid - 1 + (mid - 1 >= r)] + upper)
    p = base
    for e in range(m):  # the excluded entries' ranks, distinct
        while vals[p] < ex[e]:
            p += 1
        ranks[e] = p - base
        p += 1
    left = n - m
    mid = left // 2
    upper = vals[base + _at(mid, ranks, m)]
    if left % 2:
        return upper
    return 0.5 * (vals[base + _at(mid - 1, ranks, m)] + upper)


@njit(**JIT)
def _stale(g, t, fresh_s, grp, members, last_x, last_t, stat, n_dev, on, ex_x, ex_s):
    """Values, in the value set (``ex_x``) and the statistic set (``ex_s``, ascending), of
    the members of ``g`` whose latest sample is further than ``fresh_s`` from ``t``: their
    counts. Nothing to look at while the group's bounds of its members' latest times are
    within ``fresh_s`` of ``t``; else the group is scanned and the bounds made exact."""
    if grp[g, LO_T] >= t - fresh_s and grp[g, HI_T] <= t + fresh_s:
        return 0, 0
    lo = LATEST
    hi = NO_TIME
    m_x = 0
    m_s = 0
    for j in range(grp[g, START], grp[g, START] + grp[g, SIZE]):
        o = members[j]
        u = last_t[o]
        if u == NO_TIME:
            continue
        lo = min(lo, u)
        hi = max(hi, u)
        if abs(t - u) > fresh_s:
            m_x = _add_value(ex_x, m_x, last_x[o])
            if on[o] == 0 and n_dev[o] >= 2:
                m_s = _add_value(ex_s, m_s, abs(stat[o]))
    grp[g, LO_T] = lo
    grp[g, HI_T] = hi
    return m_x, m_s


@njit(**JIT)
def drift_index(members, start, last_x, last_t, stat, n_dev, on, grp, vx, vs):
    """Build the derived state of ``drift_batch`` from the per-series state: per group
    (members ``members[start[g]:start[g + 1]]``) the sorted latest values ``vx`` of the
    members that have one and the sorted ``|stat|`` ``vs`` of the started, unflagged members
    (both from ``start[g]``), and its row of ``grp``: start, the sizes of both sets, the
    earliest and latest of its members' latest times, its size."""
    for g in range(start.shape[0] - 1):
        base = start[g]
        grp[g, :] = 0
        grp[g, START] = base
        grp[g, SIZE] = start[g + 1] - base
        grp[g, LO_T] = LATEST
        grp[g, HI_T] = NO_TIME
        for j in range(start[g], start[g + 1]):
            o = members[j]
            if last_t[o] != NO_TIME:
                grp[g, LO_T] = min(grp[g, LO_T], last_t[o])
                grp[g, HI_T] = max(grp[g, HI_T], last_t[o])
                _insert(vx, base, grp[g, N_X], last_x[o])
                grp[g, N_X] += 1
            if on[o] == 0 and n_dev[o] >= 2:
                _insert(vs, base, grp[g, N_S], abs(stat[o]))
                grp[g, N_S] += 1


@njit(**JIT)
def _comoving(s, sgn, since, node_slot, node_members, node_start, ex_t, ex_sign):
    """Whether another series of the node of ``s`` was in an excursion of sign ``sgn`` at
    ``since`` or later (a pollution episode moves several quantities of a node together)."""
    j = node_slot[s]
    if j < 0 or sgn == 0:
        return False
    for q in range(node_start[j], node_start[j + 1]):
        o = node_members[q]
        if o != s and ex_t[o] >= since and ex_sign[o] == sgn:
            return True
    return False


@njit(**JIT)
def is_nondecreasing(a):
    """Whether ``a`` is sorted (a batch already in time order needs no sort)."""
    for i in range(1, a.shape[0]):  # noqa: SIM110 (a plain loop for numba)
        if a[i] < a[i - 1]:
            return False
    return True


@njit(**JIT)
def _touch(order, lo, hi, series, group_of, sd_floor, low, last_x, last_t, n_dev, score_from,
           dev_t, fast, slow, stat, cross, on, grp, vx, vs):
    """Read the state the samples ``order[lo:hi]`` will use, so that the cache misses of
    several samples overlap (the scoring of one sample is a chain of dependent loads and
    data-dependent branches, which would wait for them one sample after another); a sum of
    what it read, for the caller to keep."""
    acc = 0.0
    n = 0
    for jj in range(lo, hi):
        s = series[order[jj]]
        g = group_of[s]
        acc += sd_floor[s] + low[s] + last_x[s] + fast[s] + slow[s] + stat[s] + cross[s]
        n += last_t[s] + n_dev[s] + score_from[s] + dev_t[s] + on[s]
        if g >= 0:
            base = grp[g, START]
            last = base + max(grp[g, SIZE] - 1, 0)
            acc += vx[base] + vx[last] + vs[base] + vs[last]
    return acc + n


@njit(**JIT)
def drift_batch(order, series, ts_s, values, valid, flags_in,
                group_of, group_size, sd_floor, low,
                k, release, tau_fast_s, tau_slow_s, tau_cross_s, tau_pool_s, pool_clip,
                warmup_s, relearn_s, fresh_s, min_neighbours,
                co_k, co_hold_s, grow_k, grow_s, confirm_s,
                last_x, last_t, n_dev, score_from, dev_t, fast, slow, stat, cross, on,
                ex_t, ex_sign, peak, peak_t, on_t,
                pool, n_pool,
                node_slot, node_members, node_start,
                members, grp, vx, vs, ex_x, ex_s, ranks, out_flags, out_score):
    """Score a batch for drift against neighbours in the order ``order``, updating the state
    (and its derived sets, see ``drift_index``) in place; ``out_flags`` (uint16) and
    ``out_score`` are indexed like the batch. ``node_slot``, ``node_members``,
    ``node_start``: the series of each node (``node_members[node_start[j]:node_start[j + 1]]``
    for ``j = node_slot[s]``; -1: none). ``ex_x``, ``ex_s``, ``ranks``: scratch of at least
    the largest group's size."""
    last_dt = np.nan  # the step of the cached weights
    e_fast = e_slow = e_cross = e_pool = 0.0
    kept = 0.0
    for jj in range(order.shape[0]):
        if jj % TOUCH == 0:
            kept += _touch(order, jj, min(jj + TOUCH, order.shape[0]), series, group_of,
                           sd_floor, low, last_x, last_t, n_dev, score_from, dev_t, fast,
                           slow, stat, cross, on, grp, vx, vs)
        i = order[jj]
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
                if flags_in[i] & POLLUTION and last_t[s] != NO_TIME and x != last_x[s]:
                    ex_t[s] = t  # an excursion of the node, away from the last usable value
                    ex_sign[s] = 1 if x > last_x[s] else -1
                continue
        base = grp[g, START]
        if last_t[s] == NO_TIME:
            _insert(vx, base, grp[g, N_X], x)
            grp[g, N_X] += 1
        else:
            _move(vx, base, grp[g, N_X], last_x[s], x)
        last_x[s] = x
        last_t[s] = t
        grp[g, LO_T] = min(grp[g, LO_T], t)
        grp[g, HI_T] = max(grp[g, HI_T], t)
        m_x, m_s = _stale(g, t, fresh_s, grp, members, last_x, last_t, stat, n_dev, on,
                          ex_x, ex_s)
        m_x = _add_value(ex_x, m_x, x)  # the sample's own value is not its reference
        n_x = grp[g, N_X]
        if n_x - m_x < min_neighbours:
            continue
        d = x - _median_excluding(vx, base, n_x, ex_x, m_x, ranks)
        n_dev[s] += 1
        if n_dev[s] == 1:
            fast[s] = d
            slow[s] = d
            stat[s] = 0.0
            dev_t[s] = t
            if score_from[s] == NO_TIME:
                score_from[s] = t + warmup_s
            continue  # not started: not in the statistic set, before or now
        dt = float(t - dev_t[s])
        dev_t[s] = t
        if dt != last_dt:  # samples a step apart share their weights
            last_dt = dt
            e_fast = 1.0 - math.exp(-dt / tau_fast_s)
            e_slow = 1.0 - math.exp(-dt / tau_slow_s)
            e_cross = 1.0 - math.exp(-dt / tau_cross_s)
            e_pool = 1.0 - math.exp(-dt / tau_pool_s)
        was_in = on[s] == 0 and n_dev[s] > 2  # in the statistic set before this sample
        was = abs(stat[s])
        if was_in:
            m_s = _add_value(ex_s, m_s, was)
        a_fast = max(e_fast, 1.0 / n_dev[s])
        a_slow = max(e_slow, 1.0 / n_dev[s])
        fast[s] += a_fast * (d - fast[s])
        stat[s] = fast[s] - slow[s]
        learn = x > low[s]  # a censored value (at or below the bound) is not learnt
        n_s = grp[g, N_S]
        sd_x = 0.0
        if n_s - m_s > 0:
            sd_x = SD_PER_MEDIAN_ABS * _median_excluding(vs, base, n_s, ex_s, m_s, ranks)
        if n_s - m_s >= min_neighbours:
            if cross[s] == 0.0:
                cross[s] = sd_x
            else:
                cross[s] += e_cross * (sd_x - cross[s])
        if t >= score_from[s] and n_s - m_s >= min_neighbours:
            sd = max(SD_PER_MAD * pool[g], cross[s], sd_floor[s])
            z = stat[s] / sd
            r = abs(z) / k
            sgn = 1 if z > 0.0 else (-1 if z < 0.0 else 0)
            if abs(z) > co_k:
                ex_t[s] = t
                ex_sign[s] = sgn
            co = _comoving(s, sgn, t - co_hold_s, node_slot, node_members, node_start,
                           ex_t, ex_sign)
            if r > 1.0 or (on[s] and r > release):
                if on[s] == 0:
                    on_t[s] = t
                if on[s] == 0 or abs(stat[s]) >= peak[s] + grow_k * sd:
                    peak[s] = abs(stat[s])  # onset, or grown by grow_k sd: still drifting
                    peak_t[s] = t
                on[s] = 1
                if co:  # a pollution episode: drift only if it grows beyond it afterwards
                    peak[s] = max(peak[s], abs(stat[s]))
                    peak_t[s] = NO_TIME
                if not co and peak_t[s] >= t - grow_s and t - on_t[s] >= confirm_s:
                    out_flags[i] = DRIFT
                else:  # a pollution episode, a level that stopped growing, or too early
                    r = min(r, 1.0)
            elif on[s]:  # the flag ends: relearn the offset from here
                on[s] = 0
                n_dev[s] = 1
                fast[s] = d
                slow[s] = d
                stat[s] = 0.0
                score_from[s] = t + relearn_s
            elif learn:
                if not (co and abs(z) > co_k):  # not learnt from a pollution episode
                    slow[s] += a_slow * (d - slow[s])
                n_pool[g] += 1
                a = abs(stat[s])
                if n_pool[g] > 100:
                    a = min(a, pool_clip * pool[g])
                a_pool = max(1.0 / n_pool[g], e_pool / group_size[g])
                pool[g] += a_pool * (a - pool[g])
            out_score[i] = r / (1.0 + r)
        elif learn:
            slow[s] += a_slow * (d - slow[s])
        is_in = on[s] == 0 and n_dev[s] >= 2  # keep the statistic set in step
        if was_in and is_in:
            _move(vs, base, n_s, was, abs(stat[s]))
        elif was_in:
            _delete(vs, base, n_s, was)
            grp[g, N_S] -= 1
        elif is_in:
            _insert(vs, base, n_s, abs(stat[s]))
            grp[g, N_S] += 1
    ranks[0] = kept != kept  # the read-ahead's sum, kept so that it is not left out
