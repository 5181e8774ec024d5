"""HJ 212-2017 packets, pure parsing and building: no I/O (the bridge is in ``_hj212_bridge``).

Reference: ../shared/hj212/PROTOCOL.md, read from HJ 212-2017 (污染物在线监控（监测）系统数据传输
标准) and what is known of HJ/T 212-2005. Clause numbers below are the standard's.

A packet is ``##`` + 4-digit length + data segment + 4 hex CRC + CR LF (section 6.3, Table 2).
The data segment is ``QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;CP=&&<data area>&&`` (Table 3);
HJ/T 212-2005 packets in the field carry no QN and no Flag. Every function here answers bad
input with :class:`Hj212Error`, whose ``reason`` is one short code, and raises nothing else.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import yaml

from edge._driver import Sample, SensorValue
from tianwang.quantities import quantity_table

CHINA = ZoneInfo("Asia/Shanghai")
MAX_DATA_LENGTH = 9999  # the 4-digit length field; the standard's limit of 1024 is not kept
MAX_FRAME_BYTES = 2 + 4 + MAX_DATA_LENGTH + 4 + 2
MAX_VALUE_CHARS = 32  # N14.2 is at most 18 characters; anything far longer is not a number
REPLY_ST = "91"  # system interaction, the ST of every reply in Appendix C
DATA_COMMANDS = frozenset({"2011", "2051", "2061", "2031"})  # uploads of pollutant values

_START = re.compile(rb"##[0-9]{4}")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_DIGITS = re.compile(r"[0-9]+")
_ST = re.compile(r"[0-9A-Z]{2}")
_CN = re.compile(r"[0-9]{4}")
_FLAG = re.compile(r"[0-9]{1,3}")
_DATA_TIME = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{3})?")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_HEADER_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_REQUIRED_FIELDS = ("ST", "CN", "PW", "MN")
_VALUE_SUFFIXES = ("Rtd", "Avg", "Data")  # Table 4: real-time, period mean, noise period value
_PREVIEW_BYTES = 40


class Hj212Error(Exception):
    """A packet or byte stream that does not follow HJ 212.

    ``reason`` is a short code: framing, overflow, length, crc, encoding, syntax, datetime,
    value, flag, unknown_command (and, from the bridge, unexpected_command, mn, pw).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


# --- CRC, Appendix A --------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The HJ 212 CRC of ``data`` (Appendix A): register 0xFFFF, ``crc = (crc >> 8) ^ byte``,
    then 8 right shifts with polynomial 0xA001. Not Modbus CRC-16: the low byte is dropped."""
    crc = 0xFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


# --- framing, section 6.3 / Table 2 -----------------------------------------------------------


def _last_start(buf: bytes) -> int:
    last = -1
    for match in _START.finditer(buf):
        last = match.start()
    return last


def _preview(data: bytes) -> str:
    more = "..." if len(data) > _PREVIEW_BYTES else ""
    return f"{data[:_PREVIEW_BYTES]!r}{more}"


class FrameSplitter:
    """Cuts a TCP byte stream into candidate packets (HJ 212-2017 section 6.3, Table 2).

    A packet ends at CR LF, so a wrong length field cannot desynchronise the stream; it starts
    at the last ``##`` + 4 digits before that end (bytes before it are reported, once, as
    ``framing``). A bare LF ends a line but is rejected: the standard requires CR LF and
    PROTOCOL.md knows it only from a library's negative test, not from field loggers. At most
    ``max_buffer`` bytes wait for a frame end; beyond that they are discarded (``overflow``).
    """

    def __init__(self, max_buffer: int = MAX_FRAME_BYTES) -> None:
        self.max_buffer = max_buffer
        self._buffer = bytearray()
        self._resync = False  # after an overflow, the rest of that line is already counted

    @property
    def buffered(self) -> int:
        """Bytes waiting for a frame end."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | Hj212Error]:
        """Add ``data``; return the complete frames (bytes) and stream errors, in order."""
        self._buffer += data
        out: list[bytes | Hj212Error] = []
        begin = 0
        while (end := self._buffer.find(b"\n", begin)) >= 0:
            out += self._line(bytes(self._buffer[begin : end + 1]))
            begin = end + 1
        del self._buffer[:begin]
        if len(self._buffer) > self.max_buffer:
            out.append(self._overflow())
        return out

    def _line(self, line: bytes) -> list[bytes | Hj212Error]:
        resync, self._resync = self._resync, False
        start = _last_start(line)
        junk = line if start < 0 else line[:start]
        out: list[bytes | Hj212Error] = []
        if junk.strip() and not resync:
            detail = f"{len(junk)} bytes without a '##' + 4-digit header: {_preview(junk)}"
            out.append(Hj212Error("framing", detail))
        if start >= 0:
            frame = line[start:]
            if frame.endswith(b"\r\n"):
                out.append(frame)
            else:
                detail = f"bare LF ends the packet, CR LF required: {_preview(frame)}"
                out.append(Hj212Error("framing", detail))
        return out

    def _overflow(self) -> Hj212Error:
        size = len(self._buffer)
        start = _last_start(bytes(self._buffer))
        keep_from = start if start > 0 and size - start <= self.max_buffer else size
        del self._buffer[:keep_from]
        self._resync = keep_from == size
        return Hj212Error("overflow", f"{keep_from} bytes without a frame end discarded")


# --- the packet, section 6.3 / Table 3 --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """One parsed packet (HJ 212-2017 Table 3). ``flag`` is None in 2005-style packets."""

    st: str
    cn: str
    pw: str
    mn: str
    cp: Mapping[str, str]  # data-area fields in packet order, e.g. {"a34004-Rtd": "35"}
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None

    @property
    def ack_requested(self) -> bool:
        """Flag bit A (bit 0): the command requires a reply."""
        return self.flag is not None and bool(self.flag & 1)

    @property
    def version(self) -> int:
        """Flag bits V5-V0: 0 = HJ/T 212-2005 (also when Flag is absent), 1 = HJ 212-2017."""
        return 0 if self.flag is None else self.flag >> 2


def parse_frame(frame: bytes) -> Packet:
    """Check one frame's header, length and CRC, then parse its data segment."""
    if len(frame) < 12 or not frame.startswith(b"##") or not frame.endswith(b"\r\n"):
        raise Hj212Error("framing", f"not '##' ... CR LF: {_preview(frame)}")
    if not re.fullmatch(rb"[0-9]{4}", frame[2:6]):
        raise Hj212Error("framing", f"length field {frame[2:6]!r} is not 4 digits")
    segment = frame[6:-6]
    _check_length(int(frame[2:6]), segment)
    _check_crc(segment, frame[-6:-2])
    try:
        text = segment.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Hj212Error("encoding", f"data segment is not UTF-8: {exc.reason}") from exc
    return parse_segment(text)


def _check_length(declared: int, segment: bytes) -> None:
    if declared == len(segment):
        return
    # HJ 212-2017 counts characters, HJ 212-2025 UTF-8 bytes: the same for ASCII, so accept both.
    chars = len(segment.decode("utf-8", errors="replace"))
    if declared != chars:
        raise Hj212Error("length", f"declared {declared:04d}, data segment has {chars}")


def _check_crc(segment: bytes, field: bytes) -> None:
    if not _HEX4.fullmatch(field):
        raise Hj212Error("crc", f"CRC field {field!r} is not 4 hex digits")
    computed = crc16(segment)
    if int(field, 16) != computed:
        raise Hj212Error("crc", f"declared {field.decode()}, computed {computed:04X}")


def parse_segment(text: str) -> Packet:
    """Parse a data segment ``QN=..;ST=..;...;CP=&&...&&`` (Table 3, section 6.3.3)."""
    cp_at = text.find("CP=&&")
    if cp_at < 0 or len(text) < cp_at + 7 or not text.endswith("&&"):
        raise Hj212Error("syntax", "no 'CP=&&...&&' at the end of the data segment")
    header = _header_fields(text[:cp_at])
    return Packet(
        st=_match(_ST, header["ST"], "ST"),
        cn=_match(_CN, header["CN"], "CN"),
        pw=header["PW"],
        mn=_nonempty(header["MN"], "MN"),
        cp=_data_area(text[cp_at + 5 : -2]),
        qn=_optional(header, "QN", _DIGITS),
        flag=_flag(header.get("Flag")),
        pnum=_optional_int(header, "PNUM"),
        pno=_optional_int(header, "PNO"),
    )


def _header_fields(text: str) -> dict[str, str]:
    *items, last = text.split(";")
    if last:
        raise Hj212Error("syntax", f"header field {last[:20]!r} not followed by ';'")
    fields: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or name not in _HEADER_FIELDS:
            raise Hj212Error("syntax", f"unknown header field {item[:20]!r}")
        if name in fields:
            raise Hj212Error("syntax", f"header field {name} repeated")
        fields[name] = value
    missing = [name for name in _REQUIRED_FIELDS if name not in fields]
    if missing:
        raise Hj212Error("syntax", f"header lacks {', '.join(missing)}")
    return fields


def _match(pattern: re.Pattern[str], value: str, name: str) -> str:
    if not pattern.fullmatch(value):
        raise Hj212Error("syntax", f"{name}={value[:20]!r} is malformed")
    return value


def _nonempty(value: str, name: str) -> str:
    if not value:
        raise Hj212Error("syntax", f"{name} is empty")
    return value


def _optional(fields: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    value = fields.get(name)
    return None if value is None else _match(pattern, value, name)


def _optional_int(fields: Mapping[str, str], name: str) -> int | None:
    value = _optional(fields, name, _DIGITS)
    return None if value is None else int(value)


def _flag(value: str | None) -> int | None:
    if value is None:
        return None
    if not _FLAG.fullmatch(value) or int(value) > 255:
        raise Hj212Error("syntax", f"Flag={value[:20]!r} is not an integer 0-255")
    return int(value)


def _data_area(text: str) -> dict[str, str]:
    """``;`` separates items, ``,`` values of one item, ``=`` joins name and value (6.3.3.1)."""
    if "&&" in text:
        raise Hj212Error("syntax", "'&&' inside the data area")
    fields: dict[str, str] = {}
    for item in text.split(";"):
        for pair in filter(None, item.split(",")):
            name, eq, value = pair.partition("=")
            if not eq or not name:
                raise Hj212Error("syntax", f"data-area field {pair[:30]!r} has no name=value")
            if name in fields:
                raise Hj212Error("syntax", f"data-area field {name[:30]!r} repeated")
            fields[name] = value
    return fields


# --- factor codes and data flags, Appendix B and Table 8 --------------------------------------


class FactorCode(NamedTuple):
    """One factor code: the quantity it maps to (None: read, not mapped) and its unit."""

    quantity: str | None
    unit: str
    name: str


@dataclass(frozen=True, slots=True)
class CodeTable:
    """Factor codes (HJ 212-2017 Appendix B, and the 2005 原编码) and data flags (Table 8)."""

    factors: Mapping[str, FactorCode]
    flags: Mapping[str, str]

    def with_units(self, units: Mapping[str, str]) -> CodeTable:
        """A copy whose codes report in ``units`` (code -> unit), for a device that does not
        use the standard's default unit (e.g. an air micro-station sending ug/m3)."""
        unknown = sorted(set(units) - set(self.factors))
        if unknown:
            raise ValueError(f"unit override for codes not in the table: {unknown}")
        factors = dict(self.factors)
        for code, unit in units.items():
            factors[code] = factors[code]._replace(unit=unit)
        return replace(self, factors=factors)


def load_codes(path: Path | None = None) -> CodeTable:
    """Read the code table (default: ``edge/data/hj212_codes.yaml``); every mapped quantity
    must be one of tianwang/data/quantities.yaml."""
    if path is None:
        text = resources.files("edge").joinpath("data/hj212_codes.yaml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    known = quantity_table().quantities
    factors: dict[str, FactorCode] = {}
    for section in ("codes_2017", "codes_2005"):
        for code, entry in raw[section].items():
            factor = FactorCode(entry["quantity"], str(entry["unit"]), str(entry["name"]))
            if factor.quantity is not None and factor.quantity not in known:
                raise ValueError(f"{code}: quantity {factor.quantity!r} not in quantities.yaml")
            if str(code) in factors:
                raise ValueError(f"factor code {code} listed twice")
            factors[str(code)] = factor
    return CodeTable(factors, {str(k): str(v) for k, v in raw["flags"].items()})


# --- data uploads: 2011 / 2051 / 2061 / 2031 --------------------------------------------------


class Upload(NamedTuple):
    """The values of one data upload, and the codes that gave none."""

    sample: Sample
    unmapped: tuple[str, ...]  # in the table with quantity null (flow, temperature, ...)
    unknown_codes: tuple[str, ...]  # not in the table
    unknown_flags: tuple[str, ...]  # flag letters not in Table 8, passed through


def decode_upload(packet: Packet, codes: CodeTable, tz: ZoneInfo = CHINA) -> Upload:
    """Map the ``code-Rtd`` / ``-Avg`` / ``-Data`` and ``code-Flag`` fields of a data upload
    (Table 4) to values. ``DataTime`` is taken as local time in ``tz``: the standard names no
    time zone, loggers keep the clock the platform sets (1012), i.e. the county's."""
    sample_time = data_time(packet.cp.get("DataTime"), tz)
    values: list[SensorValue] = []
    unmapped: list[str] = []
    unknown: list[str] = []
    odd_flags: list[str] = []
    for code, field in _value_fields(packet).items():
        factor = codes.factors.get(code)
        if factor is None or factor.quantity is None:
            (unknown if factor is None else unmapped).append(code)
            continue
        flag = _data_flag(packet.cp.get(f"{code}-Flag", "N"), code)
        if flag not in codes.flags:
            odd_flags.append(flag)
        values.append(
            SensorValue(factor.quantity, _number(packet.cp[field], field), factor.unit, flag)
        )
    return Upload(Sample(sample_time, values), tuple(unmapped), tuple(unknown), tuple(odd_flags))


def _value_fields(packet: Packet) -> dict[str, str]:
    """code -> the field holding its value, codes in packet order; real-time data prefers
    ``-Rtd``, period data ``-Avg`` (Table 4)."""
    order = _VALUE_SUFFIXES if packet.cn == "2011" else ("Avg", "Data", "Rtd")
    suffixes: dict[str, set[str]] = {}
    for name in packet.cp:
        code, dash, suffix = name.rpartition("-")
        if dash and code and suffix in _VALUE_SUFFIXES:
            suffixes.setdefault(code, set()).add(suffix)
    return {
        code: f"{code}-{next(s for s in order if s in present)}"
        for code, present in suffixes.items()
    }


def data_time(value: str | None, tz: ZoneInfo = CHINA) -> float:
    """``DataTime`` (N14 ``YYYYMMDDhhmmss``, 17 digits with milliseconds tolerated), local time
    in ``tz``, as epoch seconds UTC."""
    if value is None:
        raise Hj212Error("datetime", "data upload without DataTime")
    match = _DATA_TIME.fullmatch(value)
    if match is None:
        raise Hj212Error("datetime", f"DataTime={value[:20]!r} is not 14 (or 17) digits")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    micros = int(match.group(7) or 0) * 1000
    try:
        local = datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError as exc:
        raise Hj212Error("datetime", f"DataTime={value} is not a date: {exc}") from exc
    return local.timestamp()


def _data_flag(value: str, code: str) -> str:
    if len(value) != 1:
        raise Hj212Error("flag", f"{code}-Flag={value[:10]!r} is not one character (C1)")
    return value


def _number(value: str, field: str) -> float:
    if not value:
        return math.nan  # a missing value
    if len(value) > MAX_VALUE_CHARS or not _NUMBER.fullmatch(value):
        raise Hj212Error("value", f"{field}={value[:20]!r} is not a number")
    return float(value)


# --- commands, section 6.6.5 / Table 9 --------------------------------------------------------


class CommandKind(enum.Enum):
    """What a command code means when a data logger sends it to the platform (Table 9)."""

    UPLOAD = "upload"  # answered with 9014 when Flag.A = 1
    NOTIFICATION = "notification"  # answered with 9013 when Flag.A = 1
    REPLY = "reply"  # 9011-9014: answers to the platform, not answered
    HOST_ONLY = "host_only"  # sent by a platform to a logger, never by a logger


_UPLOADS = "1011 1061 1063 2011 2021 2031 2041 2051 2061 2081 3015 3017 3018 3019 3020"
_HOST_ONLY = "1000 1012 1062 1064 1072 2012 2022 3011 3012 3013 3014 3016 3021"
# HJ/T 212-2005 commands dropped in 2017 (PROTOCOL.md section 10, secondary): alarm and
# address commands. Uploads of these are still answered; the rest are platform requests.
_UPLOADS_2005 = "1021 1031 1041 2071 2072"
_HOST_ONLY_2005 = "1001 1022 1032 1042"
COMMANDS: Mapping[str, CommandKind] = {
    **dict.fromkeys(f"{_UPLOADS} {_UPLOADS_2005}".split(), CommandKind.UPLOAD),
    **dict.fromkeys(f"{_HOST_ONLY} {_HOST_ONLY_2005}".split(), CommandKind.HOST_ONLY),
    "1013": CommandKind.NOTIFICATION,
    **dict.fromkeys(("9011", "9012", "9013", "9014"), CommandKind.REPLY),
}


def command_kind(cn: str) -> CommandKind:
    """The kind of command ``cn``; ``unknown_command`` when neither edition defines it."""
    kind = COMMANDS.get(cn)
    if kind is None:
        raise Hj212Error("unknown_command", f"CN={cn[:10]} is not in HJ 212-2017 Table 9")
    return kind


# --- building packets and replies, section 6.5 / Appendix C -----------------------------------


def encode_packet(segment: str) -> bytes:
    """Frame a data segment: ``##`` + length (characters, Table 2) + segment + CRC + CR LF."""
    data = segment.encode("utf-8")
    if len(segment) > MAX_DATA_LENGTH:
        raise ValueError(f"data segment of {len(segment)} characters exceeds {MAX_DATA_LENGTH}")
    return b"##%04d%s%04X\r\n" % (len(segment), data, crc16(data))


def build_reply(request: Packet, cn: str, cp: str = "") -> bytes:
    """A reply to ``request`` (Appendix C): its QN, PW and MN, ST=91, the request's version
    with A = 0 and D = 0 in Flag (``Flag=4`` for 2017), and ``CP=&&<cp>&&``."""
    qn = "" if request.qn is None else f"QN={request.qn};"
    flag = "" if request.flag is None else f"Flag={request.flag & 0xFC};"
    pw_mn = f"PW={request.pw};MN={request.mn};"
    return encode_packet(f"{qn}ST={REPLY_ST};CN={cn};{pw_mn}{flag}CP=&&{cp}&&")


def response_for(packet: Packet) -> bytes | None:
    """What the platform answers (section 6.5): an upload with Flag.A = 1 gets a 9014 data
    acknowledgement, a 1013 notification with Flag.A = 1 a 9013; anything else nothing."""
    if not packet.ack_requested:
        return None
    kind = command_kind(packet.cn)
    if kind is CommandKind.UPLOAD:
        return build_reply(packet, "9014")
    if kind is CommandKind.NOTIFICATION:
        return build_reply(packet, "9013")
    return None
