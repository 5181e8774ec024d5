"""The agent configuration file: a complete file loads into frozen values, every bad field is
named in an AgentConfigError, random and mutated input never raises anything else; and the
unit conversion factors the agent applies (tianwang/data/quantities.yaml)."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import (
    AgentConfig,
    AgentConfigError,
    BacklogConfig,
    Calibration,
    OutboxConfig,
    SensorConfig,
    load_agent_config,
    parse_agent_config,
)
from tianwang.mqtt import BrokerAddress, TlsFiles
from tianwang.quantities import UnitError, quantity_table
from tianwang.topics import NodeTopic

VALID_YAML = """\
node: yy-0001
place:
  county: yiyuan
  township: nanma
  village: dongli
broker:
  url: mqtts://broker.example.cn:8883
  username: node-yy-0001
  password: overridden-by-the-file
  password_file: secrets/mqtt-password
  tls:
    ca: certs/ca.pem
    cert: certs/node.pem
    key: certs/node.key
drivers:
  gas:
    kind: modbus
    port: /dev/ttyUSB0
    baudrate: 9600
  dust:
    kind: simulated
sensors:
  - {driver: gas, channel: {register: 0, type: float32}, quantity: NO2, unit: ppb}
  - {driver: gas, channel: 2, quantity: CO, unit: ppm}
  - {driver: dust, channel: pm25, quantity: PM2.5, unit: µg/m³}
sampling_s: 30
calibration:
  NO2: {gain: 1.05, offset: -2.5}
  CO: {gain: 0.9}
precheck:
  CO: {min: 0, max: 50}
  PM2.5: {max: 1000}
outbox:
  path: state/outbox.sqlite
  max_readings: 5000
  synchronous: normal
backlog:
  batch_readings: 100
  max_messages_per_s: 5
health_s: 120
"""


def write_files(folder: Path) -> None:
    """The files the valid configuration names, relative to its folder."""
    (folder / "secrets").mkdir(parents=True, exist_ok=True)
    (folder / "secrets" / "mqtt-password").write_text("s3cret-from-file\n")
    (folder / "certs").mkdir(exist_ok=True)
    for name in ("ca.pem", "node.pem", "node.key"):
        (folder / "certs" / name).write_text("not checked, only present\n")


def valid() -> dict[str, Any]:
    return yaml.safe_load(VALID_YAML)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    write_files(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def shared_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For hypothesis: one folder for every example (the files are only read)."""
    folder = tmp_path_factory.mktemp("agent-config")
    write_files(folder)
    return folder


# --- a complete file -------------------------------------------------------------------------


def test_complete_file_loads_into_frozen_values(base: Path) -> None:
    path = base / "agent.yaml"
    path.write_text(VALID_YAML, encoding="utf-8")
    config = load_agent_config(path)

    assert config.place == NodeTopic("yiyuan", "nanma", "dongli", "yy-0001")
    assert config.node == "yy-0001"
    # password_file wins over password; its trailing newline is not part of the password
    assert config.broker == BrokerAddress(
        "broker.example.cn", 8883, "node-yy-0001", "s3cret-from-file"
    )
    certs = (base / "certs").resolve()
    assert config.tls == TlsFiles(certs / "ca.pem", certs / "node.pem", certs / "node.key")
    assert config.drivers == {
        "gas": {"kind": "modbus", "port": "/dev/ttyUSB0", "baudrate": 9600},
        "dust": {"kind": "simulated"},
    }
    assert config.sensors == (
        SensorConfig("gas", {"register": 0, "type": "float32"}, "NO2", "ppb"),
        SensorConfig("gas", 2, "CO", "ppm"),
        SensorConfig("dust", "pm25", "PM2.5", "µg/m³"),
    )
    assert config.settings.sampling_s == 30.0
    assert config.sampling_s == 30.0
    assert config.settings.calibration == {
        "NO2": Calibration(1.05, -2.5),
        "CO": Calibration(0.9, 0.0),
    }
    assert config.settings.precheck == {"CO": (0.0, 50.0), "PM2.5": (-1e12, 1000.0)}
    outbox = str((base / "state" / "outbox.sqlite").resolve())
    assert config.outbox == OutboxConfig(outbox, 5000, "NORMAL")
    assert config.backlog == BacklogConfig(100, 5.0)
    assert config.health_s == 120.0

    for value, name in [
        (config, "health_s"),
        (config.settings, "sampling_s"),
        (config.broker, "port"),
        (config.outbox, "max_readings"),
        (config.sensors[0], "unit"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, 1)


def test_relative_paths_resolve_against_the_file_folder_not_the_working_one(
    base: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (base / "agent.yaml").write_text(VALID_YAML, encoding="utf-8")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    config = load_agent_config(base / "agent.yaml")
    assert config.tls is not None and config.tls.ca == (base / "certs" / "ca.pem").resolve()
    assert Path(config.outbox.path).parent == (base / "state").resolve()


def test_defaults_and_url_credentials(tmp_path: Path) -> None:
    config = parse_agent_config(
        {
            "node": "n1",
            "place": {"county": "c", "township": "t", "village": "v"},
            "broker": {"url": "mqtt://alice:pw@127.0.0.1:1883"},
            "drivers": {"sim": {"kind": "simulated"}},
            "sensors": [{"driver": "sim", "quantity": "LAeq", "unit": "dBA"}],
            "outbox": {"path": "outbox.sqlite"},
        },
        tmp_path,
    )
    assert config.broker == BrokerAddress("127.0.0.1", 1883, "alice", "pw")
    assert config.tls is None
    assert config.sensors == (SensorConfig("sim", None, "LAeq", "dBA"),)
    assert config.settings.sampling_s == 60.0
    assert config.settings.calibration == {} and config.settings.precheck == {}
    assert config.outbox == OutboxConfig(str(tmp_path / "outbox.sqlite"), 1_000_000, "FULL")
    assert config.backlog == BacklogConfig(240, 20.0)
    assert config.health_s == 60.0


def test_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match=r"missing\.yaml"):
        load_agent_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: [unclosed\n")
    with pytest.raises(AgentConfigError, match=r"bad\.yaml"):
        load_agent_config(bad)


def test_a_numeric_password_is_not_passed_on_as_a_number(base: Path) -> None:
    """YAML reads ``password: 123456`` as an int; paho would fail on it at connect time."""
    raw = valid()
    del raw["broker"]["password_file"]
    raw["broker"]["password"] = 123456
    try:
        config = parse_agent_config(raw, base)
    except AgentConfigError as exc:
        assert "broker.password" in str(exc)
    else:
        assert config.broker.password == "123456"


def test_a_password_file_that_is_not_utf8_is_a_config_error(base: Path) -> None:
    (base / "secrets" / "latin1").write_bytes("pässwort\n".encode("latin-1"))
    raw = valid()
    raw["broker"]["password_file"] = "secrets/latin1"
    with pytest.raises(AgentConfigError, match=r"broker\.password_file"):
        parse_agent_config(raw, base)


# --- every invalid field is named ------------------------------------------------------------


def _parent(raw: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The container holding the dotted ``path`` (list items by index), and the last key."""
    *parents, last = path.split(".")
    node: Any = raw
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, int(last) if isinstance(node, list) else last


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        node, key = _parent(raw, path)
        node[key] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        node, key = _parent(raw, path)
        del node[key]

    return mutate


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing node", _delete("node"), "config.node"),
    ("empty node", _set("node", ""), "config.node"),
    ("node with a space", _set("node", "yy 0001"), "config.node"),
    ("node with a slash", _set("node", "yy/0001"), "config.node"),
    ("node with an MQTT wildcard", _set("node", "yy+1"), "config.node"),
    ("node too long", _set("node", "n" * 65), "config.node"),
    ("node not a string", _set("node", 1), "config.node"),
    ("missing place", _delete("place"), "config.place"),
    ("missing place.village", _delete("place.village"), "place.village"),
    ("bad place.township", _set("place.township", "nan ma"), "place.township"),
    ("place not a mapping", _set("place", ["yiyuan"]), "place"),
    ("missing broker", _delete("broker"), "config.broker"),
    ("missing broker url", _delete("broker.url"), "broker.url"),
    ("broker url without port", _set("broker.url", "mqtt://broker.example.cn"), "broker.url"),
    ("broker url with a word port", _set("broker.url", "mqtt://host:mqtt"), "broker.url"),
    ("broker url port out of range", _set("broker.url", "mqtt://host:99999"), "broker.url"),
    ("broker username not a string", _set("broker.username", ["a", "b"]), "broker.username"),
    ("password file missing", _set("broker.password_file", "nope.txt"), "broker.password_file"),
    ("password file with NUL", _set("broker.password_file", "a\x00b"), "broker.password_file"),
    ("tls not a mapping", _set("broker.tls", "yes"), "broker.tls"),
    ("tls ca missing file", _set("broker.tls.ca", "certs/missing.pem"), "broker.tls.ca"),
    ("tls ca path with NUL", _set("broker.tls.ca", "ca\x00.pem"), "broker.tls.ca"),
    ("tls without ca", _delete("broker.tls.ca"), "broker.tls.ca"),
    ("tls cert without key", _delete("broker.tls.key"), "broker.tls"),
    ("tls key without cert", _delete("broker.tls.cert"), "broker.tls"),
    ("driver without kind", _delete("drivers.gas.kind"), "drivers.gas.kind"),
    ("driver not a mapping", _set("drivers.gas", "modbus"), "drivers.gas"),
    ("sensor with unknown driver", _set("sensors.0.driver", "nose"), "sensors[0].driver"),
    ("sensor driver is a list", _set("sensors.0.driver", ["gas"]), "sensors[0].driver"),
    ("sensor without quantity", _delete("sensors.1.quantity"), "sensors[1].quantity"),
    ("unknown quantity", _set("sensors.1.quantity", "radon"), "sensors[1].quantity"),
    ("quantity is a list", _set("sensors.1.quantity", ["CO"]), "sensors[1].quantity"),
    ("sensor without unit", _delete("sensors.0.unit"), "sensors[0].unit"),
    ("unit not a unit", _set("sensors.0.unit", "furlongs"), "sensors[0].unit"),
    ("sensor not a mapping", _set("sensors.2", "dust"), "sensors[2]"),
    ("no sensors", _set("sensors", []), "sensors"),
    ("sensors missing", _delete("sensors"), "sensors"),
    ("sensors not a list", _set("sensors", 5), "sensors"),
    ("sampling_s 0", _set("sampling_s", 0), "config.sampling_s"),
    ("sampling_s negative", _set("sampling_s", -30), "config.sampling_s"),
    ("sampling_s above an hour", _set("sampling_s", 3601), "config.sampling_s"),
    ("sampling_s a string", _set("sampling_s", "30"), "config.sampling_s"),
    ("sampling_s NaN", _set("sampling_s", math.nan), "config.sampling_s"),
    ("sampling_s infinite", _set("sampling_s", math.inf), "config.sampling_s"),
    ("sampling_s a bool", _set("sampling_s", True), "config.sampling_s"),
    ("sampling_s a huge int", _set("sampling_s", 10**400), "config.sampling_s"),
    ("calibration gain 0", _set("calibration.NO2.gain", 0), "config.calibration.NO2.gain"),
    ("calibration gain negative", _set("calibration.CO.gain", -1), "config.calibration.CO.gain"),
    ("calibration offset NaN", _set("calibration.NO2.offset", math.nan), "calibration.NO2.offset"),
    ("calibration unknown quantity", _set("calibration.radon", {}), "config.calibration.radon"),
    ("calibration not a mapping", _set("calibration", [1, 2]), "config.calibration"),
    ("calibration entry a number", _set("calibration.NO2", 2), "config.calibration.NO2"),
    ("precheck min >= max", _set("precheck.CO", {"min": 5, "max": 5}), "config.precheck.CO"),
    ("precheck min > max", _set("precheck.CO", {"min": 9, "max": 1}), "config.precheck.CO"),
    ("precheck max a string", _set("precheck.CO.max", "50"), "config.precheck.CO.max"),
    ("precheck unknown quantity", _set("precheck.radon", {"max": 1}), "config.precheck.radon"),
    ("outbox.synchronous SOMETIMES", _set("outbox.synchronous", "SOMETIMES"), "outbox.synchr"),
    ("outbox.synchronous OFF", _set("outbox.synchronous", "OFF"), "outbox.synchronous"),
    ("outbox.max_readings 0", _set("outbox.max_readings", 0), "outbox.max_readings"),
    ("outbox.path with NUL", _set("outbox.path", "out\x00box.sqlite"), "outbox.path"),
    ("outbox not a mapping", _set("outbox", "big"), "outbox"),
    ("backlog.batch_readings 0", _set("backlog.batch_readings", 0), "backlog.batch_readings"),
    ("backlog rate 0", _set("backlog.max_messages_per_s", 0), "backlog.max_messages_per_s"),
    ("health_s 0", _set("health_s", 0), "config.health_s"),
    ("health_s a string", _set("health_s", "1m"), "config.health_s"),
    ("calibration field typo", _set("calibration.NO2", {"gian": 2}), "gian"),
    ("precheck field typo", _set("precheck.CO", {"maximum": 4}), "maximum"),
    ("top-level key typo", _set("sampling", 10), "sampling"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [pytest.param(m, f, id=name) for name, m, f in INVALID]
)
def test_every_invalid_field_is_named(
    base: Path, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    raw = valid()
    parse_agent_config(copy.deepcopy(raw), base)  # the unmutated file is fine
    mutate(raw)
    with pytest.raises(AgentConfigError) as info:
        parse_agent_config(raw, base)
    assert field in str(info.value)


@pytest.mark.parametrize("raw", [None, [], "node: yy-0001", 42])
def test_a_file_that_is_not_a_mapping_is_refused(raw: Any, tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="config"):
        parse_agent_config(raw, tmp_path)


# --- hypothesis: nothing but AgentConfigError ------------------------------------------------

FIELD_NAMES = [
    "node",
    "place",
    "county",
    "township",
    "village",
    "broker",
    "url",
    "username",
    "password",
    "password_file",
    "tls",
    "ca",
    "cert",
    "key",
    "drivers",
    "kind",
    "sensors",
    "driver",
    "channel",
    "quantity",
    "unit",
    "sampling_s",
    "calibration",
    "gain",
    "offset",
    "precheck",
    "min",
    "max",
    "outbox",
    "path",
    "max_readings",
    "synchronous",
    "backlog",
    "batch_readings",
    "max_messages_per_s",
    "health_s",
    "gas",
    "dust",
    "NO2",
    "CO",
    "PM2.5",
    "pH",
]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: YAML ints are
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(
        ["mqtt://127.0.0.1:1883", "ppb", "ug/m3", "pH", "NO2", "gas", ".", "", "FULL", "\x00"]
    )
)
KEYS = st.sampled_from(FIELD_NAMES) | st.text(max_size=8) | st.integers(-3, 3) | st.none()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=15,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


VALID_PATHS = [p for p in _paths(valid()) if p]


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    raw = valid()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(VALID_PATHS))
        node: Any = raw
        try:
            for key in path[:-1]:
                node = node[key]
            if draw(st.booleans()):
                node[path[-1]] = draw(VALUES)
            elif isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = None
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent
    return raw


def _parse_or_config_error(raw: Any, base: Path) -> None:
    try:
        config = parse_agent_config(raw, base)
    except AgentConfigError:
        return
    assert isinstance(config, AgentConfig)
    assert config.sensors
    assert 0.1 <= config.settings.sampling_s <= 3600


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=VALUES | st.dictionaries(KEYS, VALUES, max_size=8))
def test_random_input_raises_only_config_errors(raw: Any, shared_base: Path) -> None:
    _parse_or_config_error(raw, shared_base)


@settings(max_examples=600, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mutated_configs())
def test_mutated_valid_config_raises_only_config_errors(raw: Any, shared_base: Path) -> None:
    _parse_or_config_error(raw, shared_base)


# --- unit conversion -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit", "factor"),
    [
        ("NO2", "ppb", 46.0055 / 24.465),
        ("NO2", "ppm", 1000 * 46.0055 / 24.465),
        ("SO2", "ppb", 64.066 / 24.465),
        ("O3", "ppb", 47.9982 / 24.465),
        ("CO", "ppm", 28.0101 / 24.465),
        ("CO", "ppb", 28.0101 / 24.465 / 1000),
        ("PM2.5", "ng/m3", 0.001),
        ("PM10", "mg/m3", 1000.0),
        ("CO", "ug/m3", 0.001),
        ("COD", "ug/L", 0.001),
        ("PM2.5", "ug/m3", 1.0),
        ("CO", "mg/m3", 1.0),
        ("pH", "pH", 1.0),
        ("LAeq", "dB(A)", 1.0),
        ("PM2.5", "µg/m³", 1.0),  # U+00B5 micro sign
        ("PM2.5", "μg/m³", 1.0),  # U+03BC greek small mu
        ("PM10", "ug/m³", 1.0),
        ("CO", "mg/m³", 1.0),
        ("NO2", "mg/m³", 1000.0),
        ("DO", "mg/l", 1.0),
        ("LAeq", "dBA", 1.0),
    ],
)
def test_conversion_factor(quantity: str, unit: str, factor: float) -> None:
    assert quantity_table().factor(quantity, unit) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(
    ("quantity", "unit", "message"),
    [
        ("pH", "ppb", "pH"),
        ("PM2.5", "ppb", "PM2.5"),  # a particle has no molar mass
        ("COD", "ug/m3", "COD"),  # water quantity, air unit
        ("NO2", "mg/L", "NO2"),
        ("LAeq", "dB", "LAeq"),
        ("radon", "Bq/m3", "unknown quantity"),
        ("no2", "ug/m3", "unknown quantity"),  # names are case-sensitive
    ],
)
def test_conversion_errors(quantity: str, unit: str, message: str) -> None:
    with pytest.raises(UnitError, match=re.escape(message)):
        quantity_table().factor(quantity, unit)
