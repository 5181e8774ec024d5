"""Numba kernel of the anomaly episode policy (wrapper: ``detect/_anomaly_events.py``).

State per (series, rule slot): ``is_open``, ``start_s``, ``last_s`` (last flagged sample),
``peak`` (value of the highest-scoring flagged sample), ``peak_score``, ``samples``; per
series ``n_open`` and ``due_s``, the earliest time an open episode may close (``last_s +
quiet_s`` of its open slots; ``NEVER`` if none), so that the many unflagged rows of a series
in an episode's quiet period skip the wide record. A rule's episode opens at a flagged
sample and closes at the first later sample of the series without that rule's flag once
``quiet_s`` have passed since ``last_s``. Minimum duration: an episode is *announced* (its
``open`` event, dated from its first flagged sample) only once it has lasted ``min_s`` of
its rule; one that closes sooner makes no event at all (``announced`` per slot).
Output: one row per event (sample row, series, slot, kind, and the episode's fields).
"""

from __future__ import annotations

import numpy as np
from numba import njit

JIT = {"cache": True, "nogil": True}
OPEN = 0
NEVER = np.iinfo(np.int64).max
CLOSE = 1
MAX_EVENTS_PER_ROW = 2 * 8  # every slot may close and open on one row: a generous bound

# fmt: off


@njit(inline="always", **JIT)
def _put(k, i, s, j, kind, start_s, peak, samples, out_row, out_series, out_slot, out_kind,
         out_start, out_peak, out_samples):
    """Event ``k``: row ``i`` of the batch, series ``s``, rule slot ``j``, and the episode's
    start, peak and samples as its record holds them now."""
    out_row[k] = i
    out_series[k] = s
    out_slot[k] = j
    out_kind[k] = kind
    out_start[k] = start_s[s, j]
    out_peak[k] = peak[s, j]
    out_samples[k] = samples[s, j]


@njit(**JIT)
def step_episodes(series, ts_s, value, flags, score, first, event_mask, nan_only, slot_bits,
                  quiet_s, min_s, is_open, start_s, last_s, peak, peak_score, samples,
                  announced, n_open, due_s,
                  out_row, out_series, out_slot, out_kind, out_start, out_peak, out_samples):
    """Step rows ``first``.. of a batch; stops early when the outputs could overflow.
    Returns (next row to step, events written). A row's rule bits are its ``flags`` within
    ``event_mask``, less the ``nan_only`` bits unless its value is NaN. Most rows have no
    bit and a series without an open episode: they cost two sequential loads and one load
    of ``n_open`` (one byte per series, so it stays in cache). A row whose only bit was a
    ``nan_only`` one (a reading its node flagged invalid) is such a row too, and skipped
    the same way: it changes nothing, and reading the wide records for it cost 10 % of the
    kernel's time on the benchmark's batches (1 % of them are invalid)."""
    k = 0
    cap = out_row.shape[0]
    n_slots = slot_bits.shape[0]
    i = first
    n = series.shape[0]
    while i < n:
        s = series[i]
        f = flags[i] & event_mask
        if f & nan_only and not np.isnan(value[i]):
            f &= ~nan_only  # a reading its node flagged (no NaN): an unflagged row here
        if f == 0 and (n_open[s] == 0 or ts_s[i] < due_s[s]):
            i += 1
            continue
        if cap - k < MAX_EVENTS_PER_ROW:
            break
        t = ts_s[i]
        for j in range(n_slots):
            flagged = (f & slot_bits[j]) != 0
            if is_open[s, j]:
                if flagged:
                    last_s[s, j] = t
                    samples[s, j] += 1
                    if score[i] > peak_score[s, j]:
                        peak[s, j] = value[i]
                        peak_score[s, j] = score[i]
                    if not announced[s, j] and t - start_s[s, j] >= min_s[j]:
                        announced[s, j] = True  # it has lasted long enough: say so now
                        _put(k, i, s, j, OPEN, start_s, peak, samples, out_row, out_series,
                             out_slot, out_kind, out_start, out_peak, out_samples)
                        k += 1
                elif t - last_s[s, j] >= quiet_s:
                    is_open[s, j] = False
                    n_open[s] -= 1
                    if not announced[s, j]:
                        continue  # too short to be an episode: no event
                    _put(k, i, s, j, CLOSE, start_s, peak, samples, out_row, out_series,
                         out_slot, out_kind, out_start, out_peak, out_samples)
                    k += 1
            elif flagged:
                is_open[s, j] = True
                n_open[s] += 1
                start_s[s, j] = t
                last_s[s, j] = t
                peak[s, j] = value[i]
                peak_score[s, j] = score[i]
                samples[s, j] = 1
                announced[s, j] = min_s[j] <= 0
                if not announced[s, j]:
                    continue
                _put(k, i, s, j, OPEN, start_s, peak, samples, out_row, out_series, out_slot,
                     out_kind, out_start, out_peak, out_samples)
                k += 1
        due = NEVER
        for j in range(n_slots):
            if is_open[s, j]:
                due = min(due, last_s[s, j] + quiet_s)
        due_s[s] = due
        i += 1
    return i, k


# fmt: on


def empty_outputs(n: int) -> tuple[np.ndarray, ...]:
    """Output columns for up to ``n`` events: row, series, slot, kind, start, peak, samples."""
    i64 = np.int64
    return (np.empty(n, i64), np.empty(n, i64), np.empty(n, i64), np.empty(n, np.int8),
            np.empty(n, i64), np.empty(n, np.float64), np.empty(n, i64))  # fmt: skip
