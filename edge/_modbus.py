"""Modbus RTU/TCP sensor driver, the one adapter module that imports pymodbus.

A node's configuration names, per channel, where the value lives on the bus (slave, register,
register kind, data type, word order) and how the raw number becomes the sensor's value in its
unit (``raw * scale + offset``). The agent converts that unit to the canonical one and applies
calibration; this driver does neither.

Channels that sit next to each other on the same slave and register kind are read with one
request (up to 125 registers, the limit of function codes 03/04 in the Modbus Application
Protocol v1.1b3, section 6.3). A block that a device refuses as an illegal address is split into
one request per channel, once, so that one mis-configured register does not blank its neighbours.

Nothing that happens on the bus raises out of ``read``: a channel that cannot be read is NaN with
HJ 212 flag "D", counted in ``errors`` by reason and logged at warning level, and a lost
connection is re-opened on the next read.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, cast, get_args

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge._driver import SensorValue

log = logging.getLogger(__name__)

Transport = Literal["tcp", "rtu"]
RegisterKind = Literal["holding", "input"]
DataType = Literal["uint16", "int16", "uint32", "int32", "float32"]
WordOrder = Literal["big", "little"]
Parity = Literal["N", "E", "O"]

MAX_BLOCK_REGISTERS = 125  # read holding/input registers: at most 125 per request (spec 6.3/6.4)
FAULT = "D"  # HJ 212 data flag: instrument fault
NORMAL = "N"

# Reasons a channel reading is lost, the keys of ``ModbusDriver.errors``.
CONNECT_FAILED = "connect_failed"  # the link could not be (re)opened for this read
CONNECTION_LOST = "connection_lost"  # the link dropped during this read
TIMEOUT = "timeout"  # no reply byte within timeout_s, after the retries
BAD_REPLY = "bad_reply"  # bytes came back but no valid reply to this request (framing, CRC, ids)
SHORT_REPLY = "short_reply"  # a valid reply with fewer registers than asked for
NON_FINITE = "non_finite"  # a float32 register holding NaN or infinity
DECODE = "decode"  # the registers could not be converted to the data type

# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7); the reason counted for
# an exception response is "exception_" + the name.
EXCEPTION_NAMES = {
    1: "illegal_function",
    2: "illegal_address",
    3: "illegal_value",
    4: "device_failure",
    5: "acknowledge",
    6: "device_busy",
    8: "memory_parity_error",
    10: "gateway_path_unavailable",
    11: "gateway_no_response",
}
# A block refused for its address or count is retried channel by channel.
_SPLIT_REASONS = frozenset(f"exception_{EXCEPTION_NAMES[code]}" for code in (2, 3))

_WIDTH: dict[DataType, int] = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
_DATATYPE = {
    "uint16": AsyncModbusTcpClient.DATATYPE.UINT16,
    "int16": AsyncModbusTcpClient.DATATYPE.INT16,
    "uint32": AsyncModbusTcpClient.DATATYPE.UINT32,
    "int32": AsyncModbusTcpClient.DATATYPE.INT32,
    "float32": AsyncModbusTcpClient.DATATYPE.FLOAT32,
}
_FUNCTION_CODE: dict[RegisterKind, int] = {"holding": 3, "input": 4}


class ModbusConfigError(ValueError):
    """A Modbus driver configuration that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class ModbusChannel:
    """One sensor value on the bus and how to turn its registers into a number.

    Args:
        quantity: a quantity of tianwang/data/quantities.yaml, e.g. "PM2.5".
        unit: the unit the sensor reports the value in (the agent converts it).
        slave: the Modbus slave (unit / device) id.
        register: address of the first register, 0-based as on the wire.
        kind: "holding" (function 03) or "input" (function 04) registers.
        data_type: how the register(s) are read; 32-bit types take two registers.
        word_order: "big" when the first register holds the high word, "little" otherwise.
        scale: factor applied to the raw number.
        offset: added after scaling: value = raw * scale + offset.
    """

    quantity: str
    unit: str
    slave: int
    register: int
    kind: RegisterKind = "holding"
    data_type: DataType = "uint16"
    word_order: WordOrder = "big"
    scale: float = 1.0
    offset: float = 0.0

    @property
    def width(self) -> int:
        """Number of registers the value takes."""
        return _WIDTH[self.data_type]

    @classmethod
    def from_dict(
        cls, raw: Any, where: str, *, quantity: str, unit: str, transport: Transport = "tcp"
    ) -> ModbusChannel:
        """Validate the ``channel`` of a sensor entry of the agent configuration.

        ``raw`` is a mapping with the keys slave (default 1), register, kind ("holding"),
        type ("uint16"), word_order ("big"), scale (1) and offset (0); a bare integer is
        short for ``{register: n}``. ``quantity`` and ``unit`` come from the sensor entry, which
        the agent configuration has already checked; ``where`` prefixes field names in errors,
        e.g. "sensors[2].channel".
        """
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"register": raw}
        fields = _Fields(raw, where, _CHANNEL_KEYS)
        data_type = fields.choice("type", get_args(DataType), "uint16")
        register = fields.integer("register", 0, 65535)
        if register + _WIDTH[data_type] - 1 > 65535:
            raise fields.error("register", f"a {data_type} at {register} runs past 65535")
        low, high = (1, 247) if transport == "rtu" else (0, 255)  # 0 is broadcast on RTU
        scale = fields.number("scale", 1.0)
        if scale == 0:
            raise fields.error("scale", "must not be 0")
        return cls(
            quantity=quantity,
            unit=unit,
            slave=fields.integer("slave", low, high, 1),
            register=register,
            kind=fields.choice("kind", get_args(RegisterKind), "holding"),
            data_type=data_type,
            word_order=fields.choice("word_order", get_args(WordOrder), "big"),
            scale=scale,
            offset=fields.number("offset", 0.0),
        )


@dataclass(frozen=True, slots=True)
class ModbusConfig:
    """How to reach the bus: Modbus TCP (host, port) or RTU on a serial line.

    Args:
        transport: "tcp" or "rtu".
        host: TCP host name or address.
        port: TCP port.
        serial_port: RTU serial device, e.g. "/dev/ttyUSB0" (any pyserial URL works); the
            configuration key is ``port``, as in pymodbus and Home Assistant.
        baudrate: RTU line speed, bits per second.
        parity: RTU parity, "N", "E" or "O".
        stopbits: RTU stop bits, 1 or 2.
        bytesize: RTU data bits, 7 or 8.
        timeout_s: seconds to wait for a connection or for a reply.
        retries: times a request without reply is sent again before the channel is faulted.
    """

    transport: Transport
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: Parity = "N"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 1.0
    retries: int = 1

    @property
    def endpoint(self) -> str:
        """Where the driver talks to, for logs."""
        return f"{self.host}:{self.port}" if self.transport == "tcp" else self.serial_port

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ModbusConfig:
        """Validate a Modbus driver section of the agent configuration (``drivers.<name>``).

        Keys: kind ("modbus", optional), transport ("tcp" or "rtu"), timeout_s (1), retries
        (1); for tcp host and port (502); for rtu port (the serial device), baudrate (9600),
        parity ("N"), stopbits (1) and bytesize (8). ``where`` prefixes field names in errors.

        Raises:
            ModbusConfigError: naming the first bad field, e.g. "drivers.gas.port: must be
                1..65535, got 0"; nothing else, whatever ``raw`` holds.
        """
        fields = _Fields(raw, where, _SECTION_KEYS)
        if raw.get("kind", "modbus") != "modbus":
            raise fields.error("kind", f"must be modbus, got {raw['kind']!r}")
        transport = fields.choice("transport", get_args(Transport), None)
        for key in sorted(_RTU_KEYS if transport == "tcp" else _TCP_KEYS):
            if key in raw:
                raise fields.error(key, f"not used with transport {transport!r}")
        common = {
            "timeout_s": fields.number("timeout_s", 1.0, low=0.001, high=60.0),
            "retries": fields.integer("retries", 0, 10, 1),
        }
        if transport == "tcp":
            return cls(
                transport="tcp",
                host=fields.text("host"),
                port=fields.integer("port", 1, 65535, 502),
                **common,
            )
        return cls(
            transport="rtu",
            serial_port=fields.text("port"),
            baudrate=fields.integer("baudrate", 300, 4_000_000, 9600),
            parity=fields.choice("parity", get_args(Parity), "N"),
            stopbits=fields.integer("stopbits", 1, 2, 1),
            bytesize=fields.integer("bytesize", 7, 8, 8),
            **common,
        )


_CHANNEL_KEYS = frozenset(("slave", "register", "kind", "type", "word_order", "scale", "offset"))
_TCP_KEYS = frozenset(("host",))
_RTU_KEYS = frozenset(("baudrate", "parity", "stopbits", "bytesize"))
_SECTION_KEYS = frozenset(
    {"kind", "transport", "port", "timeout_s", "retries"} | _TCP_KEYS | _RTU_KEYS
)


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class _Fields:
    """Typed access to one mapping of a configuration, raising ModbusConfigError by name."""

    def __init__(self, raw: Any, where: str, known: frozenset[str]) -> None:
        if not isinstance(raw, dict):
            kind = type(raw).__name__
            raise ModbusConfigError(f"{where or 'modbus'}: must be a mapping, got {kind}")
        for key in raw:
            if key not in known:
                raise ModbusConfigError(f"{_path(where, str(key))}: unknown key")
        self.raw = raw
        self.where = where

    def error(self, key: str, message: str) -> ModbusConfigError:
        return ModbusConfigError(f"{_path(self.where, key)}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        value = self.raw.get(key, default)
        if value is None:
            raise self.error(key, "missing")
        return value

    def text(self, key: str) -> str:
        value = self._get(key, None)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None) -> Any:
        value = self._get(key, default)
        if not isinstance(value, str) or value not in allowed:
            raise self.error(key, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"must be {low}..{high}, got {value!r}")
        return value

    def number(
        self, key: str, default: float, low: float = -math.inf, high: float = math.inf
    ) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            raise self.error(key, f"must be a finite number, got {value!r}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise self.error(key, f"must be a finite number in [{low}, {high}], got {value!r}")
        return number


def decode(registers: Sequence[int], data_type: DataType, word_order: WordOrder) -> float:
    """The number ``registers`` hold, as a float.

    Uses pymodbus's own ``convert_from_registers`` (a classmethod of every 3.x client) rather
    than hand-written struct code. Raises ValueError when the registers do not fit the type.
    """
    if len(registers) != _WIDTH[data_type]:
        raise ValueError(f"{data_type} takes {_WIDTH[data_type]} registers, got {len(registers)}")
    try:
        value = AsyncModbusTcpClient.convert_from_registers(
            list(registers), _DATATYPE[data_type], word_order=word_order
        )
    except (ModbusException, OverflowError, TypeError) as exc:
        raise ValueError(f"registers {list(registers)} are not a {data_type}: {exc}") from exc
    if not isinstance(value, int | float):
        raise ValueError(f"registers {list(registers)} gave {value!r}, not a number")
    return float(value)


@dataclass(frozen=True, slots=True)
class _Block:
    """One read request: ``count`` registers from ``address``, covering some channels."""

    slave: int
    kind: RegisterKind
    address: int
    count: int
    channels: tuple[int, ...]  # indices into the driver's channel list


def _single(channels: Sequence[ModbusChannel], i: int) -> _Block:
    ch = channels[i]
    return _Block(ch.slave, ch.kind, ch.register, ch.width, (i,))


def plan_blocks(channels: Sequence[ModbusChannel]) -> list[_Block]:
    """Group channels that are adjacent (or overlap) on the same slave and register kind into
    as few requests as possible, none longer than MAX_BLOCK_REGISTERS."""
    order = sorted(
        range(len(channels)),
        key=lambda i: (channels[i].slave, channels[i].kind, channels[i].register),
    )
    blocks: list[_Block] = []
    for i in order:
        ch = channels[i]
        last = blocks[-1] if blocks else None
        if last is not None and (last.slave, last.kind) == (ch.slave, ch.kind):
            last_end = last.address + last.count
            count = max(ch.register + ch.width, last_end) - last.address
            if ch.register <= last_end and count <= MAX_BLOCK_REGISTERS:
                blocks[-1] = _Block(ch.slave, ch.kind, last.address, count, (*last.channels, i))
                continue
        blocks.append(_single(channels, i))
    return blocks


class ModbusDriver:
    """A polled driver over Modbus TCP or RTU (pymodbus async clients).

    Use as ``async with ModbusDriver(config, channels) as driver: await driver.read(t)``.
    Entering does not fail when the device is unreachable: reads then give NaN/"D" until it is.

    Attributes:
        errors: channel readings lost, by reason (the module's reason constants, or
            "exception_<name>" for a Modbus exception response); their sum is the number of
            NaN/"D" values ``read`` has returned.
        requests: read requests sent.
        connects: successful connections made (the first one and every reconnect).
    """

    def __init__(self, config: ModbusConfig, channels: Sequence[ModbusChannel]) -> None:
        self.config = config
        self.channels = tuple(channels)
        self.errors: Counter[str] = Counter()
        self.requests = 0
        self.connects = 0
        self._blocks = plan_blocks(self.channels)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._rx_bytes = 0

    async def __aenter__(self) -> Self:
        self._client = self._make_client()
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def requests_per_read(self) -> int:
        """Requests one read currently takes, when every block is answered."""
        return len(self._blocks)

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        # reconnect_delay=0 turns off pymodbus's background reconnect: we reconnect on the next
        # read instead, so a read never races a reconnect task.
        c = self.config
        common: dict[str, Any] = {
            "timeout": c.timeout_s,
            "retries": c.retries,
            "reconnect_delay": 0,
            "trace_packet": self._trace_packet,
        }
        if c.transport == "tcp":
            return AsyncModbusTcpClient(c.host, port=c.port, **common)
        return AsyncModbusSerialClient(
            c.serial_port,
            baudrate=c.baudrate,
            parity=c.parity,
            stopbits=c.stopbits,
            bytesize=c.bytesize,
            **common,
        )

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Bytes received tell a reply pymodbus could not decode apart from no reply at all.
        if not sending:
            self._rx_bytes += len(data)
        return data

    async def _connect(self) -> bool:
        assert self._client is not None
        if self._client.connected:
            return True
        try:
            ok = await self._client.connect()
        except Exception as exc:
            # pymodbus catches OSError only, and pyserial raises others when it opens or sets
            # up a port (termios.error for a path that is not a tty or for settings the line
            # refuses, ValueError): all mean "cannot connect", none may stop the sampling.
            log.warning("modbus %s: cannot open: %r", self.config.endpoint, exc)
            return False
        if ok:
            self.connects += 1
        else:
            log.warning("modbus %s: cannot connect", self.config.endpoint)
        return ok

    async def read(self, sample_time: float) -> list[SensorValue]:
        """Sample every channel, in configuration order; see ``Driver.read``."""
        if self._client is None:
            raise RuntimeError("ModbusDriver.read outside 'async with'")
        async with self._lock:
            values: list[SensorValue | None] = [None] * len(self.channels)
            if not await self._connect():
                self._fault(range(len(self.channels)), CONNECT_FAILED, values)
            else:
                await self._read_blocks(values)
            assert None not in values, "a channel was neither read nor faulted"
            return cast(list[SensorValue], values)

    async def _read_blocks(self, values: list[SensorValue | None]) -> None:
        pending = list(self._blocks)
        while pending:
            block = pending.pop(0)
            outcome = await self._request(block)
            if not isinstance(outcome, str):
                self._decode_block(block, outcome, values)
                continue
            if outcome in _SPLIT_REASONS and len(block.channels) > 1:
                singles = self._split(block, outcome)
                pending[:0] = singles
                continue
            self._log(block, outcome)
            self._fault(block.channels, outcome, values)
            if outcome == CONNECTION_LOST:
                for rest in pending:
                    self._fault(rest.channels, CONNECTION_LOST, values)
                return

    def _split(self, block: _Block, reason: str) -> list[_Block]:
        log.warning(
            "modbus %s: slave %d refused %s registers %d..%d (%s); reading them one by one",
            self.config.endpoint,
            block.slave,
            block.kind,
            block.address,
            block.address + block.count - 1,
            reason,
        )
        singles = [_single(self.channels, i) for i in block.channels]
        at = self._blocks.index(block)
        self._blocks[at : at + 1] = singles
        return singles

    async def _request(self, block: _Block) -> list[int] | str:
        """The block's registers, or the reason it could not be read."""
        assert self._client is not None
        read = (
            self._client.read_holding_registers
            if block.kind == "holding"
            else self._client.read_input_registers
        )
        self.requests += 1
        rx_before = self._rx_bytes
        try:
            response = await read(block.address, count=block.count, device_id=block.slave)
        except ConnectionException:
            return CONNECTION_LOST
        except ModbusIOException:
            return BAD_REPLY if self._rx_bytes > rx_before else TIMEOUT
        except (ModbusException, OSError):
            return CONNECTION_LOST if not self._client.connected else BAD_REPLY
        return _check_reply(block, response)

    def _decode_block(
        self, block: _Block, registers: list[int], values: list[SensorValue | None]
    ) -> None:
        for i in block.channels:
            ch = self.channels[i]
            start = ch.register - block.address
            try:
                raw = decode(registers[start : start + ch.width], ch.data_type, ch.word_order)
            except ValueError:
                self._log(_single(self.channels, i), DECODE)
                self._fault([i], DECODE, values)
                continue
            value = raw * ch.scale + ch.offset
            if not math.isfinite(value):
                self._log(_single(self.channels, i), NON_FINITE)
                self._fault([i], NON_FINITE, values)
                continue
            values[i] = SensorValue(ch.quantity, value, ch.unit, NORMAL)

    def _fault(self, indices: Iterable[int], reason: str, values: list[SensorValue | None]) -> None:
        for i in indices:
            ch = self.channels[i]
            values[i] = SensorValue(ch.quantity, math.nan, ch.unit, FAULT)
            self.errors[reason] += 1

    def _log(self, block: _Block, reason: str) -> None:
        log.warning(
            "modbus %s: %s reading slave %d %s registers %d..%d (%s)",
            self.config.endpoint,
            reason,
            block.slave,
            block.kind,
            block.address,
            block.address + block.count - 1,
            ", ".join(self.channels[i].quantity for i in block.channels),
        )


def _check_reply(block: _Block, response: ModbusPDU) -> list[int] | str:
    """The registers of a reply that answers ``block``, or why it does not."""
    if response.isError():
        code = int(getattr(response, "exception_code", 0))
        return f"exception_{EXCEPTION_NAMES.get(code, str(code))}"
    if response.function_code != _FUNCTION_CODE[block.kind]:
        return BAD_REPLY
    registers = list(response.registers)
    if len(registers) < block.count:
        return SHORT_REPLY
    if len(registers) > block.count or any(not 0 <= r <= 0xFFFF for r in registers):
        return BAD_REPLY
    return registers
