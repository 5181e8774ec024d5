"""Every published JSON Schema is valid, and what the code emits or accepts agrees with it."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import orjson
import pytest

from edge import AgentConfig, AgentConfigError, EdgeAgent, Settings, parse_remote_config
from edge._health import health_report
from edge._remote import encode_cfg_ack
from tianwang.clock import AcceleratedClock
from tianwang.codec import schema
from tianwang.mqtt import BrokerAddress
from tianwang.topics import NodeTopic

NAMES = ["data-v1", "status-v1", "cfg-v1", "cfg_ack-v1", "health-v1"]


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


def test_every_schema_file_is_listed_and_valid() -> None:
    folder = resources.files("tianwang").joinpath("data/schema")
    files = sorted(p.name.removesuffix(".schema.json") for p in folder.iterdir())
    assert files == sorted(NAMES)
    for name in NAMES:
        jsonschema.Draft202012Validator.check_schema(schema(name))


def test_health_report_follows_its_schema() -> None:
    place = NodeTopic("yiyuan", "nanma", "dongli", "yy-0001")
    config = AgentConfig(place, BrokerAddress("127.0.0.1", 1), Settings())
    agent = EdgeAgent(config, [], AcceleratedClock(1795766400.0, 1.0))
    report = json.loads(health_report(agent, uptime_s=12.5))
    validator("health-v1").validate(report)
    assert report["node"] == "yy-0001" and report["outbox_depth"] == 0


@pytest.mark.parametrize(
    "status,cfg_id,reason", [("applied", "c1", None), ("rejected", None, "cfg.v: must be 1")]
)
def test_cfg_ack_follows_its_schema(status: str, cfg_id: str | None, reason: str | None) -> None:
    ack = json.loads(encode_cfg_ack("yy-0001", cfg_id, status, reason, 1795766400.0))
    validator("cfg_ack-v1").validate(ack)


CFGS = [
    {"v": 1, "id": "a"},
    {"v": 1, "id": "b", "sampling_s": 30, "calibration": {"NO2": {"gain": 1.1, "offset": -2}}},
    {"v": 1, "id": "c", "precheck": {"CO": {"min": 0, "max": 50}}},
    {"v": 2, "id": "d"},
    {"v": 1},
    {"v": 1, "id": "e", "sampling_s": 0},
    {"v": 1, "id": "f", "colour": "red"},
    {"v": 1, "id": "g", "calibration": {"NO2": {"gain": 0}}},
]


@pytest.mark.parametrize("cfg", CFGS, ids=[str(c) for c in CFGS])
def test_cfg_parser_agrees_with_the_schema(cfg: dict[str, object]) -> None:
    schema_ok = validator("cfg-v1").is_valid(cfg)
    try:
        parse_remote_config(orjson.dumps(cfg), Settings())
        parser_ok = True
    except AgentConfigError:
        parser_ok = False
    assert parser_ok == schema_ok
