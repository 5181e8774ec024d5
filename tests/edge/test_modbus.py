"""The Modbus driver against pymodbus's own server.

Modbus TCP, and RTU framing both over a loopback socket (pyserial's ``socket://`` URL, which
pymodbus's serial server also accepts) and over a real serial line made of two pseudo-terminals.
Each test starts and stops its own server on a free port. The registers are written with
``struct`` here, independently of the pymodbus converter the driver decodes with.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import logging
import math
import os
import struct
import tty
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from edge import parse_agent_config
from edge._driver import SensorValue
from edge._modbus import (
    BAD_REPLY,
    CONNECT_FAILED,
    CONNECTION_LOST,
    MAX_BLOCK_REGISTERS,
    NON_FINITE,
    SHORT_REPLY,
    TIMEOUT,
    ModbusChannel,
    ModbusConfig,
    ModbusConfigError,
    ModbusDriver,
    decode,
    plan_blocks,
)
from tianwang.services import free_port

T0 = 1795766400.0
T = TypeVar("T")

HAVE_SERIAL = importlib.util.find_spec("serial") is not None
needs_serial = pytest.mark.skipif(not HAVE_SERIAL, reason="pyserial (pymodbus[serial]) missing")
FRAMINGS = ["tcp", pytest.param("rtu", marks=needs_serial)]


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


# ---------------------------------------------------------------- registers and the server

FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f"}


def to_registers(value: float, data_type: str, word_order: str = "big") -> list[int]:
    """The reference encoder: big-endian bytes, words swapped for little word order."""
    raw = struct.pack(">" + FORMATS[data_type], value)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return words[::-1] if word_order == "little" else words


def device(slave: int, holding: dict[int, list[int]], inputs: dict[int, list[int]]) -> SimDevice:
    """A device with separate holding and input register blocks; other addresses are illegal."""

    def registers(block: dict[int, list[int]]) -> list[SimData]:
        return [
            SimData(address, values=values, datatype=SimType.REGISTERS)
            for address, values in sorted(block.items())
        ] or [SimData(0, datatype=SimType.INVALID)]

    bits = [SimData(0, values=False, datatype=SimType.BITS)]
    return SimDevice(id=slave, simdata=(bits, list(bits), registers(holding), registers(inputs)))


@dataclass
class Bus:
    """pymodbus's server on a free loopback port, with hooks that record every request and can
    corrupt every reply."""

    devices: list[SimDevice]
    framing: str = "tcp"  # "tcp": Modbus TCP; "rtu": RTU frames over the socket
    port: int = 0
    requests: list[tuple[int, int, int, int]] = field(default_factory=list)
    mangle: Callable[[bytes], bytes] | None = None  # applied to every reply frame sent
    short: bool = False  # send one register less than asked for
    server: ModbusTcpServer | ModbusSerialServer | None = None

    async def start(self) -> None:
        hooks: dict[str, Any] = {"trace_packet": self._packet, "trace_pdu": self._pdu}
        if self.framing == "tcp":
            self.server = ModbusTcpServer(self.devices, address=("127.0.0.1", self.port), **hooks)
        else:
            url = f"socket://127.0.0.1:{self.port}"
            self.server = ModbusSerialServer(self.devices, port=url, **hooks)
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.shutdown()

    def config(self, timeout_s: float = 1.0, retries: int = 0) -> ModbusConfig:
        if self.framing == "tcp":
            return ModbusConfig("tcp", "127.0.0.1", self.port, timeout_s=timeout_s, retries=retries)
        url = f"socket://127.0.0.1:{self.port}"
        return ModbusConfig("rtu", serial_port=url, timeout_s=timeout_s, retries=retries)

    def _pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.dev_id, pdu.function_code, pdu.address, pdu.count))
        elif self.short and getattr(pdu, "registers", None):
            pdu.registers = pdu.registers[:-1]
        return pdu

    def _packet(self, sending: bool, data: bytes) -> bytes:
        return self.mangle(data) if sending and self.mangle is not None else data


@contextlib.asynccontextmanager
async def serving(bus: Bus) -> AsyncIterator[Bus]:
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


# One device layout used by most tests: four adjacent holding values on slave 1 (one request),
# an input register on slave 1 (a second), a float on slave 2 (a third).
CHANNELS = (
    ModbusChannel("PM2.5", "ug/m3", 1, 0, data_type="float32"),
    ModbusChannel("SO2", "ug/m3", 1, 2, data_type="int16", scale=0.1, offset=-2.0),
    ModbusChannel("NO2", "ug/m3", 1, 3, data_type="uint32", word_order="little", scale=0.001),
    ModbusChannel("CO", "mg/m3", 1, 5, data_type="int32", scale=0.001, offset=2.0),
    ModbusChannel("O3", "ug/m3", 1, 100, kind="input"),
    ModbusChannel("PM10", "ug/m3", 2, 10, data_type="float32", word_order="little"),
)
RAW = {"PM2.5": 35.5, "SO2": 412, "NO2": 70000, "CO": -250, "O3": 87, "PM10": 80.25}
EXPECTED = [
    SensorValue(c.quantity, RAW[c.quantity] * c.scale + c.offset, c.unit, "N") for c in CHANNELS
]
REQUESTS = [(1, 3, 0, 7), (1, 4, 100, 1), (2, 3, 10, 2)]  # (slave, function, address, count)


def words(channel: ModbusChannel) -> list[int]:
    return to_registers(RAW[channel.quantity], channel.data_type, channel.word_order)


def standard_devices() -> list[SimDevice]:
    pm25, so2, no2, co, o3, pm10 = CHANNELS
    return [
        device(1, {0: words(pm25) + words(so2) + words(no2) + words(co)}, {100: words(o3)}),
        device(2, {10: words(pm10)}, {}),
    ]


def assert_consistent(driver: ModbusDriver, values: Sequence[SensorValue], faults: int) -> int:
    """Channel order kept, every value either normal and finite or NaN with flag D, and every
    D counted once in ``driver.errors``. Returns the running count of faults."""
    assert [(v.quantity, v.unit) for v in values] == [(c.quantity, c.unit) for c in CHANNELS]
    for v in values:
        assert (v.flag, math.isfinite(v.value)) in {("N", True), ("D", False)}, v
        assert v.flag == "N" or math.isnan(v.value)
    faults += sum(v.flag == "D" for v in values)
    assert sum(driver.errors.values()) == faults
    return faults


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("framing", FRAMINGS)
def test_reads_exact_values_with_one_request_per_adjacent_block(framing: str) -> None:
    async def scenario() -> None:
        bus = Bus(standard_devices(), framing)
        async with serving(bus), ModbusDriver(bus.config(), CHANNELS) as driver:
            assert await driver.read(T0) == EXPECTED
            assert bus.requests == REQUESTS  # six channels, three round trips
            assert driver.requests == driver.requests_per_read == 3
            assert await driver.read(T0 + 60) == EXPECTED
            assert bus.requests == REQUESTS * 2
            assert not driver.errors
            assert driver.connects == 1

    run(scenario())


def test_illegal_address_faults_only_that_channel(caplog: pytest.LogCaptureFixture) -> None:
    pm25, so2 = CHANNELS[0], CHANNELS[1]
    missing = ModbusChannel("NO2", "ug/m3", 1, 3)  # register 3 is not on the device
    o3 = CHANNELS[4]
    channels = (pm25, so2, missing, o3)
    devices = [device(1, {0: words(pm25) + words(so2)}, {100: words(o3)})]

    async def scenario() -> None:
        bus = Bus(devices)
        async with serving(bus), ModbusDriver(bus.config(), channels) as driver:
            with caplog.at_level(logging.WARNING, logger="edge._modbus"):
                first = await driver.read(T0)
            assert first[:2] == EXPECTED[:2] and first[3] == EXPECTED[4]
            assert first[2].flag == "D" and math.isnan(first[2].value)
            assert driver.errors == {"exception_illegal_address": 1}
            # the refused block is split once, then read channel by channel
            split = [(1, 3, 0, 2), (1, 3, 2, 1), (1, 3, 3, 1)]
            assert bus.requests == [(1, 3, 0, 4), *split, (1, 4, 100, 1)]
            assert driver.requests_per_read == 4
            bus.requests.clear()
            assert await driver.read(T0 + 60) == first
            assert len(bus.requests) == 4
            assert driver.errors == {"exception_illegal_address": 2}

    run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("exception_illegal_address" in m and "NO2" in m for m in warnings), warnings


def test_non_finite_floats_are_faults() -> None:
    f32 = "float32"
    channels = (
        ModbusChannel("PM2.5", "ug/m3", 1, 0, data_type=f32),  # NaN
        ModbusChannel("PM10", "ug/m3", 1, 2, data_type=f32),  # +inf
        ModbusChannel("SO2", "ug/m3", 1, 4, data_type=f32),  # -inf
        ModbusChannel("NO2", "ug/m3", 1, 6, data_type=f32, scale=1e300),  # overflows to inf
        ModbusChannel("CO", "mg/m3", 1, 8, data_type=f32),
    )
    raw = [math.nan, math.inf, -math.inf, 3e38, 0.75]
    registers = [r for value in raw for r in to_registers(value, f32)]

    async def scenario() -> None:
        bus = Bus([device(1, {0: registers}, {})])
        async with serving(bus), ModbusDriver(bus.config(), channels) as driver:
            values = await driver.read(T0)
            assert [v.flag for v in values] == ["D", "D", "D", "D", "N"]
            assert all(math.isnan(v.value) for v in values[:4]) and values[4].value == 0.75
            assert driver.errors == {NON_FINITE: 4}
            assert bus.requests == [(1, 3, 0, 10)]

    run(scenario())


def _bump_byte_count(frame: bytes) -> bytes:  # MBAP header (7) + function code, then count
    return frame[:8] + bytes([(frame[8] + 4) % 256]) + frame[9:] if len(frame) > 8 else frame


def _flip_last(frame: bytes) -> bytes:  # in RTU the last byte is CRC
    return frame[:-1] + bytes([frame[-1] ^ 0xFF]) if frame else frame


REPLY_FAULTS: list[Any] = [
    ("tcp", "short", None, SHORT_REPLY),
    ("tcp", "drop", lambda f: b"", TIMEOUT),
    ("tcp", "garbage", lambda f: b"\xff\xff\xff", BAD_REPLY),
    ("tcp", "truncated", lambda f: f[:-1], BAD_REPLY),
    ("tcp", "byte_count", _bump_byte_count, BAD_REPLY),
    pytest.param("rtu", "short", None, SHORT_REPLY, marks=needs_serial),
    pytest.param("rtu", "drop", lambda f: b"", TIMEOUT, marks=needs_serial),
    pytest.param("rtu", "garbage", lambda f: b"\xff\xff\xff", BAD_REPLY, marks=needs_serial),
    pytest.param("rtu", "truncated", lambda f: f[:-1], BAD_REPLY, marks=needs_serial),
    pytest.param("rtu", "crc", _flip_last, BAD_REPLY, marks=needs_serial),
]


@pytest.mark.parametrize(("framing", "fault", "mangle", "reason"), REPLY_FAULTS)
def test_bad_replies_fault_the_channels_and_reading_recovers(
    framing: str, fault: str, mangle: Callable[[bytes], bytes] | None, reason: str
) -> None:
    async def scenario() -> None:
        bus = Bus(standard_devices(), framing)
        async with serving(bus), ModbusDriver(bus.config(timeout_s=0.2), CHANNELS) as driver:
            bus.mangle, bus.short = mangle, fault == "short"
            values = await driver.read(T0)
            assert all(v.flag == "D" and math.isnan(v.value) for v in values)
            assert_consistent(driver, values, 0)
            # a reply that breaks the link (e.g. an undecodable byte count) also loses the
            # requests after it; every other fault is per request
            assert driver.errors[reason] >= 4, driver.errors
            assert set(driver.errors) <= {reason, CONNECTION_LOST}
            bus.mangle, bus.short = None, False
            assert await driver.read(T0 + 60) == EXPECTED

    run(scenario())


@pytest.mark.parametrize("framing", FRAMINGS)
def test_server_stopped_gives_faults_and_restarted_gives_values(framing: str) -> None:
    async def scenario() -> None:
        bus = Bus(standard_devices(), framing)
        async with serving(bus), ModbusDriver(bus.config(timeout_s=0.3), CHANNELS) as driver:
            assert await driver.read(T0) == EXPECTED
            await bus.stop()
            faults = assert_consistent(driver, await driver.read(T0 + 60), 0)
            assert faults == len(CHANNELS)  # whether the loss was noticed before or during
            before = driver.errors[CONNECT_FAILED]
            faults = assert_consistent(driver, await driver.read(T0 + 120), faults)
            assert driver.errors[CONNECT_FAILED] - before == len(CHANNELS)
            await bus.start()  # same port
            assert await driver.read(T0 + 180) == EXPECTED
            assert driver.connects == 2

    run(scenario())


def test_device_unreachable_at_start_is_read_once_it_appears() -> None:
    async def scenario() -> None:
        bus = Bus(standard_devices(), port=free_port())
        async with ModbusDriver(bus.config(timeout_s=0.3), CHANNELS) as driver:
            values = await driver.read(T0)
            assert assert_consistent(driver, values, 0) == len(CHANNELS)
            assert driver.errors == {CONNECT_FAILED: len(CHANNELS)}
            async with serving(bus):
                assert await driver.read(T0 + 60) == EXPECTED
            assert driver.connects == 1

    run(scenario())


def test_read_outside_async_with_is_a_programming_error() -> None:
    driver = ModbusDriver(ModbusConfig("tcp", "127.0.0.1", 1), CHANNELS)
    with pytest.raises(RuntimeError, match="async with"):
        run(driver.read(T0))


# ---------------------------------------------------------------- RTU on a serial line


@contextlib.asynccontextmanager
async def null_modem() -> AsyncIterator[tuple[str, str]]:
    """Two pseudo-terminals joined like a null-modem cable: what is written to one side's
    serial device is read from the other's."""
    loop = asyncio.get_running_loop()
    (m1, s1), (m2, s2) = os.openpty(), os.openpty()
    for fd in (s1, s2):
        tty.setraw(fd)

    def forward(src: int, dst: int) -> Callable[[], None]:
        return lambda: os.write(dst, os.read(src, 4096))

    loop.add_reader(m1, forward(m1, m2))
    loop.add_reader(m2, forward(m2, m1))
    try:
        yield os.ttyname(s1), os.ttyname(s2)
    finally:
        loop.remove_reader(m1)
        loop.remove_reader(m2)
        for fd in (m1, s1, m2, s2):
            os.close(fd)


@needs_serial
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals")
def test_rtu_over_a_serial_line() -> None:
    missing = ModbusChannel("NH3-N", "mg/L", 2, 12)  # past slave 2's registers
    channels = (*CHANNELS, missing)
    line = {"baudrate": 19200, "parity": "N", "stopbits": 1, "bytesize": 8}  # ptys refuse parity

    async def scenario() -> None:
        async with null_modem() as (server_tty, client_tty):
            bus = Bus(standard_devices())
            hooks: dict[str, Any] = {"trace_packet": bus._packet, "trace_pdu": bus._pdu}
            server = ModbusSerialServer(bus.devices, port=server_tty, **line, **hooks)
            await server.serve_forever(background=True)
            config = ModbusConfig("rtu", serial_port=client_tty, timeout_s=0.3, **line)
            try:
                async with ModbusDriver(config, channels) as driver:
                    values = await driver.read(T0)
                    assert values[:-1] == EXPECTED
                    assert values[-1].flag == "D" and driver.errors == {
                        "exception_illegal_address": 1
                    }
                    assert bus.requests == [
                        *REQUESTS[:2],
                        (2, 3, 10, 3),
                        (2, 3, 10, 2),
                        (2, 3, 12, 1),
                    ]
                    bus.mangle = _flip_last  # a CRC error on every reply
                    assert all(v.flag == "D" for v in await driver.read(T0 + 60))
                    assert driver.errors[BAD_REPLY] == len(channels)
                    bus.mangle = None
                    assert (await driver.read(T0 + 120))[:-1] == EXPECTED
            finally:
                await server.shutdown()

    run(scenario())


@needs_serial
@pytest.mark.parametrize("kind", ["missing", "not_a_tty"])
def test_serial_port_that_cannot_be_opened_gives_faults(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "ttyUSB9"
    if kind == "not_a_tty":
        path.write_bytes(b"")  # pyserial's termios set-up fails with termios.error, not OSError
    config = ModbusConfig("rtu", serial_port=str(path), timeout_s=0.3)

    async def scenario() -> None:
        async with ModbusDriver(config, CHANNELS) as driver:
            for t in (T0, T0 + 60):
                values = await driver.read(t)
                assert all(v.flag == "D" and math.isnan(v.value) for v in values)
            assert driver.errors == {CONNECT_FAILED: 2 * len(CHANNELS)}

    run(scenario())


# ---------------------------------------------------------------- replies mutated at random


def mutate(frame: bytes, mutation: tuple[str, Any]) -> bytes:
    kind, arg = mutation
    if kind == "flip":
        out = bytearray(frame)
        for at, byte in arg:
            if out:
                out[at % len(out)] = byte
        return bytes(out)
    if kind == "cut":
        return frame[: arg % (len(frame) + 1)]
    if kind == "append":
        return frame + arg
    return arg  # replace


MUTATIONS = st.one_of(
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=4),
    ),
    st.tuples(st.just("cut"), st.integers(0, 63)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("replace"), st.binary(max_size=64)),
)


@pytest.mark.parametrize("framing", FRAMINGS)
@settings(max_examples=20, deadline=None)
@given(mutation=MUTATIONS)
def test_mutated_replies_never_raise_and_reading_recovers(
    framing: str, mutation: tuple[str, Any]
) -> None:
    async def scenario() -> None:
        bus = Bus(standard_devices()[:1], framing)  # slave 1 only: two requests
        channels = CHANNELS[:5]
        async with serving(bus), ModbusDriver(bus.config(timeout_s=0.1), channels) as driver:
            bus.mangle = lambda frame: mutate(frame, mutation)
            values = await driver.read(T0)
            assert [v.quantity for v in values] == [c.quantity for c in channels]
            assert all((v.flag == "N") == math.isfinite(v.value) for v in values)
            assert all(v.flag in "ND" for v in values)
            assert sum(driver.errors.values()) == sum(v.flag == "D" for v in values)
            bus.mangle = None
            assert await driver.read(T0 + 60) == EXPECTED[:5]

    run(scenario())


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("data_type", "word_order", "registers", "value"),
    [
        ("float32", "big", [0x420E, 0x0000], 35.5),
        ("float32", "little", [0x0000, 0x420E], 35.5),
        ("int16", "big", [0xFFFF], -1),
        ("uint16", "big", [0xFFFF], 65535),
        ("uint32", "big", [0x0001, 0x1170], 70000),
        ("uint32", "little", [0x1170, 0x0001], 70000),
        ("int32", "big", [0xFFFF, 0xFF06], -250),
        ("int32", "little", [0xFF06, 0xFFFF], -250),
    ],
)
def test_decode_known_registers(
    data_type: Any, word_order: Any, registers: list[int], value: float
) -> None:
    assert decode(registers, data_type, word_order) == value
    assert to_registers(value, data_type, word_order) == registers


VALUES = {
    "uint16": st.integers(0, 2**16 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "float32": st.floats(width=32),
}
TYPES_AND_ORDERS = [(t, o) for t in VALUES for o in ("big", "little")]


@pytest.mark.parametrize(("data_type", "word_order"), TYPES_AND_ORDERS)
@given(data=st.data())
def test_decode_round_trips_values_through_registers(
    data_type: Any, word_order: Any, data: st.DataObject
) -> None:
    value = data.draw(VALUES[data_type])
    decoded = decode(to_registers(value, data_type, word_order), data_type, word_order)
    assert decoded == value or (math.isnan(value) and math.isnan(decoded))


@pytest.mark.parametrize(("data_type", "word_order"), TYPES_AND_ORDERS)
@given(data=st.data())
def test_decode_round_trips_registers_through_values(
    data_type: Any, word_order: Any, data: st.DataObject
) -> None:
    width = 1 if data_type.endswith("16") else 2
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=width, max_size=width))
    value = decode(registers, data_type, word_order)
    if data_type != "float32":
        assert to_registers(int(value), data_type, word_order) == registers
    elif not math.isnan(value):  # NaN payload bits are not kept through a Python float
        assert to_registers(value, data_type, word_order) == registers


@pytest.mark.parametrize("registers", [[], [1, 2, 3], [0x10000, 0], [-1, 0]])
def test_decode_rejects_registers_that_do_not_fit(registers: list[int]) -> None:
    with pytest.raises(ValueError):
        decode(registers, "float32", "big")


# ---------------------------------------------------------------- grouping


def test_plan_groups_adjacent_registers_of_one_slave_and_kind() -> None:
    assert [(b.slave, b.kind, b.address, b.count) for b in plan_blocks(CHANNELS)] == [
        (1, "holding", 0, 7),
        (1, "input", 100, 1),
        (2, "holding", 10, 2),
    ]


def test_plan_never_asks_for_more_than_125_registers() -> None:
    channels = [ModbusChannel("PM2.5", "ug/m3", 1, 2 * i, data_type="float32") for i in range(70)]
    assert [(b.address, b.count) for b in plan_blocks(channels)] == [(0, 124), (124, 16)]


CHANNEL_LISTS = st.lists(
    st.builds(
        ModbusChannel,
        quantity=st.just("PM2.5"),
        unit=st.just("ug/m3"),
        slave=st.integers(1, 3),
        register=st.integers(0, 400),
        kind=st.sampled_from(["holding", "input"]),
        data_type=st.sampled_from(list(FORMATS)),
    ),
    max_size=40,
)


@given(channels=CHANNEL_LISTS)
def test_plan_covers_every_channel_once_without_gaps(channels: list[ModbusChannel]) -> None:
    blocks = plan_blocks(channels)
    assert sorted(i for b in blocks for i in b.channels) == list(range(len(channels)))
    for block in blocks:
        assert 1 <= block.count <= MAX_BLOCK_REGISTERS
        covered: set[int] = set()
        for i in block.channels:
            ch = channels[i]
            assert (ch.slave, ch.kind) == (block.slave, block.kind)
            assert (
                block.address <= ch.register
                and ch.register + ch.width <= block.address + block.count
            )
            covered |= set(range(ch.register, ch.register + ch.width))
        assert covered == set(range(block.address, block.address + block.count))  # no gap read
    for first, second in itertools.pairwise(blocks):
        if (first.slave, first.kind) == (second.slave, second.kind):  # could not be merged
            end = first.address + first.count
            head = channels[second.channels[0]]
            assert head.register > end or head.register + head.width - first.address > 125


# ---------------------------------------------------------------- configuration

TCP_SECTION: dict[str, Any] = {
    "kind": "modbus",
    "transport": "tcp",
    "host": "192.0.2.10",
    "port": 1502,
    "timeout_s": 0.5,
    "retries": 2,
}
RTU_SECTION: dict[str, Any] = {
    "kind": "modbus",
    "transport": "rtu",
    "port": "/dev/ttyUSB0",
    "baudrate": 19200,
    "parity": "E",
    "stopbits": 2,
    "bytesize": 8,
}
CHANNEL: dict[str, Any] = {
    "slave": 3,
    "register": 100,
    "kind": "input",
    "type": "uint32",
    "word_order": "little",
    "scale": 0.1,
    "offset": -2,
}


def load_channel(raw: Any, transport: Any = "tcp", where: str = "sensors[0].channel") -> Any:
    return ModbusChannel.from_dict(raw, where, quantity="O3", unit="ug/m3", transport=transport)


def test_valid_sections_and_channels_load() -> None:
    assert ModbusConfig.from_dict(TCP_SECTION, "drivers.gas") == ModbusConfig(
        "tcp", "192.0.2.10", 1502, timeout_s=0.5, retries=2
    )
    assert ModbusConfig.from_dict(RTU_SECTION, "drivers.gas") == ModbusConfig(
        "rtu", serial_port="/dev/ttyUSB0", baudrate=19200, parity="E", stopbits=2
    )
    assert ModbusConfig.from_dict({"transport": "tcp", "host": "h"}, "") == ModbusConfig("tcp", "h")
    assert load_channel(CHANNEL) == ModbusChannel(
        "O3", "ug/m3", 3, 100, "input", "uint32", "little", 0.1, -2.0
    )
    assert load_channel(7) == load_channel({"register": 7}) == ModbusChannel("O3", "ug/m3", 1, 7)


def test_a_modbus_driver_from_the_agent_configuration() -> None:
    raw = {
        "node": "yy-0001",
        "place": {"county": "yiyuan", "township": "nanma", "village": "dongli"},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "outbox": {"path": "outbox.sqlite"},
        "drivers": {"gas": RTU_SECTION},
        "sensors": [
            {
                "driver": "gas",
                "channel": {"register": 0, "type": "float32"},
                "quantity": "NO2",
                "unit": "ppb",
            },
            {"driver": "gas", "channel": 2, "quantity": "CO", "unit": "ppm"},
        ],
    }
    config = parse_agent_config(raw)
    modbus = ModbusConfig.from_dict(config.drivers["gas"], "drivers.gas")
    channels = [
        ModbusChannel.from_dict(
            s.channel,
            f"sensors[{i}].channel",
            quantity=s.quantity,
            unit=s.unit,
            transport=modbus.transport,
        )
        for i, s in enumerate(config.sensors)
        if s.driver == "gas"
    ]
    assert modbus.serial_port == "/dev/ttyUSB0"
    assert channels == [
        ModbusChannel("NO2", "ppb", 1, 0, data_type="float32"),
        ModbusChannel("CO", "ppm", 1, 2),
    ]


DELETE = object()


def changed(base: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    raw = dict(base)
    if value is DELETE:
        del raw[key]
    else:
        raw[key] = value
    return raw


def case_id(base: dict[str, Any], key: str, value: Any) -> str:
    return f"{base.get('transport', 'channel')}-{key}={'del' if value is DELETE else value!r}"


BAD_SECTIONS: list[tuple[dict[str, Any], str, Any]] = [
    (TCP_SECTION, "kind", "hj212"),
    (TCP_SECTION, "transport", "udp"),
    (TCP_SECTION, "transport", DELETE),
    (TCP_SECTION, "host", DELETE),
    (TCP_SECTION, "host", ""),
    (TCP_SECTION, "host", 10),
    (TCP_SECTION, "port", 0),
    (TCP_SECTION, "port", 65536),
    (TCP_SECTION, "port", "502"),
    (TCP_SECTION, "port", True),
    (TCP_SECTION, "port", None),
    (TCP_SECTION, "baudrate", 9600),  # an RTU key on TCP
    (TCP_SECTION, "timout_s", 1.0),  # a misspelt key
    (TCP_SECTION, "timeout_s", 0),
    (TCP_SECTION, "timeout_s", math.nan),
    (TCP_SECTION, "timeout_s", math.inf),
    (TCP_SECTION, "timeout_s", 10**400),
    (TCP_SECTION, "retries", -1),
    (TCP_SECTION, "retries", 1.5),
    (RTU_SECTION, "port", DELETE),
    (RTU_SECTION, "port", " "),
    (RTU_SECTION, "port", 502),
    (RTU_SECTION, "host", "192.0.2.10"),
    (RTU_SECTION, "parity", "X"),
    (RTU_SECTION, "stopbits", 3),
    (RTU_SECTION, "bytesize", 9),
    (RTU_SECTION, "baudrate", 0),
]


@pytest.mark.parametrize(
    ("base", "key", "value"), BAD_SECTIONS, ids=[case_id(*case) for case in BAD_SECTIONS]
)
def test_every_invalid_section_field_is_named(base: dict[str, Any], key: str, value: Any) -> None:
    with pytest.raises(ModbusConfigError) as caught:
        ModbusConfig.from_dict(changed(base, key, value), "drivers.gas")
    assert str(caught.value).startswith(f"drivers.gas.{key}: "), caught.value


BAD_CHANNELS: list[tuple[str, Any, str]] = [
    ("register", 70000, "tcp"),
    ("register", -1, "tcp"),
    ("register", 2.0, "tcp"),
    ("register", DELETE, "tcp"),
    ("register", 65535, "tcp"),  # a uint32 there runs past the end
    ("kind", "coil", "tcp"),
    ("type", "float64", "tcp"),
    ("word_order", "middle", "tcp"),
    ("scale", 0, "tcp"),
    ("scale", "0.1", "tcp"),
    ("scale", math.nan, "tcp"),
    ("offset", -math.inf, "tcp"),
    ("offset", False, "tcp"),
    ("slave", 256, "tcp"),
    ("slave", -1, "tcp"),
    ("slave", None, "tcp"),
    ("slave", 0, "rtu"),  # broadcast: nobody answers
    ("slave", 248, "rtu"),
    ("adress", 3, "tcp"),
]


@pytest.mark.parametrize(("key", "value", "transport"), BAD_CHANNELS)
def test_every_invalid_channel_field_is_named(key: str, value: Any, transport: str) -> None:
    with pytest.raises(ModbusConfigError) as caught:
        load_channel(changed(CHANNEL, key, value), transport)
    assert str(caught.value).startswith(f"sensors[0].channel.{key}: "), caught.value


def test_error_messages_read_well() -> None:
    with pytest.raises(ModbusConfigError) as caught:
        load_channel({"register": 70000}, where="sensors[2].channel")
    assert str(caught.value) == "sensors[2].channel.register: must be 0..65535, got 70000"
    with pytest.raises(
        ModbusConfigError, match=r"^sensors\[1\]\.channel: must be a mapping, got str$"
    ):
        load_channel("PM2.5", where="sensors[1].channel")
    with pytest.raises(ModbusConfigError, match=r"^port: must be 1\.\.65535, got 0$"):
        ModbusConfig.from_dict({"transport": "tcp", "host": "h", "port": 0}, "")


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["tcp", "rtu", "modbus", "holding", "input", "float32", "little", "N", 1, 2])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
SECTION_KEYS = ["kind", "transport", "host", "port", "baudrate", "parity", "stopbits",
                "bytesize", "timeout_s", "retries"]  # fmt: skip
CHANNEL_KEYS = list(CHANNEL)
RANDOM_SECTIONS = st.dictionaries(st.sampled_from(SECTION_KEYS) | st.text(max_size=6), JSON)
RANDOM_CHANNELS = st.dictionaries(st.sampled_from(CHANNEL_KEYS) | st.text(max_size=6), JSON)


@settings(max_examples=300)
@given(raw=RANDOM_SECTIONS | JSON)
def test_random_sections_raise_only_config_errors(raw: Any) -> None:
    with contextlib.suppress(ModbusConfigError):
        assert ModbusConfig.from_dict(raw, "drivers.gas").transport in ("tcp", "rtu")


@settings(max_examples=300)
@given(raw=RANDOM_CHANNELS | JSON, transport=st.sampled_from(["tcp", "rtu"]))
def test_random_channels_raise_only_config_errors(raw: Any, transport: str) -> None:
    with contextlib.suppress(ModbusConfigError):
        assert 0 <= load_channel(raw, transport).register <= 65535


MUTABLE = [
    *((TCP_SECTION, key) for key in TCP_SECTION if key != "transport"),
    *((RTU_SECTION, key) for key in RTU_SECTION if key != "transport"),
]


@settings(max_examples=300)
@given(target=st.sampled_from(MUTABLE), value=JSON)
def test_one_mutated_section_field_is_accepted_or_named(
    target: tuple[dict[str, Any], str], value: Any
) -> None:
    base, key = target
    try:
        ModbusConfig.from_dict(changed(base, key, value), "drivers.gas")
    except ModbusConfigError as exc:
        assert str(exc).startswith(f"drivers.gas.{key}: "), exc


@settings(max_examples=300)
@given(key=st.sampled_from(CHANNEL_KEYS), value=JSON, transport=st.sampled_from(["tcp", "rtu"]))
def test_one_mutated_channel_field_is_accepted_or_named(
    key: str, value: Any, transport: str
) -> None:
    try:
        load_channel(changed(CHANNEL, key, value), transport)
    except ModbusConfigError as exc:
        assert str(exc).startswith(f"sensors[0].channel.{key}: "), exc
