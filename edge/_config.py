"""Agent configuration: the per-node YAML file, and the settings remote configuration may
change at run time (sampling period, calibration, local pre-check limits).

Every error names the field; nothing is half-applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tianwang.mqtt import BrokerAddress, TlsFiles
from tianwang.quantities import UnitError, quantity_table
from tianwang.topics import NodeTopic

IDENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


CONFIG_KEYS = frozenset({"node", "place", "broker", "sampling_s", "health_s", "drivers",
                         "sensors", "calibration", "precheck", "outbox", "backlog"})  # fmt: skip
BROKER_KEYS = frozenset({"url", "username", "password", "password_file", "tls", "keepalive_s"})
SENSOR_KEYS = frozenset({"driver", "channel", "quantity", "unit"})


class AgentConfigError(ValueError):
    """A configuration (file or cfg message) that cannot be used; names the field."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """``calibrated = gain * raw + offset``, in the unit the sensor reports."""

    gain: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class SensorConfig:
    driver: str
    channel: Any  # driver-specific address: a register spec, an HJ 212 code, ...
    quantity: str
    unit: str


@dataclass(frozen=True, slots=True)
class Settings:
    """What remote configuration may change without a restart."""

    sampling_s: float = 60.0
    calibration: dict[str, Calibration] = field(default_factory=dict)
    # Local pre-check: a value outside [low, high] is flagged "T" (over range, HJ 212).
    precheck: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: str = ":memory:"
    max_readings: int = 1_000_000
    synchronous: str = "FULL"


@dataclass(frozen=True, slots=True)
class BacklogConfig:
    """How a backlog leaves after a reconnect: readings per message, messages per second."""

    batch_readings: int = 240
    max_messages_per_s: float = 20.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    place: NodeTopic
    broker: BrokerAddress
    settings: Settings = field(default_factory=Settings)
    sensors: tuple[SensorConfig, ...] = ()
    drivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tls: TlsFiles | None = None
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    backlog: BacklogConfig = field(default_factory=BacklogConfig)
    health_s: float = 60.0
    keepalive_s: int = 60

    @property
    def node(self) -> str:
        return self.place.node

    @property
    def sampling_s(self) -> float:
        return self.settings.sampling_s


# --- field readers: each raises AgentConfigError naming the field ---------------------------


def _section(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise AgentConfigError(f"{where}: must be a mapping, got {type(raw).__name__}")
    return raw


def _required(raw: dict[str, Any], key: str, where: str) -> Any:
    if raw.get(key) in (None, ""):
        raise AgentConfigError(f"{where}.{key}: missing")
    return raw[key]


def _number(raw: dict[str, Any], key: str, where: str, default: float, *, low: float,
            high: float) -> float:  # fmt: skip
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise AgentConfigError(f"{where}.{key}: must be a number, got {value!r}")
    if not low <= value <= high:
        raise AgentConfigError(f"{where}.{key}: must be in [{low}, {high}], got {value}")
    return float(value)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float (YAML integers are unbounded)
        return False


def _keys(raw: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """A misspelt key is an error, not a silent default."""
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise AgentConfigError(f"{where}: unknown keys {unknown}")


def _text(value: Any, where: str) -> str | None:
    """An optional scalar given as text (YAML reads ``password: 123456`` as a number)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AgentConfigError(f"{where}: must be text, got {type(value).__name__}")
    return str(value)


def _path(base: Path, value: Any, where: str) -> Path:
    try:
        return (base / str(value)).resolve()
    except (OSError, ValueError) as exc:
        raise AgentConfigError(f"{where}: {exc}") from exc


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system
        return False


def _ident(raw: dict[str, Any], key: str, where: str) -> str:
    value = _required(raw, key, where)
    if not isinstance(value, str) or not 0 < len(value) <= 64 or set(value) - IDENT_CHARS:
        raise AgentConfigError(f"{where}.{key}: {value!r} must be 1-64 of [A-Za-z0-9_.-]")
    return value


def _quantity(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in quantity_table().quantities:
        raise AgentConfigError(f"{where}: unknown quantity {value!r}")
    return str(value)


def parse_settings(raw: dict[str, Any], where: str, base: Settings | None = None) -> Settings:
    """Settings from a mapping; keys that are absent keep ``base``'s values."""
    base = base or Settings()
    sampling_s = _number(raw, "sampling_s", where, base.sampling_s, low=0.1, high=3600)
    calibration = dict(base.calibration)
    for quantity, cal in _section(raw.get("calibration"), f"{where}.calibration").items():
        w = f"{where}.calibration.{quantity}"
        _quantity(quantity, w)
        cal = _section(cal, w)
        _keys(cal, frozenset({"gain", "offset"}), w)
        calibration[quantity] = Calibration(
            _number(cal, "gain", w, 1.0, low=1e-6, high=1e6),
            _number(cal, "offset", w, 0.0, low=-1e9, high=1e9),
        )
    precheck = dict(base.precheck)
    for quantity, bounds in _section(raw.get("precheck"), f"{where}.precheck").items():
        w = f"{where}.precheck.{quantity}"
        _quantity(quantity, w)
        bounds = _section(bounds, w)
        _keys(bounds, frozenset({"min", "max"}), w)
        low = _number(bounds, "min", w, -1e12, low=-1e12, high=1e12)
        high = _number(bounds, "max", w, 1e12, low=-1e12, high=1e12)
        if low >= high:
            raise AgentConfigError(f"{w}: min must be below max")
        precheck[quantity] = (low, high)
    return replace(base, sampling_s=sampling_s, calibration=calibration, precheck=precheck)


def _sensor(raw: Any, drivers: dict[str, dict[str, Any]], where: str) -> SensorConfig:
    raw = _section(raw, where)
    _keys(raw, SENSOR_KEYS, where)
    driver = _required(raw, "driver", where)
    if not isinstance(driver, str) or driver not in drivers:
        raise AgentConfigError(f"{where}.driver: no driver named {driver!r} under drivers")
    quantity = _quantity(_required(raw, "quantity", where), f"{where}.quantity")
    unit = _text(_required(raw, "unit", where), f"{where}.unit") or ""
    try:
        quantity_table().factor(quantity, unit)
    except UnitError as exc:
        raise AgentConfigError(f"{where}.unit: {exc}") from exc
    return SensorConfig(driver, raw.get("channel"), quantity, unit)


def _tls(raw: Any, base: Path) -> TlsFiles | None:
    if raw is None:
        return None
    raw = _section(raw, "broker.tls")
    _keys(raw, frozenset({"ca", "cert", "key"}), "broker.tls")
    files = {}
    for key in ("ca", "cert", "key"):
        value = raw.get(key)
        if value is not None:
            path = _path(base, value, f"broker.tls.{key}")
            if not _is_file(path):
                raise AgentConfigError(f"broker.tls.{key}: no file {path}")
            files[key] = path
    if "ca" not in files:
        raise AgentConfigError("broker.tls.ca: missing")
    if ("cert" in files) != ("key" in files):
        raise AgentConfigError("broker.tls: cert and key go together")
    return TlsFiles(files["ca"], files.get("cert"), files.get("key"))


def _broker(raw: Any, base: Path) -> tuple[BrokerAddress, TlsFiles | None]:
    raw = _section(raw, "broker")
    url = str(_required(raw, "url", "broker"))
    try:
        address = BrokerAddress.parse(url)
    except ValueError as exc:
        raise AgentConfigError(f"broker.url: {exc}") from exc
    _keys(raw, BROKER_KEYS, "broker")
    password = _text(raw.get("password"), "broker.password")
    if raw.get("password_file"):
        path = _path(base, raw["password_file"], "broker.password_file")
        try:
            password = path.read_text("utf-8").strip()
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise AgentConfigError(f"broker.password_file: {exc}") from exc
    username = _text(raw.get("username"), "broker.username")
    address = BrokerAddress(address.host, address.port, username or address.username,
                            password or address.password)  # fmt: skip
    return address, _tls(raw.get("tls"), base)


def parse_agent_config(raw: Any, base: Path = Path(".")) -> AgentConfig:
    """Validate a whole agent configuration; relative file paths are relative to ``base``."""
    raw = _section(raw, "config")
    _keys(raw, CONFIG_KEYS, "config")
    node = _ident(raw, "node", "config")
    place_raw = _section(_required(raw, "place", "config"), "place")
    _keys(place_raw, frozenset({"county", "township", "village"}), "place")
    place = NodeTopic(*(_ident(place_raw, k, "place") for k in ("county", "township", "village")),
                      node)  # fmt: skip
    broker, tls = _broker(_required(raw, "broker", "config"), base)
    drivers = {}
    for name, spec in _section(raw.get("drivers"), "drivers").items():
        spec = _section(spec, f"drivers.{name}")
        _required(spec, "kind", f"drivers.{name}")
        drivers[str(name)] = spec
    sensor_list = raw.get("sensors") or []
    if not isinstance(sensor_list, list):
        raise AgentConfigError("sensors: must be a list")
    sensors = tuple(_sensor(s, drivers, f"sensors[{i}]") for i, s in enumerate(sensor_list))
    if not sensors:
        raise AgentConfigError("sensors: at least one sensor is needed")
    outbox_raw = _section(raw.get("outbox"), "outbox")
    synchronous = str(outbox_raw.get("synchronous", "FULL")).upper()
    if synchronous not in ("FULL", "NORMAL"):
        raise AgentConfigError("outbox.synchronous: must be FULL or NORMAL")
    _keys(outbox_raw, frozenset({"path", "max_readings", "synchronous"}), "outbox")
    # A node's outbox must survive a restart (its seqs live there): no default path.
    path = _required(outbox_raw, "path", "outbox")
    outbox = OutboxConfig(
        path if path == ":memory:" else str(_path(base, path, "outbox.path")),
        int(_number(outbox_raw, "max_readings", "outbox", 1_000_000, low=1, high=1e9)),
        synchronous,
    )
    backlog_raw = _section(raw.get("backlog"), "backlog")
    _keys(backlog_raw, frozenset({"batch_readings", "max_messages_per_s"}), "backlog")
    backlog = BacklogConfig(
        int(_number(backlog_raw, "batch_readings", "backlog", 240, low=1, high=1000)),
        _number(backlog_raw, "max_messages_per_s", "backlog", 20.0, low=0.1, high=10000),
    )
    return AgentConfig(
        place=place,
        broker=broker,
        settings=parse_settings(raw, "config"),
        sensors=sensors,
        drivers=drivers,
        tls=tls,
        outbox=outbox,
        backlog=backlog,
        health_s=_number(raw, "health_s", "config", 60.0, low=1, high=86400),
        keepalive_s=int(
            _number(
                _section(raw["broker"], "broker"), "keepalive_s", "broker", 60, low=5, high=3600
            )
        ),
    )


def load_agent_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AgentConfigError(f"{path}: {exc}") from exc
    return parse_agent_config(raw, path.parent)
