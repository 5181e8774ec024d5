"""Detection quality of the anomaly rules against firmware_sim's ground truth.

    python benchmarks/bench_detection_quality.py [--hours 24] [--faults 40] [--seed 7]
        [--set cusum_h=20 --set drift.k=4.5 ...] [--batch-s 60] [--ahead-s 240]
        [--drift-sd-per-h 0.5]

Runs ``SimulatedDriver`` directly (no broker, no network faults) for every node of the demo
county (examples/county.yaml: 64 air, 2 water, 2 noise nodes, 60-s sampling) over a
generated scenario: the default signal model, ``--faults`` sensor faults of each kind
(spike, stuck, out_of_range, dropout, drift; default magnitudes, drift ``rate_per_h`` = one
baseline sd per hour, or ``--drift-sd-per-h``) on random (node, quantity) series at random,
non-overlapping times, and pollution episodes of each kind (plume, construction_dust,
discharge). The readings (rounded to 3 decimals as the driver reports them; a NaN with flag
"D" is not valid) go through ``AnomalyDetector`` and ``NeighbourDrift`` at their default
settings (detect/data/anomaly.yaml, detect/data/drift.yaml; ``--set`` overrides them) in one
batch per simulated hour, its rows node by node (``NeighbourDrift`` visits a batch in time
order). Drift groups are township x quantity: 16 air nodes per quantity and township; the
water and noise nodes have one neighbour at most, so a drift injected on them is out of the
rule's reach and counts as a miss (``out_of_reach`` says how many such labels a kind has).

Scoring is event-level, per kind. Each kind is detected by one group of rule bits; a
*detection* is a maximal run of consecutive samples of one series that carry a bit of the group:

    dropout       MISSING                   out_of_range  IMPLAUSIBLE
    stuck         STUCK                     spike         SPIKE|RATE run of <= 2 samples
    drift         DRIFT (detect._drift.NeighbourDrift, groups: township x quantity); flagged
                  samples less than ``MERGE_S`` apart are one detection
    plume, construction_dust, discharge:
                  LEVEL_SHIFT, or a SPIKE|RATE run longer than 2 samples; flagged samples
                  less than ``MERGE_S`` apart are one detection

A detection *matches* a label when it is on the label's node and quantity and starts inside the
label's window ``[start, end)``. ``recall`` = labels of the kind with a matching detection of
its group / labels of the kind. A *false* detection of a group matches no label at all and
starts more than ``AFTER_S`` after the end of every label of its series; detections that match
only a label of another group's kind, or follow a label's end within ``AFTER_S`` (the signal
returning to normal), are counted in ``other_label_detections`` and left out. ``precision`` =
matches of the group's kinds / (those + the group's false detections), the same on each row of
a group: plume, construction_dust and discharge share one rule group, and a false detection
of it belongs to none of them, so charging each kind all of the group's false detections
(``kind_precision`` = matches of the kind / (those + the group's false detections)) would
penalise the kinds with fewer labels (discharge: 2 water nodes) for the others' signal. A
match is a (detection, label) pair. ``median_delay_s`` = median over detected labels of the
first matching detection's sample time minus the label's start. ``false_per_series_day``:
unmatched detections of the group per series and simulated day. ``strict_precision``: the
kind's matches / (those + false + ``other_label_detections``): a detection on a series during
(or just after) a label of another kind counts as false (e.g. drift raised by a plume).
``missed_but_implausible``: labels of the kind its group missed on whose series the
``IMPLAUSIBLE`` rule fired during the label (a sensor drifting below its range: still a
miss here, but an incident for the officer).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detect import ReadingBatch
from detect._anomaly import AnomalyConfig, AnomalyDetector, AnomalyRule
from detect._drift import DRIFT, DriftConfig, NeighbourDrift
from firmware_sim import SimulatedDriver
from firmware_sim._scenario import parse_scenario
from tianwang.quantities import quantity_table
from tianwang.registry import Registry, load_registry

ROOT = Path(__file__).resolve().parents[1]
COUNTY = ROOT / "examples" / "county.yaml"
START = "2026-06-01T00:00:00+08:00"
FAULT_KINDS = ("spike", "stuck", "out_of_range", "dropout", "drift")
EPISODE_KINDS = ("plume", "construction_dust", "discharge")
EPISODE_ADD = {
    "plume": {"NO2": 250, "SO2": 400, "CO": 3, "PM2.5": 100},
    "construction_dust": {"PM10": 250, "PM2.5": 60, "LAeq": 15},
    "discharge": {"COD": 80, "NH3-N": 5, "DO": -3},
}
MAX_SPIKE_RUN = 2
MERGE_S = 1800
AFTER_S = 600
_OUTLIER = AnomalyRule.SPIKE | AnomalyRule.RATE
_SHIFT_KINDS = EPISODE_KINDS


@dataclass
class Detection:
    series: tuple[str, str]
    start_s: float  # elapsed seconds of its first sample
    group: str


def _free(busy: list[tuple[float, float]], lo: float, hi: float) -> bool:
    return all(hi + 60 <= b or lo >= e + 60 for b, e in busy)


def build_scenario(registry: Registry, hours: float, faults: int, seed: int,
                   drift_sd_per_h: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """A scenario dict: ``faults`` sensor faults of each kind and episodes of each kind;
    drifts at ``drift_sd_per_h`` baseline sd an hour."""
    rng = np.random.default_rng(seed)
    run_min = hours * 60
    series = [(n.id, q) for n in registry.nodes.values() for q in n.quantities]
    busy: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    sds = _baseline_sd()
    entries = []
    for kind in FAULT_KINDS:
        made = 0
        while made < faults:
            node, q = series[rng.integers(len(series))]
            length = {"spike": 1, "stuck": 120, "out_of_range": 20, "dropout": 30, "drift": 480}
            dur = float(rng.uniform(0.5, 1.5) * length[kind])
            start = float(np.floor(rng.uniform(90, run_min - dur - 30)))
            if not _free(busy[(node, q)], start, start + dur):
                continue
            busy[(node, q)].append((start, start + dur))
            entry: dict[str, Any] = {"id": f"{kind}-{made}", "kind": kind, "nodes": [node],
                                     "quantities": [q], "start_min": start}  # fmt: skip
            if kind != "spike":
                entry["duration_min"] = dur
            if kind == "drift":
                entry["rate_per_h"] = float(rng.choice([-1, 1]) * sds[q] * drift_sd_per_h)
            entries.append(entry)
            made += 1
    episodes = []
    villages = sorted(registry.villages)
    for kind in EPISODE_KINDS:
        for j in range(6):
            medium_nodes = [
                n for n in registry.nodes.values()
                if set(n.quantities) & set(EPISODE_ADD[kind])
            ]  # fmt: skip
            node = medium_nodes[rng.integers(len(medium_nodes))]
            dur = float(rng.uniform(60, 180))
            start = float(np.floor(rng.uniform(90, run_min - dur - 30)))
            qs = [q for q in EPISODE_ADD[kind] if q in node.quantities]
            if not all(_free(busy[(node.id, q)], start, start + dur) for q in qs):
                continue
            for q in qs:
                busy[(node.id, q)].append((start, start + dur))
            add = {q: v for q, v in EPISODE_ADD[kind].items() if q in node.quantities}
            episodes.append({"id": f"{kind}-{j}", "kind": kind, "nodes": [node.id],
                             "start_min": start, "duration_min": dur, "ramp_min": 10,
                             "add": add})  # fmt: skip
    del villages
    return {"name": "detection-quality", "start": START, "duration_h": hours, "seed": seed,
            "episodes": episodes, "sensor_faults": entries}  # fmt: skip


def _baseline_sd() -> dict[str, float]:
    from firmware_sim._baseline import parse_baselines
    from firmware_sim._parse import Fields

    base = parse_baselines(Fields({}, "", ("baseline",)))
    return {q: math.hypot(b.noise, b.weather_sd) for q, b in base.items()}


def _read(driver: SimulatedDriver, t: float) -> list[Any]:
    coro = driver.read(t)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("read() awaited")


def simulate(
    registry: Registry,
    scenario_raw: dict[str, Any],
    hours: float,
    config: AnomalyConfig | None = None,
    drift_config: DriftConfig | None = None,
    ahead_s: int = 0,
    batch_s: int = 3600,
) -> dict[str, Any]:
    """Drive every node; score the readings hour by hour. Returns flags per series.
    ``ahead_s``: every tenth node's clock runs this far ahead (its samples are stamped so,
    with the values of the true time). ``batch_s``: the detector is fed a batch per this
    much true time, in true-time order (60: about what live ingest does)."""
    scenario = parse_scenario(scenario_raw, registry, ROOT, "bench")
    start = scenario.start_time(0.0)
    detector = AnomalyDetector(config)
    drift = NeighbourDrift(drift_config)
    ids: dict[tuple[str, str], int] = {}
    groups: dict[tuple[str, str], int] = {}
    drivers = []
    for i, node in enumerate(registry.nodes.values()):
        phase = float(i * 7 % 60)
        skew = ahead_s if i % 10 == 0 else 0
        drivers.append((node, SimulatedDriver(node, scenario, start), phase, skew))
        for q in node.quantities:
            sid = ids[(node.id, q)] = detector.add_series(q)
            group = groups.setdefault((node.place.township, q), len(groups))
            floor = detector.config.sd_floor.get(q, detector.config.default_sd_floor)
            low = quantity_table().quantities[q].min
            if drift.add_series(group, floor, low, node=node.id) != sid:
                raise AssertionError("series indices differ")
    names = {sid: key for key, sid in ids.items()}
    group_of = {key: groups[(registry.nodes[key[0]].place.township, key[1])] for key in ids}
    size = Counter(group_of.values())
    # drift out of the rule's reach: too few neighbours
    lonely = {key for key, g in group_of.items() if size[g] <= drift.config.min_neighbours}
    flags: dict[int, list[int]] = defaultdict(list)
    times: dict[int, list[float]] = defaultdict(list)
    per_hour = 3600 // 60
    for hour in range(int(hours)):
        cols: tuple[list[int], list[int], list[float], list[bool]] = ([], [], [], [])
        elapsed: list[float] = []
        for node, driver, phase, skew in drivers:
            for k in range(per_hour):
                e = (hour * per_hour + k) * node.sampling_s + phase
                for v in _read(driver, start + e):
                    cols[0].append(ids[(node.id, v.quantity)])
                    cols[1].append(int(start + e) + skew)
                    cols[2].append(v.value)
                    cols[3].append(v.flag != "D")
                    elapsed.append(e)
        whole = ReadingBatch.from_lists(*cols)
        at = np.asarray(elapsed)
        order = np.argsort(at, kind="stable")  # arrival: in true time, whatever the stamp
        chunk = np.floor(at[order] / batch_s)
        for rows in np.split(order, np.flatnonzero(np.diff(chunk)) + 1):
            batch = ReadingBatch(*(c[rows] for c in (whole.series, whole.ts_s, whole.value,
                                                      whole.valid)))  # fmt: skip
            out = detector.update(batch)
            drifted, _ = drift.update(batch, out.flags)
            combined = out.flags | drifted
            for sid, e, f in zip(batch.series.tolist(), at[rows].tolist(), combined.tolist(),
                                 strict=True):  # fmt: skip
                flags[sid].append(f)
                times[sid].append(e)
    print(json.dumps({"bench": "detection_quality", "drift_late_samples": drift.late}),
          file=sys.stderr)  # fmt: skip
    return {"labels": scenario.ground_truth(start), "flags": flags, "times": times,
            "names": names, "lonely": lonely}  # fmt: skip


def _runs(mask: list[bool]) -> list[tuple[int, int]]:
    out, begin = [], None
    for i, m in enumerate([*mask, False]):
        if m and begin is None:
            begin = i
        elif not m and begin is not None:
            out.append((begin, i))
            begin = None
    return out


def detections(flags: list[int], times: list[float], key: tuple[str, str]) -> list[Detection]:
    """Detections of every group on one series (see the module docstring)."""
    out = []
    for group, bit in (("dropout", AnomalyRule.MISSING), ("out_of_range", AnomalyRule.IMPLAUSIBLE),
                       ("stuck", AnomalyRule.STUCK)):  # fmt: skip
        out += [Detection(key, times[b], group) for b, _ in _runs([bool(f & bit) for f in flags])]
    shift_at = [times[i] for i, f in enumerate(flags) if f & AnomalyRule.LEVEL_SHIFT]
    for b, e in _runs([bool(f & _OUTLIER) for f in flags]):
        if e - b <= MAX_SPIKE_RUN:
            out.append(Detection(key, times[b], "spike"))
        else:
            shift_at.append(times[b])
    out += _merged(key, sorted(shift_at), "shift")
    out += _merged(key, [times[i] for i, f in enumerate(flags) if f & DRIFT], "drift")
    return out


def _merged(key: tuple[str, str], at: list[float], group: str) -> list[Detection]:
    out, last = [], -math.inf
    for t in at:
        if t - last >= MERGE_S:
            out.append(Detection(key, t, group))
        last = t
    return out


def score(result: dict[str, Any], hours: float) -> list[dict[str, Any]]:
    labels = [r for r in result["labels"] if r["category"] in ("sensor_fault", "episode")]
    by_series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in labels:
        by_series[(r["node"], r["quantity"])].append(r)
    dets = []
    for sid, key in result["names"].items():
        dets += detections(result["flags"][sid], result["times"][sid], key)
    group_of = {k: ("shift" if k in _SHIFT_KINDS else k) for k in (*FAULT_KINDS, *EPISODE_KINDS)}
    first: dict[str, float] = {}
    implausible_in: set[str] = set()  # labels with an out_of_range detection inside them
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    other: dict[str, int] = defaultdict(int)
    for d in dets:
        hits = [r for r in by_series.get(d.series, [])
                if r["start_min"] * 60 <= d.start_s < r["end_min"] * 60]  # fmt: skip
        mine = [r for r in hits if group_of[r["kind"]] == d.group]
        if d.group == "out_of_range":
            implausible_in.update(r["id"] for r in hits)
        for r in mine:
            tp[r["kind"]] += 1
            first[r["id"]] = min(first.get(r["id"], math.inf), d.start_s - r["start_min"] * 60)
        after = any(r["end_min"] * 60 <= d.start_s < r["end_min"] * 60 + AFTER_S
                    for r in by_series.get(d.series, []))  # fmt: skip
        if not hits and not after:
            fp[d.group] += 1
        elif not mine:
            other[d.group] += 1
    n_series = len(result["names"])
    lonely = result["lonely"]
    rows = []
    tp_group: dict[str, int] = defaultdict(int)
    for kind, n in tp.items():
        tp_group[group_of[kind]] += n
    for kind in (*FAULT_KINDS, *EPISODE_KINDS):
        mine = [r for r in labels if r["kind"] == kind]
        found = [first[r["id"]] for r in mine if r["id"] in first]
        group = group_of[kind]
        n_tp = tp_group[group]
        rows.append({
            "bench": "detection_quality", "kind": kind, "labels": len(mine),
            "detected": len(found),
            "precision": round(n_tp / (n_tp + fp[group]), 3) if n_tp else 0.0,
            "kind_precision": round(tp[kind] / (tp[kind] + fp[group]), 3) if tp[kind] else 0.0,
            "recall": round(len(found) / len(mine), 3) if mine else None,
            "median_delay_s": round(statistics.median(found), 1) if found else None,
            "rule_group": group, "false_detections": fp[group],
            "out_of_reach": sum(r["kind"] == "drift" and (r["node"], r["quantity"]) in lonely
                                for r in mine),
            "other_label_detections": other[group],
            "missed_but_implausible": sum(r["id"] not in first and r["id"] in implausible_in
                                          for r in mine),
            "strict_precision": round(tp[kind] / (tp[kind] + fp[group] + other[group]), 3)
            if tp[kind] else 0.0,
            "false_per_series_day": round(fp[group] / n_series / (hours / 24), 4),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--faults", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--ahead-s",
        type=int,
        default=0,
        help="every tenth node's clock runs this many seconds ahead",
    )
    parser.add_argument(
        "--drift-sd-per-h",
        type=float,
        default=1.0,
        help="how fast the injected drifts go, in baseline sd an hour",
    )
    parser.add_argument(
        "--batch-s",
        type=int,
        default=3600,
        help="feed the detector a batch per this many seconds (<= 3600)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a scalar AnomalyConfig setting, or drift.NAME a DriftConfig one "
        "(repeatable)",
    )
    args = parser.parse_args()
    config = AnomalyConfig.default()
    drift_config = DriftConfig.default()
    for item in args.set:
        name, _, value = item.partition("=")
        if name.startswith("drift."):
            name = name.removeprefix("drift.")
            kind = type(getattr(drift_config, name))
            drift_config = dataclasses.replace(drift_config, **{name: kind(float(value))})
        else:
            kind = type(getattr(config, name))
            config = dataclasses.replace(config, **{name: kind(float(value))})
    registry = load_registry(COUNTY)
    raw = build_scenario(registry, args.hours, args.faults, args.seed, args.drift_sd_per_h)
    result = simulate(registry, raw, args.hours, config, drift_config, args.ahead_s, args.batch_s)
    for row in score(result, args.hours):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
