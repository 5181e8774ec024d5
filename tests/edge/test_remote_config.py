"""Remote configuration: the parser (whole or nothing, every error named, random input), then
a real agent on a real broker taking a retained cfg, acknowledging it, applying it to the
data it sends, refusing a bad one; and its health report."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import (
    AgentConfig,
    AgentConfigError,
    Calibration,
    EdgeAgent,
    Settings,
    parse_remote_config,
)
from edge._remote import MAX_BYTES, RemoteConfig
from tests.helpers import ConstantDriver, Recorder, recording
from tianwang.aio import cancel_and_wait
from tianwang.clock import AcceleratedClock
from tianwang.codec import Reading, decode_data, parse_ts, schema
from tianwang.mqtt import BrokerAddress, MqttLink
from tianwang.registry import Registry
from tianwang.services import Mosquitto

T0 = 1795766400.0  # a whole hour, epoch seconds
SPEED = 120.0  # sampling_s 60 is a sample every half second

CURRENT = Settings(
    sampling_s=60.0,
    calibration={"NO2": Calibration(2.0, 1.0), "SO2": Calibration(1.1, 0.0)},
    precheck={"CO": (0.0, 10.0)},
)


def cfg(**fields: Any) -> bytes:
    return orjson.dumps({"v": 1, "id": "cfg-1", **fields})


# --- the parser ------------------------------------------------------------------------------


def test_a_cfg_changes_only_the_keys_it_names() -> None:
    before = (dict(CURRENT.calibration), dict(CURRENT.precheck))
    remote = parse_remote_config(cfg(sampling_s=30), CURRENT)
    assert remote == RemoteConfig("cfg-1", Settings(30.0, CURRENT.calibration, CURRENT.precheck))

    remote = parse_remote_config(
        cfg(calibration={"PM2.5": {"gain": 0.8, "offset": 3}}, precheck={"SO2": {"max": 500}}),
        CURRENT,
    )
    assert remote.settings.sampling_s == 60.0
    assert remote.settings.calibration == {
        "NO2": Calibration(2.0, 1.0),
        "SO2": Calibration(1.1, 0.0),
        "PM2.5": Calibration(0.8, 3.0),
    }
    assert remote.settings.precheck == {"CO": (0.0, 10.0), "SO2": (-1e12, 500.0)}
    # a quantity named again is replaced whole
    remote = parse_remote_config(cfg(calibration={"NO2": {"gain": 3}}), CURRENT)
    assert remote.settings.calibration["NO2"] == Calibration(3.0, 0.0)
    # the current settings are not touched
    assert (CURRENT.calibration, CURRENT.precheck) == before
    assert parse_remote_config(cfg(), CURRENT) == RemoteConfig("cfg-1", CURRENT)


BAD: list[tuple[str, bytes, str]] = [
    ("not JSON", b"sampling_s=30", "cfg"),
    ("not UTF-8", b'{"v": 1, "id": "\xff"}', "cfg"),
    ("empty", b"", "cfg"),
    ("an array", b'[{"v": 1, "id": "a"}]', "cfg"),
    ("a string", b'"cfg"', "cfg"),
    ("null", b"null", "cfg"),
    ("v missing", orjson.dumps({"id": "a", "sampling_s": 30}), "cfg.v"),
    ("v 2", orjson.dumps({"v": 2, "id": "a"}), "cfg.v"),
    ("v a string", orjson.dumps({"v": "1", "id": "a"}), "cfg.v"),
    ("v true", orjson.dumps({"v": True, "id": "a"}), "cfg.v"),
    ("unknown key", cfg(sampling=30), "sampling"),
    ("unknown key beside good ones", cfg(sampling_s=30, reboot=True), "reboot"),
    ("id missing", orjson.dumps({"v": 1, "sampling_s": 30}), "cfg.id"),
    ("id empty", orjson.dumps({"v": 1, "id": ""}), "cfg.id"),
    ("id too long", orjson.dumps({"v": 1, "id": "x" * 65}), "cfg.id"),
    ("id a number", orjson.dumps({"v": 1, "id": 7}), "cfg.id"),
    ("sampling_s 0", cfg(sampling_s=0), "cfg.sampling_s"),
    ("sampling_s negative", cfg(sampling_s=-60), "cfg.sampling_s"),
    ("sampling_s a string", cfg(sampling_s="60"), "cfg.sampling_s"),
    ("sampling_s a bool", cfg(sampling_s=True), "cfg.sampling_s"),
    ("sampling_s null", cfg(sampling_s=None), "cfg.sampling_s"),
    ("sampling_s too long", cfg(sampling_s=86400), "cfg.sampling_s"),
    ("calibration gain 0", cfg(calibration={"NO2": {"gain": 0}}), "cfg.calibration.NO2.gain"),
    ("calibration gain text", cfg(calibration={"CO": {"gain": "2"}}), "cfg.calibration.CO.gain"),
    ("calibration offset huge", cfg(calibration={"CO": {"offset": 1e10}}), "CO.offset"),
    ("calibration unknown quantity", cfg(calibration={"Rn": {"gain": 1}}), "cfg.calibration.Rn"),
    ("calibration a list", cfg(calibration=[{"NO2": {}}]), "cfg.calibration"),
    ("calibration entry a number", cfg(calibration={"NO2": 2}), "cfg.calibration.NO2"),
    ("precheck min >= max", cfg(precheck={"CO": {"min": 4, "max": 4}}), "cfg.precheck.CO"),
    ("precheck max text", cfg(precheck={"CO": {"max": "4"}}), "cfg.precheck.CO.max"),
    ("calibration null", cfg(calibration=None), "cfg.calibration"),
    ("precheck null", cfg(precheck=None), "cfg.precheck"),
    ("calibration field typo", cfg(calibration={"NO2": {"gian": 2}}), "gian"),
    ("precheck field typo", cfg(precheck={"CO": {"maximum": 4}}), "maximum"),
    ("oversized", cfg(sampling_s=30)[:-1] + b" " * MAX_BYTES + b"}", "cfg"),
]


@pytest.mark.parametrize(("payload", "field"), [pytest.param(p, f, id=n) for n, p, f in BAD])
def test_a_bad_cfg_is_refused_naming_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(AgentConfigError) as info:
        parse_remote_config(payload, CURRENT)
    assert field in str(info.value)


def test_size_limit_is_on_the_bytes() -> None:
    at_limit = cfg(sampling_s=30)[:-1] + b" " * (MAX_BYTES - len(cfg(sampling_s=30))) + b"}"
    assert len(at_limit) == MAX_BYTES
    assert parse_remote_config(at_limit, CURRENT).settings.sampling_s == 30.0
    with pytest.raises(AgentConfigError, match="bytes"):
        parse_remote_config(at_limit + b" ", CURRENT)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
KEY_NAMES = ["v", "id", "sampling_s", "calibration", "precheck", "gain", "offset", "min", "max"]
JSON_KEYS = st.sampled_from([*KEY_NAMES, "NO2", "CO", "PM2.5", "pH", "radon"]) | st.text(max_size=8)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_KEYS, inner, max_size=5),
    max_leaves=12,
)


CFG_SCHEMA = jsonschema.Draft202012Validator(schema("cfg-v1"))


def _parsed_or_refused(payload: bytes) -> None:
    try:
        remote = parse_remote_config(payload, CURRENT)
    except AgentConfigError:
        return
    assert isinstance(remote, RemoteConfig)
    assert 0.1 <= remote.settings.sampling_s <= 3600
    # never more permissive than the published schema
    CFG_SCHEMA.validate(orjson.loads(payload))


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_are_refused_as_config_errors(payload: bytes) -> None:
    _parsed_or_refused(payload)


@settings(max_examples=200)
@given(st.dictionaries(JSON_KEYS, JSON, max_size=6), st.booleans())
def test_random_json_objects_raise_only_config_errors(raw: dict[str, Any], envelope: bool) -> None:
    if envelope:  # mostly past the envelope checks, into the settings
        raw = {k: v for k, v in raw.items() if k in {"sampling_s", "calibration", "precheck"}}
        raw |= {"v": 1, "id": "random"}
    _parsed_or_refused(orjson.dumps(raw))


# --- a real agent on a real broker -----------------------------------------------------------


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(agent.run(T0, T0 + 1e9))
    try:
        yield task
    finally:
        await cancel_and_wait(task)
    assert not task.done() or task.cancelled() or task.exception() is None, task.exception()


async def publish(broker: Mosquitto, topic: str, payload: bytes, *, retain: bool) -> None:
    async with MqttLink(BrokerAddress.parse(broker.url), "test-operator") as link:
        await link.publish(topic, payload, retain=retain)


def make_agent(county: Registry, broker: Mosquitto, **overrides: Any) -> EdgeAgent:
    place = county.nodes["yy-0001"].place
    config = AgentConfig(
        place, BrokerAddress.parse(broker.url), Settings(sampling_s=60.0), **overrides
    )
    return EdgeAgent(config, [ConstantDriver()], AcceleratedClock(T0, SPEED))


def readings(recorder: Recorder, topic: str) -> list[Reading]:
    return [r for p in recorder.payloads(topic) for r in decode_data(p)[1]]


def valid_json(payload: bytes, name: str) -> dict[str, Any]:
    """Decoded, and valid under the published schema."""
    doc = orjson.loads(payload)
    jsonschema.Draft202012Validator(schema(name)).validate(doc)
    return doc


def acks(recorder: Recorder, topic: str) -> list[dict[str, Any]]:
    return [valid_json(p, "cfg_ack-v1") for p in recorder.payloads(topic)]


def samples_after(recorder: Recorder, topic: str, ts_ms: int) -> dict[int, dict[str, Reading]]:
    """Readings stamped after ``ts_ms``, by sample time and quantity."""
    by_time: dict[int, dict[str, Reading]] = {}
    for r in readings(recorder, topic):
        if r.ts_ms > ts_ms:
            by_time.setdefault(r.ts_ms, {})[r.quantity] = r
    return by_time


def check_calibrated(samples: dict[int, dict[str, Reading]]) -> None:
    for sample in samples.values():
        assert sample["NO2"].value == 81.0  # 2 * 40 + 1, ug/m3 already
        assert sample["NO2"].flag == "N"
        assert sample["CO"].value == 0.5  # not calibrated, but over the pre-check maximum
        assert sample["CO"].flag == "T"
    stamps = sorted(samples)
    assert [b - a for a, b in itertools.pairwise(stamps)] == [30_000] * (len(stamps) - 1)


async def _remote_cfg(county: Registry, broker: Mosquitto) -> None:
    agent = make_agent(county, broker)
    place = agent.config.place
    data, ack_topic, cfg_topic = place.topic("data"), place.topic("cfg_ack"), place.topic("cfg")
    good = cfg(
        sampling_s=30,
        calibration={"NO2": {"gain": 2, "offset": 1}},
        precheck={"CO": {"max": 0.4}},
    )
    # retained before the agent starts: it finds it when it subscribes
    await publish(broker, cfg_topic, good, retain=True)
    async with recording(broker, data, ack_topic) as rec, running(agent) as run:
        await rec.wait_until(lambda: bool(rec.payloads(ack_topic)), "the cfg_ack")
        [ack] = acks(rec, ack_topic)
        assert ack["v"] == 1
        assert (ack["node"], ack["id"], ack["status"]) == ("yy-0001", "cfg-1", "applied")
        assert ack["reason"] is None
        applied_ms = parse_ts(ack["ts"])
        assert applied_ms >= T0 * 1000
        assert agent.settings.sampling_s == 30.0
        assert agent.settings.calibration["NO2"] == Calibration(2.0, 1.0)
        assert agent.cfg_id == "cfg-1"

        await rec.wait_until(
            lambda: len(samples_after(rec, data, applied_ms)) >= 3, "three calibrated samples"
        )
        check_calibrated(samples_after(rec, data, applied_ms))
        first = readings(rec, data)[0]
        assert (first.ts_ms, first.quantity, first.value) == (T0 * 1000, "NO2", 40.0)
        assert agent.stats.cfg_applied == 1

        settings_before = agent.settings
        bad = orjson.dumps(
            {"v": 1, "id": "cfg-2", "sampling_s": 0, "calibration": {"NO2": {"gain": 5}}}
        )
        await publish(broker, cfg_topic, bad, retain=True)
        await rec.wait_until(lambda: len(rec.payloads(ack_topic)) >= 2, "the second cfg_ack")
        rejected = acks(rec, ack_topic)[1]
        assert (rejected["node"], rejected["status"]) == ("yy-0001", "rejected")
        assert "sampling_s" in rejected["reason"]
        assert agent.settings is settings_before  # nothing half-applied
        assert agent.cfg_id == "cfg-1"
        assert agent.stats.cfg_rejected == 1

        rejected_ms = parse_ts(rejected["ts"])
        await rec.wait_until(
            lambda: len(samples_after(rec, data, rejected_ms)) >= 2, "data after the rejection"
        )
        check_calibrated(samples_after(rec, data, rejected_ms))
        assert not run.done()
    seqs = [r.seq for r in readings(rec, data)]
    assert seqs == list(range(len(seqs)))


def test_agent_applies_a_retained_cfg_and_refuses_a_bad_one(
    mosquitto: Mosquitto, county: Registry
) -> None:
    asyncio.run(_remote_cfg(county, mosquitto))


async def _health(county: Registry, broker: Mosquitto) -> None:
    agent = make_agent(county, broker, health_s=0.2)
    topic = agent.config.place.topic("health")
    async with recording(broker, topic) as rec, running(agent):
        await rec.wait_until(lambda: len(rec.payloads(topic)) >= 3, "three health reports")
        reports = [valid_json(p, "health-v1") for p in rec.payloads(topic)]
        arrivals = [t for t, _, _ in rec.messages]
    for report in reports:
        assert report["v"] == 1
        assert report["node"] == "yy-0001"
        assert isinstance(report["outbox_depth"], int) and report["outbox_depth"] >= 0
        assert report["dropped"] == 0
        assert isinstance(report["uptime_s"], int | float) and report["uptime_s"] >= 0
        assert "clock_offset_s" in report
        offset = report["clock_offset_s"]
        assert offset is None or isinstance(offset, int | float)
        assert report["sampling_s"] == 60.0
        assert parse_ts(report["ts"]) >= T0 * 1000
    uptimes = [r["uptime_s"] for r in reports]
    assert uptimes == sorted(uptimes) and uptimes[-1] > uptimes[0]
    assert arrivals[2] - arrivals[0] >= 2 * 0.2 * 0.9  # every health_s, not in a burst


def test_agent_reports_its_health(mosquitto: Mosquitto, county: Registry) -> None:
    asyncio.run(_health(county, mosquitto))


async def _rejected_id(county: Registry, broker: Mosquitto) -> dict[str, Any]:
    agent = make_agent(county, broker)
    ack_topic = agent.config.place.topic("cfg_ack")
    bad = orjson.dumps({"v": 1, "id": "cfg-bad", "sampling_s": 0})
    await publish(broker, agent.config.place.topic("cfg"), bad, retain=True)
    async with recording(broker, ack_topic) as rec, running(agent):
        await rec.wait_until(lambda: bool(rec.payloads(ack_topic)), "the cfg_ack")
    [ack] = acks(rec, ack_topic)
    assert agent.settings == Settings(sampling_s=60.0)
    return ack


def test_a_rejection_names_the_cfg_it_rejects_when_the_id_is_readable(
    mosquitto: Mosquitto, county: Registry
) -> None:
    """cfg_ack-v1: ``id`` is null only "when the cfg was too broken to have one"; the
    operator needs it to tell which of several cfgs was refused."""
    ack = asyncio.run(_rejected_id(county, mosquitto))
    assert (ack["status"], ack["id"]) == ("rejected", "cfg-bad")
    assert "cfg.sampling_s" in ack["reason"]
