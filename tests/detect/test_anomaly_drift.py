"""NeighbourDrift: a node drifting away from its group is flagged; county-wide changes, which
every neighbour shares, and a node's own bounded wander are not; batch splits, row order and
a checkpoint do not change results; inputs are not modified; NaN is tolerated."""

from __future__ import annotations

import numpy as np

from detect import ReadingBatch
from detect._anomaly import AnomalyDetector
from detect._drift import DRIFT, DriftConfig, NeighbourDrift
from detect._drift_kernels import COUNT_SORT_MAX, _insertion_ranked, _sort_ranked

T0 = 1_780_243_200
N = 8
STEPS = 900  # one sample a minute
START = 400  # the drift starts at this step


def stream(drift_per_step: float, steps: int = STEPS, seed: int = 0) -> list[ReadingBatch]:
    """Per minute one sample of each of ``N`` nodes: a common random walk (weather every node
    shares), each node's own slow wander (AR(1), 2 h) and white noise; node 0 drifts."""
    rng = np.random.default_rng(seed)
    common = 70 + np.cumsum(rng.normal(0, 1.0, steps))
    own = np.zeros(N)
    phi = np.exp(-1 / 120)
    out = []
    for t in range(steps):
        own = phi * own + np.sqrt(1 - phi * phi) * rng.normal(0, 3, N)
        x = common[t] + own + rng.normal(0, 2, N)
        x[0] += max(0, t - START) * drift_per_step
        out.append(ReadingBatch(np.arange(N), np.full(N, T0 + 60 * t), x, np.ones(N, bool)))
    return out


def merged(batches: list[ReadingBatch], every: int) -> list[ReadingBatch]:
    cols = ("series", "ts_s", "value", "valid")
    return [
        ReadingBatch(*(np.concatenate([getattr(b, c) for b in batches[i : i + every]])
                       for c in cols))
        for i in range(0, len(batches), every)
    ]  # fmt: skip


def detectors(n: int = N) -> tuple[AnomalyDetector, NeighbourDrift]:
    det = AnomalyDetector(capacity=2)
    drift = NeighbourDrift(capacity=2)  # grown by doubling
    for _ in range(n):
        sid = det.add_series("O3")
        assert drift.add_series(0, det.config.sd_floor["O3"], 0.0) == sid
    return det, drift


def run(batches: list[ReadingBatch], det=None, drift=None) -> tuple[np.ndarray, np.ndarray]:
    if det is None:
        det, drift = detectors()
    out = [drift.update(b, det.update(b).flags) for b in batches]
    return np.concatenate([f for f, _ in out]), np.concatenate([s for _, s in out])


def test_drift_is_flagged_only_on_the_drifting_node() -> None:
    flags, score = run(stream(0.1))
    flags = flags.reshape(-1, N)
    drifting = flags[START:, 0] == DRIFT
    assert drifting.any()
    first = START + int(np.argmax(drifting))
    assert first < START + 300  # within 5 h at 6 units an hour (own wander: sd 3)
    assert drifting[first - START :].all()  # and it holds
    assert not flags[:START].any()
    assert not flags[:, 1:].any()
    assert ((score >= 0) & (score < 1)).all()


def test_common_changes_and_own_wander_are_not_drift() -> None:
    for seed in range(3):
        assert not run(stream(0.0, seed=seed))[0].any()


def test_batch_splits_and_row_order_do_not_change_results() -> None:
    batches = stream(0.1, steps=600)
    one = run(batches)
    for every in (7, 60):
        chunks = merged(batches, every)
        assert [a.tolist() for a in run(chunks)] == [a.tolist() for a in one]
    # node-major rows inside each batch, as a gateway uploading a backlog would send them
    shuffled, back = [], []
    offset = 0
    for b in merged(batches, 60):
        order = np.lexsort((b.ts_s, b.series))
        shuffled.append(ReadingBatch(b.series[order], b.ts_s[order], b.value[order],
                                     b.valid[order]))  # fmt: skip
        back.append(offset + np.argsort(order))
        offset += len(b)
    flags, score = run(shuffled)
    inverse = np.concatenate(back)
    assert flags[inverse].tolist() == one[0].tolist()
    assert score[inverse].tolist() == one[1].tolist()


def test_a_checkpoint_split_gives_the_results_of_one_run() -> None:
    batches = stream(0.1, steps=700)
    one = run(batches)
    det, drift = detectors()
    first = run(batches[:450], det, drift)
    arrays = drift.state_arrays()
    restored = NeighbourDrift()
    restored.load_state_arrays({k: v.copy() for k, v in arrays.items()})
    assert all(np.array_equal(v, restored.state_arrays()[k], equal_nan=True)
               for k, v in arrays.items())  # fmt: skip
    second = run(batches[450:], det, restored)
    for a, b, c in zip(one, first, second, strict=True):
        assert a.tolist() == np.concatenate([b, c]).tolist()


def test_inputs_are_not_modified_and_nan_is_tolerated() -> None:
    batches = stream(0.1, steps=500)
    for t in range(0, 500, 37):
        batches[t].value[3] = np.nan
    batches[100].valid[2] = False
    det, drift = detectors()
    for b in batches:
        keep = [getattr(b, c).copy() for c in ("series", "ts_s", "value", "valid")]
        flags = det.update(b).flags
        kept_flags = flags.copy()
        out, score = drift.update(b, flags)
        for c, k in zip(("series", "ts_s", "value", "valid"), keep, strict=True):
            assert np.array_equal(getattr(b, c), k, equal_nan=True)
        assert np.array_equal(flags, kept_flags)
        assert np.isfinite(score).all()
        assert not out[~np.isfinite(b.value)].any()


def test_ungrouped_and_lonely_series_are_not_scored() -> None:
    det = AnomalyDetector()
    drift = NeighbourDrift(DriftConfig(warmup_s=60))
    for g in (-1, 0, 0, 1, 1, 1, 1):
        drift.add_series(g, 0.5)
        det.add_series("O3")
    rng = np.random.default_rng(1)
    for t in range(300):
        x = 50 + rng.normal(0, 1, 7) + np.array([t, t, 0, 0, 0, 0, 0])  # 0 and 1 run away
        b = ReadingBatch(np.arange(7), np.full(7, T0 + 60 * t), x, np.ones(7, bool))
        flags, score = drift.update(b, det.update(b).flags)
        assert not flags[:3].any() and not score[:3].any()  # no group, or one neighbour


def _oracle(batches, flags, group, config, sd_floor, low, node):
    """The rule as documented, in plain Python: per timestamp (in time order), first the
    ticks it completes in the groups of its samples, tick by tick and groups in order; a
    tick sorts its fresh members' window means and statistics afresh for every member (what
    the kernel's two sorts per tick replace); then the samples' window sums. Returns the
    flags and scores of every batch, concatenated, and the number of late samples."""
    import math

    c = config
    step = c.step_s
    n = len(group)
    members = {g: [s for s in range(n) if group[s] == g] for g in set(group) if g >= 0}
    win = [{} for _ in range(n)]  # tick -> [sum, count] of the open windows
    x, x_w = [math.nan] * n, [None] * n
    n_dev, score_from, dev_t = [0] * n, [None] * n, [0] * n
    fast, slow, stat, cross, on = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n, [0] * n
    ex_t, ex_sign, tx = [None] * n, [0] * n, [[] for _ in range(n)]
    peak, peak_t, on_t = [0.0] * n, [None] * n, [0] * n
    verdict = [(0, 0.0)] * n
    below = [False] * n  # the last usable sample was below the range
    next_t, hi_w, pool, n_pool = {}, {}, {}, {}
    late = [0]

    def tick_of(t):
        return -((-t) // step) * step

    def median(v):
        v = sorted(v)
        mid = len(v) // 2
        return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])

    def excursion_before(o, tick):  # the newest of the two kept ticks before ``tick``
        before = [(u, sg) for u, sg in tx[o] if u < tick]
        return max(before) if before else (None, 0)

    def comoving(s, sgn, since, tick):
        if sgn == 0 or node[s] < 0:
            return False
        for o in range(n):
            if o == s or node[o] != node[s]:
                continue
            if ex_t[o] is not None and ex_t[o] >= since and ex_sign[o] == sgn:
                return True
            u, sg = excursion_before(o, tick)
            if u is not None and u >= since and sg == sgn:
                return True
        return False

    def judge(g, tick):
        fresh = []
        for o in members[g]:
            verdict[o] = (0, 0.0)
            if tick in win[o]:
                total, count = win[o].pop(tick)
                x[o], x_w[o] = total / count, tick
            if x_w[o] is not None and x_w[o] >= tick - c.fresh_s:
                fresh.append(o)
        if len(fresh) - 1 < c.min_neighbours:
            return
        d, a_slow, e_cross, e_pool = {}, {}, {}, {}
        for o in fresh:
            d[o] = x[o] - median([x[q] for q in fresh if q != o])
            n_dev[o] += 1
            if n_dev[o] == 1:
                fast[o] = slow[o] = d[o]
                stat[o], dev_t[o] = 0.0, tick
                score_from[o] = tick + c.warmup_s if score_from[o] is None else score_from[o]
                continue
            dt = float(tick - dev_t[o])
            dev_t[o] = tick
            a_fast = max(1.0 - math.exp(-dt / c.tau_fast_s), 1.0 / n_dev[o])
            a_slow[o] = max(1.0 - math.exp(-dt / c.tau_slow_s), 1.0 / n_dev[o])
            e_cross[o] = 1.0 - math.exp(-dt / c.tau_cross_s)
            e_pool[o] = 1.0 - math.exp(-dt / c.tau_pool_s)
            fast[o] += a_fast * (d[o] - fast[o])
            stat[o] = fast[o] - slow[o]
        quiet = {o: abs(stat[o]) for o in fresh if on[o] == 0 and n_dev[o] >= 2}
        for o in fresh:
            if o not in a_slow:
                continue
            others = [v for q, v in quiet.items() if q != o]
            if len(others) >= c.min_neighbours:
                sd_x = 1.482602218505602 * median(others)
                if cross[o] == 0.0:
                    cross[o] = sd_x
                else:
                    cross[o] += e_cross[o] * (sd_x - cross[o])
            learn = x[o] > low
            if tick < score_from[o] or len(others) < c.min_neighbours:
                if learn:
                    slow[o] += a_slow[o] * (d[o] - slow[o])
                continue
            sd = max(math.sqrt(math.pi / 2.0) * pool.get(g, 0.0), cross[o], sd_floor)
            z = stat[o] / sd
            r = abs(z) / c.k
            sgn = (z > 0) - (z < 0)
            if abs(z) > c.co_k:
                tx[o] = [*[e for e in tx[o] if e[0] != tick][-1:], (tick, sgn)]
            co = comoving(o, sgn, tick - c.co_hold_s, tick)
            flag = 0
            if r > 1.0 or (on[o] and r > c.release):
                if not on[o]:
                    on_t[o] = tick
                if not on[o] or abs(stat[o]) >= peak[o] + c.grow_k * sd:
                    peak[o], peak_t[o] = abs(stat[o]), tick
                on[o] = 1
                if co:
                    peak[o], peak_t[o] = max(peak[o], abs(stat[o])), None
                grown = peak_t[o] is not None and peak_t[o] >= tick - c.grow_s
                if not co and grown and tick - on_t[o] >= c.confirm_s:
                    flag = DRIFT
                else:
                    r = min(r, 1.0)
            elif on[o]:
                on[o], n_dev[o], fast[o], slow[o], stat[o] = 0, 1, d[o], d[o], 0.0
                score_from[o] = tick + c.relearn_s
            elif learn:
                if not (co and abs(z) > c.co_k):
                    slow[o] += a_slow[o] * (d[o] - slow[o])
                n_pool[g] = n_pool.get(g, 0) + 1
                a = abs(stat[o])
                p = pool.get(g, 0.0)
                if n_pool[g] > 100:
                    a = min(a, c.pool_clip * p)
                pool[g] = p + max(1.0 / n_pool[g], e_pool[o] / len(members[g])) * (a - p)
            verdict[o] = (flag, r / (1.0 + r))

    out_f, out_s = [], []
    for b, fl in zip(batches, flags, strict=True):
        f, sc = np.zeros(len(b), np.uint16), np.zeros(len(b))
        order = [int(i) for i in np.argsort(b.ts_s, kind="stable")]
        for t in sorted({int(b.ts_s[i]) for i in order}):
            rows = [i for i in order if int(b.ts_s[i]) == t]
            for i in rows:  # a group's clock starts at its first sample
                g = group[int(b.series[i])]
                if g >= 0 and g not in next_t:
                    next_t[g] = tick_of(t)
            due = sorted({g for i in rows if (g := group[int(b.series[i])]) >= 0
                          and next_t[g] + c.lag_s < t})  # fmt: skip
            while due:
                tick = min(next_t[g] for g in due)
                for g in due:
                    if next_t[g] != tick:
                        continue
                    if g not in hi_w or hi_w[g] < tick - c.fresh_s:  # nobody fresh
                        for o in members[g]:
                            verdict[o] = (0, 0.0)
                        next_t[g] = tick_of(t)
                    else:
                        judge(g, tick)
                        next_t[g] += step
                due = [g for g in due if next_t[g] + c.lag_s < t]
            for i in rows:
                s, xi = int(b.series[i]), float(b.value[i])
                g = group[s]
                if g < 0 or not b.valid[i] or not math.isfinite(xi):
                    continue
                if fl[i]:
                    if fl[i] == 8 and xi < low:  # IMPLAUSIBLE below the range: the bound,
                        xi = xi if below[s] else low  # or itself in a run of them
                        below[s] = True
                    else:
                        if fl[i] & 19 and x_w[s] is not None and xi != x[s]:  # SPIKE...
                            ex_t[s], ex_sign[s] = t, (1 if xi > x[s] else -1)
                        continue
                else:
                    below[s] = False
                tick = tick_of(t)
                if tick < next_t[g]:  # late
                    late[0] += 1
                    continue
                acc = win[s].setdefault(tick, [0.0, 0])
                acc[0] = xi if acc[1] == 0 else acc[0] + xi
                acc[1] += 1
                hi_w[g] = max(hi_w.get(g, tick), tick)
                f[i], sc[i] = verdict[s]
        out_f.append(f)
        out_s.append(sc)
    return np.concatenate(out_f), np.concatenate(out_s), late[0]


def test_results_are_those_of_the_rule_in_plain_python() -> None:
    """The kernel against the rule in plain Python: neighbours that fall silent (stale) and
    come back, ties, censored values, other rules' flags, NaN, rows out of time order, late
    batches (their samples too late for a judged window), and a checkpoint taken halfway."""
    config = DriftConfig(step_s=120, lag_s=30, k=2.0, warmup_s=600, relearn_s=300,
                         fresh_s=150, min_neighbours=2, co_k=1.5, co_hold_s=240, grow_k=0.5,
                         grow_s=1200, confirm_s=120)  # fmt: skip
    for seed in range(3):
        rng = np.random.default_rng(seed)
        group = [int(g) for g in rng.permutation([0] * 9 + [1] * 4 + [2] * 2 + [-1])]
        n = len(group)
        node = [int(v) for v in rng.integers(-1, 6, n)]  # several series a node, or none
        up = rng.random(n) < 0.8  # the others report one step in ten
        drift = np.where(rng.random(n) < 0.3, 0.05, 0.0)
        rows = []
        for step in range(400):
            here = np.flatnonzero(np.where(up, rng.random(n) < 0.9, rng.random(n) < 0.1))
            x = np.round(20 + rng.normal(0, 1, here.size) + drift[here] * step)  # ties
            x[rng.random(here.size) < 0.02] = -3.0  # below the range
            x[rng.random(here.size) < 0.01] = np.nan
            t = T0 + 60 * step + rng.integers(0, 50, here.size)
            rows += list(zip(here, t, x, rng.random(here.size) > 0.01, strict=True))
        batches, flags = [], []
        for lo in range(0, len(rows), 97):
            part = rows[lo : lo + 97]
            rng.shuffle(part)
            s, t, x, v = (np.array(c) for c in zip(*part, strict=True))
            batches.append(ReadingBatch(s.astype(np.int64), t.astype(np.int64), x, v))
            fl = np.where(x < 0, 8, np.where(rng.random(len(part)) < 0.02, 1, 0))
            flags.append(fl.astype(np.uint16))
        batches[10], batches[11] = batches[11], batches[10]  # a late batch
        flags[10], flags[11] = flags[11], flags[10]
        expected = _oracle(batches, flags, group, config, 0.3, 0.0, node)
        drift_rule = NeighbourDrift(config)
        for g, v in zip(group, node, strict=True):
            drift_rule.add_series(g, 0.3, 0.0, node=v)
        out = []
        for i, (b, fl) in enumerate(zip(batches, flags, strict=True)):
            if i == len(batches) // 2:
                restored = NeighbourDrift(config)
                restored.load_state_arrays(drift_rule.state_arrays())
                drift_rule = restored
            out.append(drift_rule.update(b, fl))
        got = np.concatenate([f for f, _ in out]), np.concatenate([s for _, s in out])
        assert got[0].any()  # the flags come and go
        assert got[0].tolist() == expected[0].tolist()
        assert got[1].tolist() == expected[1].tolist()


def test_groups_that_fall_silent_and_late_samples_match_the_rule_in_plain_python() -> None:
    """The kernel against the plain-Python rule where whole groups fall silent for several
    windows (the group jumps over them), report again in bursts just after a tick, and
    samples arrive one to three windows late, before and after a silence."""
    config = DriftConfig(step_s=120, lag_s=30, k=2.0, warmup_s=360, relearn_s=240,
                         fresh_s=120, min_neighbours=2, co_k=1.5, co_hold_s=240, grow_k=0.5,
                         grow_s=1200, confirm_s=120)  # fmt: skip
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        group = [int(g) for g in rng.permutation([0] * 5 + [1] * 4 + [2] * 4)]
        n = len(group)
        node = [int(v) for v in rng.integers(0, 5, n)]
        silent = rng.random((3, 300)) < 0.15  # group, 20-s step: whole groups fall silent
        silent = np.maximum.accumulate(silent, axis=1) & ~np.maximum.accumulate(
            rng.random((3, 300)) < 0.05, axis=1)  # fmt: skip
        rows = []
        for step in range(300):
            t0 = T0 + 20 * step
            for s in range(n):
                g = group[s]
                quiet = silent[g, step] or (g == 1 and (step // 25) % 3 == 2)
                # group 2: bursts in the first 20 s after a tick, in one window in four
                burst = (20 * step) % config.step_s == 0 and (step // 6) % 4 == seed % 4
                if quiet or (g == 2 and not burst) or rng.random() < 0.3:
                    continue
                t = t0 + int(rng.integers(0, 20))
                if rng.random() < 0.04:  # one to three windows late
                    t -= int(rng.integers(1, 4)) * config.step_s
                rows.append((s, t, float(np.round(20 + rng.normal(0, 1) + 0.02 * step)), True))
        batches, flags = [], []
        lo = 0
        while lo < len(rows):
            hi = lo + int(rng.integers(5, 60))
            s, t, x, v = (np.array(c) for c in zip(*rows[lo:hi], strict=True))
            batches.append(ReadingBatch(s.astype(np.int64), t.astype(np.int64), x, v))
            flags.append(np.zeros(len(s), np.uint16))
            lo = hi
        expected = _oracle(batches, flags, group, config, 0.3, 0.0, node)
        drift_rule = NeighbourDrift(config)
        for g, v in zip(group, node, strict=True):
            drift_rule.add_series(g, 0.3, 0.0, node=v)
        out = [drift_rule.update(b, fl) for b, fl in zip(batches, flags, strict=True)]
        assert drift_rule.late == expected[2] > 0
        got = np.concatenate([f for f, _ in out]), np.concatenate([s for _, s in out])
        assert got[0].tolist() == expected[0].tolist()
        assert got[1].tolist() == expected[1].tolist()


def test_a_burst_just_after_a_tick_of_a_silent_group_is_judged() -> None:
    """A silent group jumps to the tick of its first new sample; samples within ``lag_s``
    after that tick fill the next window, which must be judged, not jumped over, when the
    group is next heard of (as the plain-Python rule does)."""
    config = DriftConfig(step_s=120, lag_s=30, k=2.0, warmup_s=240, relearn_s=240,
                         fresh_s=120, min_neighbours=2, co_k=1.5, co_hold_s=240, grow_k=0.5,
                         grow_s=1200, confirm_s=120)  # fmt: skip
    rng = np.random.default_rng(3)
    rows = []

    def steady(t_from: int, t_to: int, offset: float) -> None:
        for t in range(t_from, t_to, 20):
            rows.extend((s, t + s, 20.0 + offset * (s == 0) + rng.normal(0, 1), True)
                        for s in range(4))  # fmt: skip

    steady(T0, T0 + 2400, 0.0)
    c = T0 + 2400 + 3 * 120  # three silent windows, then an invalid sample on the tick:
    rows.append((1, c, 20.0, False))  # the group jumps to it, its window has no data
    rows.extend((s, c + 5 + s, 20.0 + 8.0 * (s == 0), True) for s in range(4))  # the burst
    steady(c + 400, c + 2400, 8.0)  # silence past the next window, then series 0 is off
    s, t, x, v = (np.array(col) for col in zip(*rows, strict=True))
    cuts = range(0, len(rows), 7)
    batches = [ReadingBatch(s[i : i + 7].astype(np.int64), t[i : i + 7].astype(np.int64),
                            x[i : i + 7], v[i : i + 7]) for i in cuts]  # fmt: skip
    flags = [np.zeros(len(b), np.uint16) for b in batches]
    expected = _oracle(batches, flags, [0, 0, 0, 0], config, 0.3, 0.0, [0, 1, 2, 3])
    drift_rule = NeighbourDrift(config)
    for node in range(4):
        drift_rule.add_series(0, 0.3, 0.0, node=node)
    out = [drift_rule.update(b, fl) for b, fl in zip(batches, flags, strict=True)]
    got = np.concatenate([f for f, _ in out]), np.concatenate([s for _, s in out])
    assert got[1].tolist() == expected[1].tolist()
    assert got[0].tolist() == expected[0].tolist()


Q = 4  # quantities a node measures (NO2, SO2, CO, PM2.5 of a plume); group = quantity


def township(plume: bool, drift_per_step: float, steps: int = STEPS,
             seed: int = 0) -> tuple[list[ReadingBatch], NeighbourDrift]:  # fmt: skip
    """``N`` nodes measuring ``Q`` quantities each (series ``node * Q + q``, grouped by
    quantity), weather as in ``stream``. ``plume``: from ``START``, for 2 h, nodes 0-2 see
    every quantity rise (10-min ramp), weaker with distance; ``drift_per_step``: quantity 0
    of node 0 drifts."""
    rng = np.random.default_rng(seed)
    common = 70 + np.cumsum(rng.normal(0, 1.0, (steps, Q)), axis=0)
    own = np.zeros((N, Q))
    phi = np.exp(-1 / 120)
    add = np.array([60.0, 100.0, 40.0, 80.0])
    reach = np.array([1.0, 0.7, 0.4] + [0.0] * (N - 3))
    out = []
    for t in range(steps):
        own = phi * own + np.sqrt(1 - phi * phi) * rng.normal(0, 3, (N, Q))
        x = common[t] + own + rng.normal(0, 2, (N, Q))
        if plume and START <= t < START + 120:
            x += np.outer(reach, add) * min(1.0, (t - START + 1) / 10)
        x[0, 0] += max(0, t - START) * drift_per_step
        out.append(ReadingBatch(np.arange(N * Q), np.full(N * Q, T0 + 60 * t), x.ravel(),
                                np.ones(N * Q, bool)))  # fmt: skip
    drift = NeighbourDrift()
    for node in range(N):
        for q in range(Q):
            drift.add_series(q, 0.5, 0.0, node=f"yy-{node:04d}")
    return out, drift


def run_township(batches: list[ReadingBatch], drift: NeighbourDrift) -> np.ndarray:
    flags = [drift.update(b, np.zeros(len(b), np.uint16))[0] for b in batches]
    return np.stack(flags)  # (step, series)


def test_a_plume_over_some_nodes_raising_several_quantities_is_not_drift() -> None:
    for seed in range(3):
        flags = run_township(*township(plume=True, drift_per_step=0.0, seed=seed))
        assert not flags[START:].any()
    # without the node of each series, the same plume is drift on the nodes it reached
    batches, _ = township(plume=True, drift_per_step=0.0)
    blind = NeighbourDrift()
    for _ in range(N):
        for q in range(Q):
            blind.add_series(q, 0.5, 0.0)
    assert run_township(batches, blind)[START:, : 3 * Q].any()


def test_a_one_quantity_drift_on_a_node_is_still_drift() -> None:
    flags = run_township(*township(plume=False, drift_per_step=0.1, seed=3))
    drifting = flags[START:, 0] == DRIFT
    assert drifting.any()
    first = START + int(np.argmax(drifting))
    assert first < START + 300
    assert drifting[first - START :].all()  # it keeps growing: the flag holds
    assert not flags[:, 1:].any()  # not the node's other quantities, not its neighbours


def low_stream(steps: int = STEPS, seed: int = 0) -> list[ReadingBatch]:
    """SO2 near zero at ``N`` nodes (common walk around 5, own wander, noise): node 0 drifts
    down from ``START`` at 4 an hour and reads below zero within two hours; node 1 reads one
    wild value below the range (a glitch) at ``START``."""
    rng = np.random.default_rng(seed)
    common = 5 + np.clip(np.cumsum(rng.normal(0, 0.05, steps)), -2, 2)
    own = np.zeros(N)
    phi = np.exp(-1 / 120)
    out = []
    for t in range(steps):
        own = phi * own + np.sqrt(1 - phi * phi) * rng.normal(0, 1.5, N)
        x = np.maximum(common[t] + own + rng.normal(0, 1.0, N), 0.0)
        x[0] -= max(0, t - START) * 4 / 60
        if t == START:
            x[1] = -1000.0
        out.append(ReadingBatch(np.arange(N), np.full(N, T0 + 60 * t), x, np.ones(N, bool)))
    return out


def test_a_sensor_drifting_below_its_range_is_drift_and_a_glitch_below_it_is_not() -> None:
    det = AnomalyDetector()
    drift = NeighbourDrift()
    for _ in range(N):
        det.add_series("SO2")
        drift.add_series(0, det.config.sd_floor["SO2"], 0.0)
    flags = np.stack([drift.update(b, det.update(b).flags)[0] for b in low_stream()])
    assert (flags[START:, 0] == DRIFT).any()  # read as the bound it would be ~3 sd at most
    assert not flags[:, 1:].any()  # the glitch counts as the bound


def test_a_group_sort_by_counting_ranks_is_the_insertion_sort() -> None:
    """A tick sorts its group's values with each entry's stable rank: by counting for a
    small group, by insertion for a large one or one with a NaN. Both give the same sorted
    values and ranks, ties included (their order as read)."""
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 3, 7, 20, COUNT_SORT_MAX, COUNT_SORT_MAX + 1, 150):
        for ties in (False, True):
            vals = rng.normal(0, 1, n)
            if ties:
                vals = np.round(vals * 2)  # a few distinct values, many ties
            counted, inserted = vals.copy(), vals.copy()
            ranks = np.full((2, max(n, 1)), -1, np.int64)
            perm, spare = np.empty(max(n, 1), np.int64), np.empty(max(n, 1))
            _sort_ranked(counted, n, ranks, 0, perm, spare)
            _insertion_ranked(inserted, n, ranks, 1, perm)
            assert counted.tolist() == inserted.tolist() == sorted(vals.tolist())
            assert ranks[0, :n].tolist() == ranks[1, :n].tolist()
            assert sorted(ranks[0, :n].tolist()) == list(range(n))
    vals = np.array([3.0, np.nan, 1.0, 2.0])  # a NaN: sorted as the insertion sort does
    counted, inserted = vals.copy(), vals.copy()
    ranks = np.zeros((2, 4), np.int64)
    _sort_ranked(counted, 4, ranks, 0, np.empty(4, np.int64), np.empty(4))
    _insertion_ranked(inserted, 4, ranks, 1, np.empty(4, np.int64))
    assert np.array_equal(counted, inserted, equal_nan=True)
    assert ranks[0].tolist() == ranks[1].tolist()
