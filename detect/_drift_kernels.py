"""Numba kernels of the drift rule: a node against the median of the other nodes of its group,
judged on a time grid.

Pure functions over columnar batches and state records; the rule, its state and its settings
are described in ``detect/_drift.py``, the wrapper. Two costs are kept apart:

- per sample (``drift_batch``'s loop): the sample's window mean of its series (one record,
  ``HOT``), and the sample's output, the verdict of its series at the last judged tick;
- per tick (``_judge_group``, every ``step_s`` of a group's time): the members' window means,
  their medians, the statistics and the verdicts, over the group's members at once (the
  ``COLD`` and ``SCORING`` records of one township's quantity, sorted in scratch: two sorts
  of the group's size per tick, no per-sample sorted sets).

A drift lasts hours; judging it every few minutes on window means instead of on every
sample loses nothing of it. The ticks are still the larger part of the rule's time (more
than half in ``benchmarks/bench_detector.py``, where a member is judged every fifth
sample), so a tick reads 144 bytes a member (``HOT``, ``COLD``, ``SCORING``), not the 80
bytes of ``RARE`` that only alarms and excursions need.

Order. Samples are visited in the order ``order`` gives (time order; the wrapper sorts).
The ticks of a group are judged at the first timestamp later than ``tick + lag_s`` among
the group's samples, before any sample of that timestamp is applied, so that neither the
order of a batch's rows nor where a stream is cut into batches changes a result.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from detect._anomaly_kernels import DRIFT, IMPLAUSIBLE, LEVEL_SHIFT, NO_TIME, RATE, SPIKE
from detect._kernels import prefetch_item

JIT = {"cache": True, "nogil": True}
SD_PER_MAD = math.sqrt(math.pi / 2.0)  # sd / mean |x| for Gaussian noise
SD_PER_MEDIAN_ABS = 1.482602218505602  # sd / median |x| for Gaussian noise
POLLUTION = SPIKE | RATE | LEVEL_SHIFT  # another rule's flags that mark an excursion of a node
AHEAD = 64  # rows ahead whose record drift_batch prefetches
LATEST = np.iinfo(np.int64).max
# Rows of ``_judge_group``'s int scratch ``fresh`` (one column per fresh member, in the order
# the members were read): the member, its rank among the means, its index in the statistic
# set, the sort's permutation, and (by set index) the rank in the set.
MEMBER, RANK_X, IN_SET, PERM, RANK_S = range(5)
FRESH_ROWS = 5
COUNT_SORT_MAX = 64  # larger groups: an insertion sort (counting takes n * n comparisons)

# Per-series records (detect/_drift.py builds them), split by who touches them, so that a
# tick sweeps few bytes a member: HOT is what every sample touches, COLD what every tick
# reads of every member, SCORING the member's settings a tick reads too, RARE what only an
# alarm, an excursion or another rule's flag touches. name -> (dtype, initial, columns or 0).
HOT = {  # 64 bytes: one cache line (``LINE``)
    "group_of": (np.int32, -1, 0),
    "flag": (np.int16, 0, 0),  # the verdict at the last judged tick: DRIFT or 0
    "below": (np.int16, 0, 0),  # the last usable sample was below the range
    "low": (np.float64, -math.inf, 0),
    "w_t": (np.int64, NO_TIME, 2),  # the two open windows: their ticks,
    "w_sum": (np.float64, 0.0, 2),  # sums of usable values
    "w_n": (np.int32, 0, 2),  # and counts
    "score": (np.float64, 0.0, 0),
}
COLD = {  # 64 bytes: one cache line
    "x": (np.float64, math.nan, 0),  # the latest window mean
    "x_w": (np.int64, NO_TIME, 0),  # and its tick
    "dev_t": (np.int64, NO_TIME, 0),
    "fast": (np.float64, 0.0, 0),
    "slow": (np.float64, 0.0, 0),
    "stat": (np.float64, 0.0, 0),
    "cross": (np.float64, 0.0, 0),
    "n_dev": (np.int32, 0, 0),
    "on": (np.int32, 0, 0),
}
SCORING = {  # 16 bytes
    "score_from": (np.int64, NO_TIME, 0),
    "sd_floor": (np.float64, 1e-6, 0),
}
RARE = {
    "peak": (np.float64, 0.0, 0),
    "peak_t": (np.int64, NO_TIME, 0),
    "on_t": (np.int64, NO_TIME, 0),
    "node_of": (np.int64, -1, 0),
    "ex_t": (np.int64, NO_TIME, 0),  # last excursion another rule flagged, and its sign
    "ex_sign": (np.int64, 0, 0),
    "tx_t": (np.int64, NO_TIME, 2),  # the two last ticks in an excursion of the statistic
    "tx_sign": (np.int64, 0, 2),
}
LINE = 64
# Per-group state: the next tick to judge, the latest window with data, the pooled sd.
GROUP = {
    "next_t": (np.int64, NO_TIME, 0),
    "hi_w": (np.int64, NO_TIME, 0),
    "pool": (np.float64, 0.0, 0),
    "n_pool": (np.int64, 0, 0),
    "n_due": (np.int64, 0, 0),  # scratch of _judge_ticks: 0 between calls
}

# fmt: off


@njit(inline="always", **JIT)
def tick_of(t, step_s):
    """The tick that ends the window ``(tick - step_s, tick]`` holding ``t``."""
    return -((-t) // step_s) * step_s


@njit(inline="always", **JIT)  # inlined: no call, no reference counts
def _sort_ranked(vals, n, ranks, col, perm, spare):
    """Sort ``vals[:n]`` in place (ascending, stable) and write each entry's rank in the
    sorted order to ``ranks[col, q]``, ``q`` its index before the sort (``perm``, ``spare``:
    scratch). A group has tens of members: each rank is counted, by comparisons that need
    no branch (an insertion sort's branches are mispredicted on values in random order); a
    larger group, or one with a NaN, is insertion-sorted."""
    if n > COUNT_SORT_MAX or _has_nan(vals, n):
        _insertion_ranked(vals, n, ranks, col, perm)
        return
    for q in range(n):
        v = vals[q]
        r = 0
        for p in range(q):  # the equal ones before it, and the smaller ones: stable
            r += vals[p] <= v
        for p in range(q + 1, n):
            r += vals[p] < v
        perm[q] = r
    for q in range(n):
        spare[perm[q]] = vals[q]
        ranks[col, q] = perm[q]
    vals[:n] = spare[:n]


@njit(**JIT)
def _has_nan(vals, n):
    for q in range(n):  # noqa: SIM110 (a plain loop for numba)
        if vals[q] != vals[q]:
            return True
    return False


@njit(**JIT)
def _insertion_ranked(vals, n, ranks, col, perm):
    """``_sort_ranked`` by insertion."""
    for q in range(n):
        perm[q] = q
    for q in range(1, n):
        v = vals[q]
        r = q
        while r > 0 and vals[r - 1] > v:
            vals[r] = vals[r - 1]
            perm[r] = perm[r - 1]
            r -= 1
        vals[r] = v
        perm[r] = q
    for r in range(n):
        ranks[col, perm[r]] = r


@njit(**JIT)
def _median_without_rank(vals, n, r):
    """Median of the ascending ``vals[:n]`` without the entry at rank ``r`` (``n >= 2``)."""
    mid = (n - 1) // 2
    upper = vals[mid + (mid >= r)]
    if (n - 1) % 2:
        return upper
    return 0.5 * (vals[mid - 1 + (mid - 1 >= r)] + upper)


@njit(**JIT)
def _median(vals, n):
    mid = n // 2
    if n % 2:
        return vals[mid]
    return 0.5 * (vals[mid - 1] + vals[mid])


@njit(**JIT)
def _tick_excursion_before(c, tick):
    """The last tick before ``tick`` at which ``c``'s statistic was in an excursion, and its
    sign: of the two kept, so that a tick another group has judged already does not hide
    it (``NO_TIME``: none)."""
    best = NO_TIME
    sign = 0
    for q in range(2):
        if c.tx_t[q] < tick and c.tx_t[q] > best:
            best = c.tx_t[q]
            sign = c.tx_sign[q]
    return best, sign


@njit(**JIT)
def _comoving(s, sgn, since, tick, rare, node_slot, node_members, node_start):
    """Whether another series of the node of ``s`` was in an excursion of sign ``sgn`` from
    ``since`` on (a pollution episode moves several quantities of a node together): one
    another rule flagged, or one of its statistic at an earlier tick."""
    j = node_slot[s]
    if j < 0 or sgn == 0:
        return False
    for q in range(node_start[j], node_start[j + 1]):
        o = node_members[q]
        if o == s:
            continue
        c = rare[o]
        if c.ex_t >= since and c.ex_sign == sgn:
            return True
        tx, tx_sign = _tick_excursion_before(c, tick)
        if tx >= since and tx_sign == sgn:
            return True
    return False


@njit(**JIT)
def _mark_excursion(c, tick, sgn):
    """Keep ``tick`` as the newest of the two ticks in an excursion."""
    q = 0 if c.tx_t[0] <= c.tx_t[1] else 1
    if c.tx_t[1 - q] == tick:
        q = 1 - q
    c.tx_t[q] = tick
    c.tx_sign[q] = sgn


@njit(**JIT)
def _judge_groups(groups, n_groups, tick, hot, cold, scoring, rare, grp, members, start,
                  node_slot, node_members, node_start, step_s, k, release, tau_fast_s,
                  tau_slow_s, tau_cross_s, tau_pool_s, pool_clip, warmup_s, relearn_s, fresh_s,
                  min_neighbours, co_k, co_hold_s, grow_k, grow_s, confirm_s, fresh, vx, vs,
                  d_of, a_of, e_of, gains):
    """Judge each group ``g`` of ``groups[:n_groups]`` at ``tick``, in order: take each
    member's window mean, compare the fresh members with the median of the others, update
    the statistics and set each member's verdict (``hot.flag``, ``hot.score``) for its
    samples until the next tick. One call a tick, not one a group: a call that passes the
    kernel's arrays cost about 0.4 us here (measured: as much as judging a group of 20),
    which across 5 k groups a tick was 4 ns a sample of the benchmark."""
    slot = (tick // step_s) & 1
    for gq in range(n_groups):
        g = groups[gq]
        if gq + 1 < n_groups:  # its records load while this group is judged
            _prefetch_group(groups[gq + 1], hot, cold, scoring, members, start)
        n = 0
        for j in range(start[g], start[g + 1]):
            o = members[j]
            h = hot[o]
            c = cold[o]
            h.flag = 0
            h.score = 0.0
            if h.w_t[slot] == tick and h.w_n[slot] > 0:
                c.x = h.w_sum[slot] / h.w_n[slot]
                c.x_w = tick
            if c.x_w != NO_TIME and c.x_w >= tick - fresh_s:
                fresh[MEMBER, n] = o
                vx[n] = c.x
                n += 1
        # Sorted apart from the loads above (a sort's work on a value still in flight from
        # memory would make each member wait for its record in turn), with each member's
        # rank, so that the median of the others needs no search.
        _sort_ranked(vx, n, fresh, RANK_X, fresh[PERM], d_of)  # d_of: not filled yet
        if n - 1 < min_neighbours:
            continue
        group_size = float(start[g + 1] - start[g])
        for q in range(n):  # the residual against the others' median, and its fast average
            o = fresh[MEMBER, q]
            c = cold[o]
            d = c.x - _median_without_rank(vx, n, fresh[RANK_X, q])
            d_of[q] = d
            c.n_dev += 1
            if c.n_dev == 1:
                c.fast = d
                c.slow = d
                c.stat = 0.0
                c.dev_t = tick
                if scoring[o].score_from == NO_TIME:
                    scoring[o].score_from = tick + warmup_s
                a_of[q] = -1.0  # started now: nothing to judge
                continue
            dt = float(tick - c.dev_t)
            c.dev_t = tick
            if dt != gains[0]:  # members a step apart (nearly all) share their weights
                gains[0] = dt
                gains[1] = 1.0 - math.exp(-dt / tau_fast_s)
                gains[2] = 1.0 - math.exp(-dt / tau_slow_s)
                gains[3] = 1.0 - math.exp(-dt / tau_cross_s)
                gains[4] = 1.0 - math.exp(-dt / tau_pool_s)
            a_fast = max(gains[1], 1.0 / c.n_dev)
            a_of[q] = max(gains[2], 1.0 / c.n_dev)
            e_of[q, 0] = gains[3]
            e_of[q, 1] = gains[4]
            c.fast += a_fast * (d - c.fast)
            c.stat = c.fast - c.slow
        n_s = 0
        for q in range(n):  # the statistic set: |stat| of the started, unflagged members
            c = cold[fresh[MEMBER, q]]
            if c.on == 0 and c.n_dev >= 2:
                vs[n_s] = abs(c.stat)
                fresh[IN_SET, q] = n_s
                n_s += 1
        _sort_ranked(vs, n_s, fresh, RANK_S, fresh[PERM], vx)  # vx: read no more
        for q in range(n):
            if a_of[q] < 0.0:
                continue
            o = fresh[MEMBER, q]
            h = hot[o]
            c = cold[o]
            b = scoring[o]
            e = rare[o]  # read on an alarm or an excursion only
            d = d_of[q]
            a_slow = a_of[q]
            own = 1 if c.on == 0 else 0  # in the statistic set
            others = n_s - own
            sd_x = 0.0
            if others > 0:
                sd_x = SD_PER_MEDIAN_ABS * (
                    _median_without_rank(vs, n_s, fresh[RANK_S, fresh[IN_SET, q]]) if own
                    else _median(vs, n_s))
            if others >= min_neighbours:
                if c.cross == 0.0:
                    c.cross = sd_x
                else:
                    c.cross += e_of[q, 0] * (sd_x - c.cross)
            learn = c.x > h.low  # a censored mean (at the lower bound) is not learnt
            if tick >= b.score_from and others >= min_neighbours:
                sd = max(SD_PER_MAD * grp[g].pool, c.cross, b.sd_floor)
                z = c.stat / sd
                r = abs(z) / k
                sgn = 1 if z > 0.0 else (-1 if z < 0.0 else 0)
                if abs(z) > co_k:
                    _mark_excursion(e, tick, sgn)
                alarm = r > 1.0 or (c.on and r > release)
                # whether the node co-moves matters only to an alarm or an excursion: the
                # other series' records are read for those (few) members only
                co = (alarm or abs(z) > co_k) and _comoving(o, sgn, tick - co_hold_s, tick, rare,
                                                            node_slot, node_members, node_start)
                if alarm:
                    if c.on == 0:
                        e.on_t = tick
                    if c.on == 0 or abs(c.stat) >= e.peak + grow_k * sd:
                        e.peak = abs(c.stat)  # onset, or grown by grow_k sd: still drifting
                        e.peak_t = tick
                    c.on = 1
                    if co:  # a pollution episode: drift only if it grows beyond it afterwards
                        e.peak = max(e.peak, abs(c.stat))
                        e.peak_t = NO_TIME
                    if not co and e.peak_t >= tick - grow_s and tick - e.on_t >= confirm_s:
                        h.flag = DRIFT
                    else:  # a pollution episode, a level that stopped growing, or too early
                        r = min(r, 1.0)
                elif c.on:  # the flag ends: relearn the offset from here
                    c.on = 0
                    c.n_dev = 1
                    c.fast = d
                    c.slow = d
                    c.stat = 0.0
                    b.score_from = tick + relearn_s
                elif learn:
                    if not (co and abs(z) > co_k):  # not learnt from a pollution episode
                        c.slow += a_slow * (d - c.slow)
                    p = grp[g]
                    p.n_pool += 1
                    a = abs(c.stat)
                    if p.n_pool > 100:
                        a = min(a, pool_clip * p.pool)
                    a_pool = max(1.0 / p.n_pool, e_of[q, 1] / group_size)
                    p.pool += a_pool * (a - p.pool)
                h.score = r / (1.0 + r)
            elif learn:
                c.slow += a_slow * (d - c.slow)


@njit(**JIT)
def _clear_group(g, hot, members, start):
    for j in range(start[g], start[g + 1]):
        hot[members[j]].flag = 0
        hot[members[j]].score = 0.0


@njit(**JIT)
def is_nondecreasing(a):
    """Whether ``a`` is sorted (a batch already in time order needs no sort)."""
    for i in range(1, a.shape[0]):  # noqa: SIM110 (a plain loop for numba)
        if a[i] < a[i - 1]:
            return False
    return True


@njit(**JIT)
def _judge_ticks(order, lo, hi, t, series, group_of, hot, cold, scoring, rare, grp, members,
                 start, node_slot, node_members, node_start, step_s, lag_s, k, release,
                 tau_fast_s, tau_slow_s, tau_cross_s, tau_pool_s, pool_clip, warmup_s,
                 relearn_s, fresh_s, min_neighbours, co_k, co_hold_s, grow_k, grow_s,
                 confirm_s, fresh, vx, vs, d_of, a_of, e_of, gains, due):
    """Judge the ticks that time ``t`` completes in the groups of the samples
    ``order[lo:hi]`` (all at ``t``), before any of them is applied; a new lower bound of
    every started group's next tick (so that most timestamps skip this). Tick by tick,
    and groups in index order within a tick: a group's members lie near the next group's
    in memory, and no group judges a tick before another has judged the earlier ones.
    ``due``: scratch, two per group."""
    n_due = 0
    for ii in range(lo, hi):
        g = group_of[series[order[ii]]]
        if g < 0:
            continue
        p = grp[g]
        if p.next_t == NO_TIME:
            p.next_t = tick_of(t, step_s)
        if p.next_t + lag_s < t and p.n_due == 0:
            p.n_due = 1
            due[n_due] = g
            n_due += 1
    due[:n_due].sort()
    judged = due[n_due:]  # scratch: the groups judged at one tick
    while n_due > 0:
        tick = LATEST
        for q in range(n_due):
            tick = min(tick, grp[due[q]].next_t)
        n_judged = 0
        for q in range(n_due):
            g = due[q]
            p = grp[g]
            if p.next_t == tick:
                if p.hi_w == NO_TIME or p.hi_w < tick - fresh_s:  # nobody fresh:
                    _clear_group(g, hot, members, start)  # jump over the silence
                    p.next_t = tick_of(t, step_s)
                else:
                    judged[n_judged] = g
                    n_judged += 1
        _judge_groups(judged, n_judged, tick, hot, cold, scoring, rare, grp, members, start,
                      node_slot, node_members, node_start, step_s, k, release, tau_fast_s,
                      tau_slow_s, tau_cross_s, tau_pool_s, pool_clip, warmup_s, relearn_s,
                      fresh_s, min_neighbours, co_k, co_hold_s, grow_k, grow_s, confirm_s,
                      fresh, vx, vs, d_of, a_of, e_of, gains)
        for q in range(n_judged):
            grp[judged[q]].next_t += step_s
        kept = 0
        for q in range(n_due):
            g = due[q]
            p = grp[g]
            if p.next_t + lag_s < t:
                due[kept] = g
                kept += 1
            else:
                p.n_due = 0
        n_due = kept
    lo_next = LATEST
    for g in range(grp.shape[0]):
        if grp[g].next_t != NO_TIME:
            lo_next = min(lo_next, grp[g].next_t)
    return lo_next if lo_next != LATEST else NO_TIME


@njit(inline="always", **JIT)
def _prefetch_group(g, hot, cold, scoring, members, start):
    """Start loading the records of group ``g``'s members (judged next)."""
    for j in range(start[g], start[g + 1]):
        prefetch_item(hot, members[j])
        prefetch_item(cold, members[j])
        prefetch_item(scoring, members[j])


@njit(**JIT)
def drift_batch(order, series, ts_s, values, valid, flags_in, group_of, hot, cold, scoring,
                rare, grp, members, start,
                node_slot, node_members, node_start,
                step_s, lag_s, k, release, tau_fast_s, tau_slow_s, tau_cross_s, tau_pool_s,
                pool_clip, warmup_s, relearn_s, fresh_s, min_neighbours, co_k, co_hold_s,
                grow_k, grow_s, confirm_s,
                fresh, vx, vs, d_of, a_of, e_of, due, clock, out_flags, out_score):
    """Fold a batch, visited in the order ``order`` (time order), into the drift state and
    judge the ticks it completes; ``out_flags`` (uint16) and ``out_score``, indexed like the
    batch: each usable sample gets its series' verdict at the group's last judged tick.
    ``fresh`` (5, n), ``vx``, ``vs``, ``d_of``, ``a_of``, ``e_of`` (n, 2): scratch of at least
    the largest group's size, ``due`` of twice the number of groups (the groups due, and
    those judged at one tick); ``clock[0]``: a lower bound of the started groups' next ticks
    (derived state: ``NO_TIME`` is always correct, and makes the first timestamp look).
    Returns the number of samples too late for their window (it was judged)."""
    n = order.shape[0]
    late = 0
    gains = np.full(5, np.nan)  # the step of the cached weights, and the weights
    lo_next = clock[0]
    jj = 0
    while jj < n:
        t = ts_s[order[jj]]
        end = jj
        while end < n and ts_s[order[end]] == t:  # the samples of one timestamp
            end += 1
        if t - lag_s > lo_next:  # some group may have a tick to judge: find out
            lo_next = _judge_ticks(order, jj, end, t, series, group_of, hot, cold, scoring,
                                   rare, grp, members, start, node_slot, node_members,
                                   node_start, step_s, lag_s, k, release, tau_fast_s,
                                   tau_slow_s, tau_cross_s, tau_pool_s, pool_clip, warmup_s,
                                   relearn_s, fresh_s, min_neighbours, co_k, co_hold_s, grow_k,
                                   grow_s, confirm_s, fresh, vx, vs, d_of, a_of, e_of, gains,
                                   due)
        tick = tick_of(t, step_s)  # the window of this timestamp (a division: once a run)
        slot = (tick // step_s) & 1
        for ii in range(jj, end):  # then the samples
            if ii + AHEAD < n:
                prefetch_item(hot, series[order[ii + AHEAD]])
            i = order[ii]
            s = series[i]
            h = hot[s]
            x = values[i]
            out_flags[i] = 0
            out_score[i] = 0.0
            g = h.group_of
            if g < 0:
                continue
            if grp[g].next_t == NO_TIME:  # the group's first sample: its clock starts
                grp[g].next_t = tick
                lo_next = min(lo_next, grp[g].next_t) if lo_next != NO_TIME else NO_TIME
            if not valid[i] or not np.isfinite(x):
                continue
            if flags_in[i] != 0:
                if flags_in[i] == IMPLAUSIBLE and x < h.low:
                    if h.below == 0:  # a first one counts as the bound (censored): a glitch
                        x = h.low
                    h.below = 1  # in a run, as it is: how far the sensor has gone
                else:
                    c = cold[s]
                    if flags_in[i] & POLLUTION and c.x_w != NO_TIME and x != c.x:
                        rare[s].ex_t = t  # an excursion of the node, away from its last mean
                        rare[s].ex_sign = 1 if x > c.x else -1
                    continue
            else:
                h.below = 0
            if tick < grp[g].next_t:  # its window was judged already
                late += 1
                continue
            if h.w_t[slot] != tick:
                h.w_t[slot] = tick
                h.w_sum[slot] = x
                h.w_n[slot] = 1
            else:
                h.w_sum[slot] += x
                h.w_n[slot] += 1
            grp[g].hi_w = max(grp[g].hi_w, tick)
            out_flags[i] = h.flag
            out_score[i] = h.score
        jj = end
    clock[0] = lo_next
    return late
