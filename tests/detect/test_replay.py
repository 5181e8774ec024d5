"""tianwang.replay on the real Beijing data against an independent plain-Python count.

The reference groups the CSV rows by local natural day itself (hour h = the hour ending at
h:00, so day D holds hours 1..23 of D and hour 0 of D+1), with the GB 3095-2012 grade II
limits written out here, not read from the data file.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tianwang.replay import EVENT_COLUMNS, STAT_COLUMNS, replay_csv

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT.parent / "shared" / "data" / "beijing" / "PRSA_Data_Dongsi_20130301-20170228.csv"
EXTRACT = ROOT / "examples/data/beijing/PRSA_Data_Dongsi_201409.csv"
DONGSI = FULL if FULL.exists() else EXTRACT

# GB 3095-2012 Table 1, grade II (standards README §1a); CO in mg/m3
LIMITS_2012_II = {"SO2": 150, "NO2": 80, "CO": 4, "PM10": 150, "PM2.5": 75, "O3": 160}


def reference_exceedance_days(path: Path) -> tuple[Counter[str], Counter[str]]:
    """(valid days, exceedance days) per pollutant, by plain grouping of the CSV rows."""
    hourly: dict[str, dict[datetime, float]] = {q: {} for q in LIMITS_2012_II}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            end = datetime(int(row["year"]), int(row["month"]), int(row["day"]), int(row["hour"]))
            for q in hourly:
                if row[q] != "NA":
                    hourly[q][end] = float(row[q]) / (1000 if q == "CO" else 1)
    valid: Counter[str] = Counter()
    exceeded: Counter[str] = Counter()
    for q, values in hourly.items():
        days: dict[object, list[float]] = {}
        for end, v in values.items():
            days.setdefault((end - timedelta(hours=1)).date(), []).append(v)
        for day, day_values in days.items():
            if q != "O3":
                if len(day_values) >= 20:  # Table 4
                    valid[q] += 1
                    exceeded[q] += sum(day_values) / len(day_values) > LIMITS_2012_II[q]
                continue
            midnight = datetime(day.year, day.month, day.day)
            windows = []
            for t in range(8, 25):  # T8..T24
                w = [
                    values[midnight + timedelta(hours=t - j)]
                    for j in range(8)
                    if midnight + timedelta(hours=t - j) in values
                ]
                if len(w) >= 6:  # Table 4
                    windows.append(sum(w) / len(w))
            if windows:
                valid[q] += 1
                exceeded[q] += max(windows) > LIMITS_2012_II[q]
    return valid, exceeded


def test_replay_dongsi_matches_independent_count(tmp_path):
    summary = replay_csv([DONGSI], tmp_path, pinned_edition="GB 3095-2012")
    valid, exceeded = reference_exceedance_days(DONGSI)
    assert dict(summary.exceedance_days) == {q: exceeded[q] for q in LIMITS_2012_II}
    assert dict(summary.valid_days) == {q: valid[q] for q in LIMITS_2012_II}
    assert sum(exceeded.values()) > 0  # the comparison is not vacuous
    with (tmp_path / "daily_statistics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == STAT_COLUMNS
    assert {r["edition"] for r in rows} == {"GB 3095-2012"}
    flagged = Counter(r["quantity"] for r in rows if r["exceeded"] == "true")
    assert flagged == +summary.exceedance_days


def test_replay_unpinned_uses_edition_in_force(tmp_path):
    summary = replay_csv([EXTRACT], tmp_path)  # 2014 data: GB 3095-2012 in force
    pinned = replay_csv([EXTRACT], tmp_path / "p", pinned_edition="GB 3095-2012")
    assert summary.exceedance_days == pinned.exceedance_days
    strict = replay_csv([EXTRACT], tmp_path / "s", pinned_edition="GB 3095-2026")
    assert strict.exceedance_days["PM2.5"] >= summary.exceedance_days["PM2.5"]


def test_replay_writes_aqi(tmp_path):
    summary = replay_csv([EXTRACT], tmp_path, pinned_edition="GB 3095-2012")
    with (tmp_path / "daily_aqi.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary.aqi_days == sum(r["aqi"] != "" for r in rows) > 0
    assert {r["edition"] for r in rows} == {"HJ 633-2012"}
    for r in rows:
        if r["aqi"] and float(r["aqi"]) > 50:
            assert r["primary"]
        iaqis = [float(kv.split("=")[1]) for kv in r["iaqi"].split(";") if kv]
        if r["aqi"]:
            assert math.isclose(float(r["aqi"]), max(iaqis))


def test_replay_rejects_unknown_pin_and_bad_files(tmp_path):
    from tianwang.standards import StandardError

    with pytest.raises(StandardError):
        replay_csv([EXTRACT], tmp_path, pinned_edition="GB 3095-1996")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a PRSA file"):
        replay_csv([bad], tmp_path)


# GB 3095-2012 Table 1, grade II, 1-hour limits (standards README §1a); CO in mg/m3
HOURLY_LIMITS_2012_II = {"SO2": 500, "NO2": 200, "CO": 10, "O3": 200}


def reference_exceeding_hours(path: Path) -> Counter[str]:
    """Hours above the 1-hour limit per pollutant, straight from the CSV rows."""
    above: Counter[str] = Counter()
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for q, limit in HOURLY_LIMITS_2012_II.items():
                if row[q] != "NA":
                    above[q] += float(row[q]) / (1000 if q == "CO" else 1) > limit
    return above


def test_replay_events_agree_with_the_data_and_the_statistics(tmp_path):
    summary = replay_csv([DONGSI], tmp_path, pinned_edition="GB 3095-2012")
    with (tmp_path / "events.csv").open(newline="") as f:
        events = list(csv.DictReader(f))
    assert tuple(events[0]) == EVENT_COLUMNS
    # every exceeding hour is an open or an update of a 1-hour episode
    hourly = Counter(e["quantity"] for e in events
                     if e["rule"] == "1h_mean" and e["kind"] in ("open", "update"))  # fmt: skip
    assert hourly == +reference_exceeding_hours(DONGSI)
    assert sum(hourly.values()) > 0
    # every exceedance day of the statistics is an open or update of a daily episode
    daily_rules = ("24h_mean", "8h_max")
    daily = Counter(e["quantity"] for e in events
                    if e["rule"] in daily_rules and e["kind"] in ("open", "update"))  # fmt: skip
    assert daily == +summary.exceedance_days
    assert summary.episodes["24h_mean"] == sum(
        e["kind"] == "open" and e["rule"] == "24h_mean" for e in events
    )
    # episodes close: at most one per series and rule is still open at the end
    for (q, rule), opened in Counter((e["quantity"], e["rule"]) for e in events
                                     if e["kind"] == "open").items():  # fmt: skip
        closed = sum(e["kind"] == "close" and (e["quantity"], e["rule"]) == (q, rule)
                     for e in events)  # fmt: skip
        assert opened - closed in (0, 1), (q, rule)
    for e in events:
        assert e["edition"] == "GB 3095-2012"
        assert e["kind"] == "close" or float(e["value"]) > float(e["limit"])
