"""Edge agent: runs on a node, samples its drivers, keeps a persistent outbox, publishes
over MQTT, takes remote configuration and reports its health."""

from edge._agent import AgentStats, EdgeAgent
from edge._config import (
    AgentConfig,
    AgentConfigError,
    BacklogConfig,
    Calibration,
    OutboxConfig,
    SensorConfig,
    Settings,
    load_agent_config,
    parse_agent_config,
)
from edge._driver import Driver, PushSource, Sample, SensorValue
from edge._hj212 import CodeTable, Hj212Error, load_codes
from edge._hj212_bridge import Hj212Bridge, Hj212Stats
from edge._modbus import ModbusChannel, ModbusConfig, ModbusConfigError, ModbusDriver
from edge._outbox import Outbox, OutboxError
from edge._remote import parse_remote_config

__all__ = [
    "AgentConfig",
    "AgentConfigError",
    "AgentStats",
    "BacklogConfig",
    "Calibration",
    "CodeTable",
    "Driver",
    "EdgeAgent",
    "Hj212Bridge",
    "Hj212Error",
    "Hj212Stats",
    "ModbusChannel",
    "ModbusConfig",
    "ModbusConfigError",
    "ModbusDriver",
    "Outbox",
    "OutboxConfig",
    "OutboxError",
    "PushSource",
    "Sample",
    "SensorConfig",
    "SensorValue",
    "Settings",
    "load_agent_config",
    "load_codes",
    "parse_agent_config",
    "parse_remote_config",
]
