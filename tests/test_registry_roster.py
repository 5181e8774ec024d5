"""Officers, duty rosters and escalation in the grid file: who is on duty in a cell when,
who is next up, and clear errors for a roster that leaves a cell unattended."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from detect import ANOMALY_RULE_NAMES
from tianwang.escalation import Escalation, default_escalation, severity, severity_rules
from tianwang.registry import Registry, RegistryError, load_registry, parse_registry

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")

DAY_NIGHT = [  # a by day on weekdays and Sundays, b at night and on Saturdays
    {"days": "mon-fri", "from": "08:00", "to": "20:00", "officer": "a"},
    {"days": "mon-fri", "from": "20:00", "to": "08:00", "officer": "b"},
    {"days": "sat", "from": "08:00", "to": "08:00", "officer": "b"},
    {"days": "sun", "from": "08:00", "to": "08:00", "officer": "a"},
]
COUNTY_DUTY = [  # 24-hour duty handed over at 09:00 local
    {"days": ["mon", "wed", "fri", "sun"], "from": "09:00", "to": "09:00", "officer": "k1"},
    {"days": ["tue", "thu", "sat"], "from": "09:00", "to": "09:00", "officer": "k2"},
]


def _officers(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"officer {i}", "phone": "+86 1"} for i in ids]


def _grid(village_shifts: list[Any] | None = DAY_NIGHT, **changes: Any) -> dict[str, Any]:
    """County c1 (k1, k2), township t1 (chief), village v1 (a and b) with node n1."""
    node = {"id": "n1", "lat": 36.1, "lon": 118.1, "quantities": ["PM2.5"]}
    village = {"id": "v1", "name": "一村", "grid_officer": ["a", "b"], "nodes": [node]}
    rosters = [{"cell": "c1", "timezone": "Asia/Urumqi", "shifts": COUNTY_DUTY}]
    if village_shifts is not None:
        rosters.append({"cell": "c1/t1/v1", "shifts": village_shifts})
    raw = {
        "county": {"id": "c1", "name": "县", "county_officer": ["k1", "k2"]},
        "officers": _officers("a", "b", "chief", "k1", "k2"),
        "townships": [{"id": "t1", "name": "镇", "grid_chief": "chief", "villages": [village]}],
        "rosters": rosters,
    }
    raw.update(changes)
    return raw


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry(raw)
    return str(info.value)


@pytest.fixture(scope="module")
def grid() -> Registry:
    return parse_registry(_grid())


def _at(day: int, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> datetime:
    """Local time on a day of the week of 2024-06-03 (a Monday; day 0 is Monday)."""
    return datetime(2024, 6, 3 + day, hour, minute, tzinfo=zone)


# --- on_duty -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "hour", "minute", "officer"),
    [
        (0, 8, 0, "a"),  # Monday's day shift starts
        (0, 19, 59, "a"),
        (0, 20, 0, "b"),  # the night shift
        (1, 3, 0, "b"),  # Monday's night shift, after midnight
        (1, 7, 59, "b"),
        (1, 8, 0, "a"),
        (4, 23, 30, "b"),  # Friday night runs into Saturday
        (5, 7, 0, "b"),
        (5, 12, 0, "b"),  # Saturday, 24 hours from 08:00
        (6, 7, 59, "b"),
        (6, 8, 0, "a"),  # Sunday 08:00 to Monday 08:00
        (6, 23, 59, "a"),
        (7, 7, 0, "a"),  # the next Monday, across the end of the week
    ],
)
def test_on_duty_in_a_village(grid: Registry, day: int, hour: int, minute: int,
                              officer: str) -> None:  # fmt: skip
    village = grid.villages[("t1", "v1")]
    assert grid.on_duty(village, _at(day, hour, minute)).id == officer


def test_on_duty_takes_any_zone_and_any_cell_reference(grid: Registry) -> None:
    local = _at(0, 20, 30)  # Monday 20:30 in Shanghai: b
    for when in (local, local.astimezone(UTC), local.astimezone(URUMQI)):
        assert grid.on_duty(("t1", "v1"), when).id == "b"
        assert grid.on_duty(grid.cells[("t1", "v1")], when).id == "b"
        assert grid.on_duty(grid.villages[("t1", "v1")], when).name == "officer b"


def test_county_roster_in_its_own_zone(grid: Registry) -> None:
    # the county's roster is in Asia/Urumqi (UTC+6), two hours behind Shanghai: duty
    # changes at 09:00 Urumqi = 11:00 Shanghai
    assert grid.on_duty((), _at(1, 10, 59)).id == "k1"  # Tuesday, Monday's shift still
    assert grid.on_duty((), _at(1, 11, 0)).id == "k2"
    assert grid.on_duty((), _at(1, 9, 0, URUMQI)).id == "k2"
    assert grid.on_duty((), _at(0, 8, 59, URUMQI)).id == "k1"  # Sunday's shift until Monday 09:00


def test_one_holder_without_roster_is_always_on_duty(grid: Registry) -> None:
    start = _at(0, 0)
    for hours in range(0, 24 * 7, 5):
        assert grid.on_duty(("t1",), start + timedelta(hours=hours)).id == "chief"
    assert grid.hand_off_times(("t1",), start, start + timedelta(days=14)) == []


def test_zone_without_daylight_saving_keeps_the_same_local_shifts() -> None:
    # China has no daylight saving: the same local times give the same officer all year,
    # and the UTC time of a hand-off does not move
    registry = parse_registry(_grid())
    for month in range(1, 13):
        monday = datetime(2025, month, 1, tzinfo=SHANGHAI)
        monday += timedelta(days=-monday.weekday() + 7)
        assert registry.on_duty(("t1", "v1"), monday.replace(hour=7, minute=59)).id == "a"
        assert registry.on_duty(("t1", "v1"), monday.replace(hour=20)).id == "b"
        hand_offs = registry.hand_off_times(("t1", "v1"), monday, monday + timedelta(days=1))
        assert [t.astimezone(UTC).hour for t, _ in hand_offs] == [12]


def test_roster_in_a_zone_with_daylight_saving_follows_wall_time() -> None:
    raw = _grid()
    raw["rosters"][1]["timezone"] = "Europe/Berlin"
    registry = parse_registry(raw)
    berlin = ZoneInfo("Europe/Berlin")
    # the Sunday of the change to summer time and the Monday after: 08:00 is 08:00 local
    assert registry.on_duty(("t1", "v1"), datetime(2024, 4, 1, 7, 59, tzinfo=berlin)).id == "a"
    assert registry.on_duty(("t1", "v1"), datetime(2024, 4, 1, 20, 0, tzinfo=berlin)).id == "b"
    hand_offs = registry.hand_off_times(("t1", "v1"), datetime(2024, 3, 30, tzinfo=berlin),
                                        datetime(2024, 4, 2, tzinfo=berlin))  # fmt: skip
    # Saturday 08:00 is no hand-off (b stays on); Sunday 31 March is the day of the change
    assert [(t.isoformat(), o.id) for t, o in hand_offs] == [
        ("2024-03-31T08:00:00+02:00", "a"),
        ("2024-04-01T20:00:00+02:00", "b"),
    ]


def test_naive_datetime_is_refused(grid: Registry) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        grid.on_duty(("t1", "v1"), datetime(2024, 6, 3, 12))


def test_hand_off_times_over_a_week(grid: Registry) -> None:
    start = _at(0, 0)
    hand_offs = grid.hand_off_times(("t1", "v1"), start, start + timedelta(days=7))
    assert [(t.strftime("%a %H:%M"), o.id) for t, o in hand_offs] == [
        ("Mon 20:00", "b"), ("Tue 08:00", "a"), ("Tue 20:00", "b"), ("Wed 08:00", "a"),
        ("Wed 20:00", "b"), ("Thu 08:00", "a"), ("Thu 20:00", "b"), ("Fri 08:00", "a"),
        ("Fri 20:00", "b"), ("Sun 08:00", "a"),
    ]  # fmt: skip
    # Saturday 08:00 and Monday 08:00 are no hand-off: the same officer stays on
    assert all(t.tzinfo is not None for t, _ in hand_offs)


def test_hand_off_times_window_is_half_open(grid: Registry) -> None:
    hand_offs = grid.hand_off_times(("t1", "v1"), _at(1, 8), _at(1, 20))
    assert [(t, o.id) for t, o in hand_offs] == [(_at(1, 8), "a")]
    assert grid.hand_off_times(("t1", "v1"), _at(1, 8, 1), _at(1, 20)) == []


def test_nobody_holds_the_role_of_a_township() -> None:
    raw = _grid()
    del raw["townships"][0]["grid_chief"]
    registry = parse_registry(raw)
    assert registry.cells[("t1",)].rota is None
    with pytest.raises(LookupError, match="c1/t1: nobody holds grid_chief"):
        registry.on_duty(("t1",), _at(0, 12))
    path = registry.escalation_path(registry.nodes["n1"], "critical")
    assert [c.path for c in path] == ["c1/t1/v1", "c1"]


def test_cells_and_their_roles(grid: Registry) -> None:
    assert {c.path: (c.level, c.role, c.holders) for c in grid.cells.values()} == {
        "c1": ("county", "county_officer", ("k1", "k2")),
        "c1/t1": ("township", "grid_chief", ("chief",)),
        "c1/t1/v1": ("village", "grid_officer", ("a", "b")),
    }
    assert grid.villages[("t1", "v1")].officer.id == "a"  # the first grid_officer
    assert grid.cells[("t1", "v1")].name == "一村"


# --- escalation and severity -----------------------------------------------------------------


def test_escalation_path_per_severity(grid: Registry) -> None:
    node = grid.nodes["n1"]
    assert [c.level for c in grid.escalation_path(node, "critical")] == [
        "village", "township", "county"
    ]  # fmt: skip
    assert [c.level for c in grid.escalation_path(node, "minor")] == ["village", "township"]
    assert grid.escalation == default_escalation()


def test_escalation_defaults_and_override() -> None:
    defaults = default_escalation()
    assert defaults == {
        "critical": Escalation(15, "county"),
        "major": Escalation(60, "county"),
        "minor": Escalation(240, "township"),
    }
    registry = parse_registry(_grid(escalation={"critical": {"ack_within_min": 10},
                                                "minor": {"up_to": "village"}}))  # fmt: skip
    assert registry.escalation["critical"] == Escalation(10, "county")
    assert registry.escalation["major"] == defaults["major"]
    assert registry.escalation["minor"] == Escalation(240, "village")
    assert [c.level for c in registry.escalation_path(registry.nodes["n1"], "minor")] == ["village"]


@pytest.mark.parametrize(
    ("escalation", "message"),
    [
        ({"urgent": {"ack_within_min": 5}}, "escalation.urgent: unknown severity"),
        ({"major": {"ack_within_min": 0}}, "escalation.major.ack_within_min: must be a positive"),
        ({"major": {"ack_within_min": "1h"}}, "escalation.major.ack_within_min: must be a "),
        ({"major": {"up_to": "province"}}, "escalation.major.up_to: must be one of village, "),
        ({"major": {"ack_within": 5}}, "escalation.major.ack_within: unknown key"),
        ({"major": 30}, "escalation.major: must be a mapping"),
        ([15, 60], "escalation: must be a mapping"),
    ],
)
def test_bad_escalation(escalation: Any, message: str) -> None:
    assert _error(_grid(escalation=escalation)).startswith(message)


@pytest.mark.parametrize(
    ("rule", "quantity", "value", "limit", "expected"),
    [
        ("1h_mean", "PM2.5", 80, 75, "major"),
        ("24h_mean", "PM2.5", 150, 75, "critical"),  # twice the limit: IAQI 200
        ("8h_max", "O3", 200, 160, "major"),
        ("1h_mean", "DO", 1.4, 3, "critical"),  # a floor: 3 / 1.4 > 2
        ("1h_mean", "DO", 2.5, 3, "major"),
        ("1h_mean", "LAeq", 70, 60, "critical"),  # noise in dB: 10 dB over
        ("1h_mean", "LAeq", 65, 60, "major"),
        ("24h_mean_projected", "PM2.5", 300, 75, "minor"),  # a warning is never critical
        ("spike", "PM2.5", 900, None, "minor"),
        ("node_offline", None, None, None, "minor"),
        ("a_rule_from_next_year", None, None, None, "minor"),  # the data file's default
    ],
)
def test_severity_of_rules(rule: str, quantity: str | None, value: float | None,
                           limit: float | None, expected: str) -> None:  # fmt: skip
    assert severity(rule, quantity, value, limit) == expected


def test_every_detector_and_ingest_rule_has_a_severity() -> None:
    rules = severity_rules().rules
    regulatory = {"1h_mean", "24h_mean", "8h_max", "24h_mean_projected"}
    assert regulatory | ANOMALY_RULE_NAMES | {"node_offline"} <= set(rules)
    assert set(rules.values()) <= set(severity_rules().severities)


# --- validation ------------------------------------------------------------------------------


def _shifts(*changes: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(s) for s in DAY_NIGHT] + list(changes)


@pytest.mark.parametrize(
    ("shifts", "message"),
    [
        (DAY_NIGHT[:3], "rosters[1]: nobody on duty from sun 08:00 to mon 08:00 (Asia/Shanghai)"),
        ([{**DAY_NIGHT[0], "to": "12:00"}, *DAY_NIGHT[1:3]],
         "rosters[1]: nobody on duty from mon 12:00 to mon 20:00, tue 12:00 to tue 20:00, wed "),
        ([DAY_NIGHT[0], *DAY_NIGHT[2:]], "rosters[1]: nobody on duty from mon 20:00 to tue 08:00"),
        (_shifts({"days": "wed", "from": "12:00", "to": "13:00", "officer": "b"}),
         "rosters[1].shifts[4]: overlaps shifts[0] at wed 12:00"),
        ([*DAY_NIGHT[:3], {"days": "sun", "from": "07:00", "to": "08:00", "officer": "a"}],
         "rosters[1].shifts[3]: overlaps shifts[2] at sun 07:00"),
        ([{**DAY_NIGHT[0], "from": "8:00"}, *DAY_NIGHT[1:]],
         'rosters[1].shifts[0].from: must be a time "HH:MM" from 00:00 to 23:59'),
        ([{**DAY_NIGHT[0], "to": "25:00"}, *DAY_NIGHT[1:]],
         'rosters[1].shifts[0].to: must be a time "HH:MM" from 00:00 to 24:00'),
        ([{**DAY_NIGHT[0], "from": "24:00"}, *DAY_NIGHT[1:]], "rosters[1].shifts[0].from: must"),
        ([{**DAY_NIGHT[0], "from": 480}, *DAY_NIGHT[1:]],
         'rosters[1].shifts[0].from: write the time as a quoted "HH:MM"'),
        ([{**DAY_NIGHT[0], "days": "weekdays"}, *DAY_NIGHT[1:]],
         "rosters[1].shifts[0].days: unknown day 'weekdays'"),
        ([{**DAY_NIGHT[0], "days": ["mon", "mon"]}, *DAY_NIGHT[1:]],
         "rosters[1].shifts[0].days: a day is listed twice"),
        ([{**DAY_NIGHT[0], "officer": "chief"}, *DAY_NIGHT[1:]],
         "rosters[1].shifts[0].officer: 'chief' is not a grid_officer of this cell"),
        ([{**DAY_NIGHT[0], "officer": "nobody"}, *DAY_NIGHT[1:]],
         "rosters[1].shifts[0].officer: 'nobody' is not a grid_officer"),
        ([{k: v for k, v in DAY_NIGHT[0].items() if k != "to"}, *DAY_NIGHT[1:]],
         "rosters[1].shifts[0].to: missing"),
        ([], "rosters[1].shifts: missing"),
    ],
)  # fmt: skip
def test_bad_roster(shifts: list[Any], message: str) -> None:
    assert _error(_grid(shifts)).startswith(message)


def test_unquoted_time_in_yaml_is_explained(tmp_path: Path) -> None:
    raw = _grid()
    text = yaml.safe_dump(raw, allow_unicode=True).replace("'20:00'", "20:00")
    path = tmp_path / "grid.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(RegistryError, match=r"got the number 1200 \(YAML reads an unquoted"):
        load_registry(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["rosters"].append({"cell": "c1/t9", "shifts": DAY_NIGHT}),
         "rosters[2].cell: unknown cell 'c1/t9'"),
        (lambda r: r["rosters"].append({"cell": "t1/v1", "shifts": DAY_NIGHT}),
         "rosters[2].cell: unknown cell 't1/v1'; a cell is county, county/township or"),
        (lambda r: r["rosters"].append({"cell": "c1/t1/v1", "shifts": DAY_NIGHT}),
         "rosters[2].cell: 'c1/t1/v1' already has rosters[1]"),
        (lambda r: r["rosters"][1].pop("cell"), "rosters[1].cell: missing"),
        (lambda r: r["rosters"][0].update(timezone="Asia/Beijing"),
         "rosters[0].timezone: unknown time zone 'Asia/Beijing'"),
        (lambda r: r["county"].update(timezone="CST+8"),
         "county.timezone: unknown time zone 'CST+8'"),
        (lambda r: r["townships"][0]["villages"][0].update(grid_officer=["a", "zhang"]),
         "townships[0].villages[0].grid_officer: unknown officer 'zhang'"),
        (lambda r: r["townships"][0].update(grid_chief="li"),
         "townships[0].grid_chief: unknown officer 'li'"),
        (lambda r: r["county"].update(county_officer=["k1", "k3"]),
         "county.county_officer: unknown officer 'k3'"),
        (lambda r: r["townships"][0]["villages"][0].update(grid_officer=["a", "a"]),
         "townships[0].villages[0].grid_officer: an officer is listed twice"),
        (lambda r: r["officers"].append({"id": "a", "name": "again"}),
         "officers[5].id: duplicate officer 'a'"),
        (lambda r: r["officers"].append({"id": "x"}), "officers[5].name: missing"),
        (lambda r: r["officers"].append({"id": "x y", "name": "X"}), "officers[5].id: 'x y' must"),
        (lambda r: r["rosters"].pop(1),
         "townships[0].villages[0].grid_officer: 2 officers and no roster for 'c1/t1/v1' says "
         "who is on duty when"),
        (lambda r: r["townships"][0]["villages"][0].update(officer={"id": "o", "name": "O"}),
         "townships[0].villages[0]: has both officer and grid_officer"),
    ],
)  # fmt: skip
def test_bad_officers_and_cells(change: Any, message: str) -> None:
    raw = _grid()
    change(raw)
    assert _error(raw).startswith(message)


def test_duplicate_node_id_is_named() -> None:
    raw = _grid()
    village = raw["townships"][0]["villages"][0]
    raw["townships"][0]["villages"].append({**village, "id": "v2", "grid_officer": "a"})
    assert _error(raw) == "townships[0].villages[1].nodes[0].id: duplicate node 'n1'"


# --- backward compatibility ------------------------------------------------------------------


def _legacy(*villages: dict[str, Any]) -> dict[str, Any]:
    return {"county": {"id": "c1"}, "townships": [{"id": "t1", "villages": list(villages)}]}


def test_legacy_inline_officer_is_the_grid_officer_on_duty_all_the_time() -> None:
    officer = {"id": "o1", "name": "王建国", "phone": "+86 1"}
    registry = parse_registry(_legacy({"id": "v1", "officer": officer}))
    village = registry.villages[("t1", "v1")]
    assert (village.officer.id, village.officer.name, village.officer.phone) == (
        "o1", "王建国", "+86 1"
    )  # fmt: skip
    assert (village.officer.email, village.officer.webhook) == ("", "")
    assert registry.officers == {"o1": village.officer}
    assert registry.on_duty(village, _at(3, 3)) == village.officer
    # nobody holds the township's or the county's role: escalation stops at the village
    assert registry.cells[("t1",)].rota is None and registry.cells[()].rota is None


def test_legacy_officer_shared_by_two_villages() -> None:
    officer = {"id": "o1", "name": "王建国"}
    registry = parse_registry(_legacy({"id": "v1", "officer": officer},
                                      {"id": "v2", "officer": dict(officer)}))  # fmt: skip
    assert registry.villages[("t1", "v2")].officer.id == "o1"
    message = _error(_legacy({"id": "v1", "officer": officer},
                             {"id": "v2", "officer": {**officer, "name": "王建军"}}))  # fmt: skip
    assert message.startswith("townships[0].villages[1].officer: officer 'o1' is declared")


def test_example_county_keeps_its_village_officers() -> None:
    registry = load_registry(EXAMPLES / "county.yaml")
    for key, village in registry.villages.items():
        assert registry.cells[key].holders == (village.officer.id,)
        assert registry.on_duty(village, _at(5, 2)) == village.officer
    node = registry.nodes["yy-0001"]
    chain = [registry.on_duty(c, _at(5, 2)).name for c in registry.escalation_path(node, "major")]
    assert chain == ["王建国", "刘志强", "赵立新"]  # 网格员, 网格长, county duty officer


# --- the large example -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def large() -> Registry:
    return load_registry(EXAMPLES / "county_large.yaml")


def test_large_example_counts(large: Registry) -> None:
    assert large.county == "qingshan"
    assert len(large.township_names) >= 10
    assert len(large.villages) >= 100
    assert len(large.nodes) >= 300
    kinds = [n.quantities[0] for n in large.nodes.values()]
    air = sum(k == "PM2.5" for k in kinds)
    assert air > 0.8 * len(kinds)
    assert kinds.count("COD") >= 10 and kinds.count("LAeq") >= 10
    assert sum(n.permit is not None for n in large.nodes.values()) == 2
    assert set(large.permits) == {"qs-paper-001", "qs-cement-001"}


def test_large_example_has_somebody_on_duty_everywhere_all_week(large: Registry) -> None:
    assert all(cell.rota is not None for cell in large.cells.values())
    assert sum(len(c.holders) > 1 for c in large.cells.values()) >= 20  # real rosters
    start = datetime(2025, 1, 6, tzinfo=SHANGHAI)
    for hours in range(0, 24 * 7, 7):
        when = start + timedelta(hours=hours)
        for cell in large.cells.values():
            assert large.on_duty(cell, when).id in cell.holders
    node = next(iter(large.nodes.values()))
    assert [c.level for c in large.escalation_path(node, "critical")] == [
        "village", "township", "county"
    ]  # fmt: skip
    assert large.escalation["critical"].ack_within_min == 10


def test_large_example_county_duty_hands_over_at_0830(large: Registry) -> None:
    start = datetime(2025, 1, 6, tzinfo=SHANGHAI)  # a Monday
    hand_offs = large.hand_off_times((), start, start + timedelta(days=7))
    assert {t.strftime("%H:%M") for t, _ in hand_offs} == {"08:30"}
    assert len(hand_offs) == 6  # Sunday's officer also has Monday: no hand-off


def test_large_example_is_what_the_script_makes() -> None:
    spec = importlib.util.spec_from_file_location("make_county_large",
                                                  EXAMPLES / "make_county_large.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    committed = yaml.safe_load((EXAMPLES / "county_large.yaml").read_text("utf-8"))
    assert script.make() == committed


def test_the_documented_example_is_a_valid_grid() -> None:
    text = (EXAMPLES.parent / "docs" / "architecture.md").read_text("utf-8")
    section = text[text.index("## Grid file format") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    registry = parse_registry(yaml.safe_load(block))
    friday_night = datetime(2024, 6, 7, 22, tzinfo=SHANGHAI)
    assert registry.on_duty(("nanma", "xili"), friday_night).id == "off-nanma-xili-2"
    assert registry.on_duty(("nanma",), friday_night).id == "chief-nanma-deputy"
    assert registry.escalation["critical"].ack_within_min == 10
