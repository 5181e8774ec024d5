"""HJ 212 parsing: the annotated sample packets, the standard's CRC example, replies, and
random and mutated input (hypothesis)."""

from __future__ import annotations

import math
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge._driver import SensorValue
from edge._hj212 import (
    DATA_COMMANDS,
    CodeTable,
    CommandKind,
    FrameSplitter,
    Hj212Error,
    Packet,
    build_reply,
    command_kind,
    crc16,
    data_time,
    decode_upload,
    encode_packet,
    load_codes,
    parse_frame,
    response_for,
)
from tianwang.quantities import quantity_table

ROOT = Path(__file__).resolve().parents[2]
# The annotated test vectors; a copy in the repository wins over the shared reference.
SAMPLE_FILES = (
    Path(__file__).parent / "data" / "hj212_samples.txt",
    ROOT.parent / "shared" / "hj212" / "samples.txt",
)
CODES = load_codes()


class Annotated(NamedTuple):
    """One packet of samples.txt with its annotations."""

    packet: bytes  # with the terminator its source used
    crc_ok: bool
    len_ok: bool
    style: str
    note: str

    @property
    def valid(self) -> bool:
        return self.crc_ok and self.len_ok


def load_samples(path: Path) -> list[Annotated]:
    """Packets (lines starting ``##``) each followed by ``# key: value`` annotations."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in path.read_text("utf-8").splitlines():
        if line.startswith("##"):
            found.append((line, {}))
        elif line.startswith("# ") and found:
            key, _, value = line[2:].partition(":")
            found[-1][1].setdefault(key.strip(), value.strip())
    return [_annotated(line, notes) for line, notes in found]


def _annotated(line: str, notes: dict[str, str]) -> Annotated:
    note = notes["note"]
    # The file puts every packet on a line (CR LF removed); one source used a bare LF.
    end = b"\n" if "ends with \\n only" in note else b"\r\n"
    return Annotated(
        line.encode("utf-8") + end,
        notes["crc"].startswith("ok"),
        notes["len"].startswith("ok"),
        notes["style"],
        note,
    )


def _sample_file() -> Path:
    for path in SAMPLE_FILES:
        if path.exists():
            return path
    raise FileNotFoundError(f"HJ 212 samples not found in {[str(p) for p in SAMPLE_FILES]}")


SAMPLES = load_samples(_sample_file())


def sample(declared_crc: str, length: str = "") -> bytes:
    """The first CR LF sample packet with this CRC field (and length field)."""
    return next(
        s.packet
        for s in SAMPLES
        if s.packet.endswith(declared_crc.encode() + b"\r\n")
        and s.packet.startswith(f"##{length}".encode())
    )


def frame(segment: str) -> bytes:
    return encode_packet(segment)


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# --- the annotated samples --------------------------------------------------------------------


def test_the_sample_file_is_read_whole() -> None:
    assert len(SAMPLES) == 15
    assert {s.style for s in SAMPLES} == {"2005", "2017"}
    assert sum(s.valid for s in SAMPLES) == 10


SAMPLE_IDS = [f"{i:02d}-{s.style}-{s.packet.rstrip()[-4:].decode()}" for i, s in enumerate(SAMPLES)]


@pytest.mark.parametrize("item", SAMPLES, ids=SAMPLE_IDS)
def test_each_sample_is_accepted_or_rejected_as_annotated(item: Annotated) -> None:
    outcome = FrameSplitter().feed(item.packet)
    assert len(outcome) == 1
    if item.packet.endswith(b"\r\n"):
        (framed,) = outcome
        assert framed == item.packet
    else:  # a bare LF: the standard requires CR LF
        (error,) = outcome
        assert isinstance(error, Hj212Error) and error.reason == "framing"
        framed = item.packet[:-1] + b"\r\n"  # the same packet as the standard frames it
    if not item.valid:
        with pytest.raises(Hj212Error) as caught:
            parse_frame(framed)
        assert caught.value.reason == ("length" if not item.len_ok else "crc")
        return
    packet = parse_frame(framed)
    assert (item.style == "2005") == (packet.qn is None and packet.flag is None)
    if packet.cn in DATA_COMMANDS:
        upload = decode_upload(packet, CODES)
        assert all(v.flag == "N" and v.unit for v in upload.sample.values)


def test_2017_air_station_minute_data_values_and_units() -> None:
    packet = parse_frame(sample("D641"))
    assert (packet.st, packet.cn, packet.mn, packet.flag) == ("22", "2051", "JLYP01_AIR01_0001", 4)
    upload = decode_upload(packet, CODES)
    assert upload.sample.sample_time == utc(2022, 5, 13, 8, 26, 0)  # 16:26:00 +08:00
    assert upload.sample.values == [
        SensorValue("NO2", 4.0, "mg/m3", "N"),
        SensorValue("O3", 63.0, "mg/m3", "N"),
        SensorValue("SO2", 6.0, "mg/m3", "N"),
        SensorValue("CO", 0.427, "mg/m3", "N"),
        SensorValue("PM2.5", 14.0, "ng/m3", "N"),  # Table B.2's printed default unit
        SensorValue("PM10", 31.0, "ng/m3", "N"),
    ]
    assert upload.unmapped == ("a01007", "a01008", "a01001", "a01002", "a01006")
    assert upload.unknown_codes == upload.unknown_flags == ()


def test_a_device_that_reports_in_ug_m3_is_configured_not_guessed() -> None:
    micro_station = CODES.with_units(dict.fromkeys(("a21004", "a05024", "a34004"), "ug/m3"))
    values = decode_upload(parse_frame(sample("D641")), micro_station).sample.values
    assert [(v.quantity, v.unit) for v in values][:3] == [
        ("NO2", "ug/m3"),
        ("O3", "ug/m3"),
        ("SO2", "mg/m3"),
    ]
    assert values[4] == SensorValue("PM2.5", 14.0, "ug/m3", "N")
    with pytest.raises(ValueError, match="O3"):
        CODES.with_units({"O3": "ug/m3"})  # "O3" is not a code of the table


@pytest.mark.parametrize(("declared_crc", "length"), [("1dc0", "0136"), ("4980", "0139")])
def test_2005_style_cod_and_ammonia_nitrogen(declared_crc: str, length: str) -> None:
    packet = parse_frame(sample(declared_crc, length))
    assert (packet.qn, packet.flag, packet.version, packet.mn) == (None, None, 0, "LD130133000015")
    upload = decode_upload(packet, CODES)
    # DataTime 2016-08-24 00:38:17 (and 00:38:17.000) in Asia/Shanghai
    assert upload.sample.sample_time == utc(2016, 8, 23, 16, 38, 17)
    assert upload.sample.values == [
        SensorValue("COD", 231.0, "mg/L", "N"),
        SensorValue("NH3-N", 1.803, "mg/L", "N"),
    ]
    assert upload.unmapped == ("B01",)  # wastewater flow: read, not mapped


def test_surface_water_packet_with_an_undefined_version() -> None:
    packet = parse_frame(sample("7d00"))
    assert (packet.st, packet.flag, packet.version, packet.ack_requested) == ("21", 8, 2, False)
    upload = decode_upload(packet, CODES)
    assert upload.sample.values == [
        SensorValue("pH", 8.33, "pH", "N"),
        SensorValue("DO", 10.15, "mg/L", "N"),
        SensorValue("NH3-N", 0.09055002, "mg/L", "N"),
    ]
    assert upload.unknown_codes == ("w01003", "w01008")
    assert "w01019" in upload.unmapped


def test_non_standard_factor_codes_give_no_values_but_no_error() -> None:
    vendor = decode_upload(parse_frame(sample("71c0")), CODES)
    assert vendor.sample.values == []
    assert vendor.unknown_codes[:2] == ("a2106", "a2107")
    ele = parse_frame(sample("8c41"))
    upload = decode_upload(ele, CODES)
    assert (upload.sample.values, upload.unknown_codes) == ([], ("ele01", "ele02"))
    assert upload.sample.sample_time == utc(2021, 3, 4, 16, 38, 17)  # 17-digit DataTime


def test_gas_analyser_real_time_values() -> None:
    upload = decode_upload(parse_frame(sample("cc01")), CODES)
    assert upload.sample.values == [
        SensorValue("CO", 0.0, "mg/m3", "N"),
        SensorValue("NO2", 0.0, "mg/m3", "N"),
    ]
    assert upload.unknown_codes == ("a21007", "a21006")
    assert upload.unmapped == ("a21001", "a21003", "a21002")


# --- CRC, Appendix A --------------------------------------------------------------------------


def test_the_standards_crc_example() -> None:
    packet = sample("1C80")
    assert packet[2:6] == b"0101" and len(packet[6:-6]) == 101
    assert crc16(packet[6:-6]) == 0x1C80
    # the first steps of PROTOCOL.md's worked example
    assert [crc16(b"Q"), crc16(b"QN"), crc16(b"QN=")] == [0xBC81, 0x8581, 0x7200]
    assert parse_frame(packet).cp == {"RtdInterval": "30"}


def test_crc_is_not_modbus() -> None:
    assert crc16(b"123456789") == 0x2F80  # Modbus CRC-16 gives 0x4B37


def naive_crc(data: bytes) -> int:
    """Appendix A step by step: XOR the byte into the register's high byte, keep that as the
    register, then 8 times: shift right, XOR 0xA001 if the bit shifted out was 1."""
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ byte
        for _ in range(8):
            check = register & 1
            register >>= 1
            if check:
                register ^= 0xA001
    return register


@given(st.binary(max_size=300))
def test_crc_table_matches_the_appendix_procedure(data: bytes) -> None:
    assert crc16(data) == naive_crc(data)


def test_lower_case_crc_is_accepted_and_a_wrong_length_is_rejected() -> None:
    packet = sample("1C80")
    assert parse_frame(packet.replace(b"1C80", b"1c80")).cn == "1062"
    with pytest.raises(Hj212Error) as caught:
        parse_frame(packet.replace(b"##0101", b"##0100"))
    assert caught.value.reason == "length"
    with pytest.raises(Hj212Error) as caught:
        parse_frame(packet.replace(b"1C80", b"1C8G"))
    assert caught.value.reason == "crc"


# --- malformed data segments, each with a valid length and CRC --------------------------------

HEAD = "QN=20240101120000000;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
GOOD_CP = "DataTime=20240101120000;a34004-Rtd=35,a34004-Flag=N"

MALFORMED = {
    "no DataTime": (HEAD + "CP=&&a34004-Rtd=35&&", "datetime"),
    "month 13": (HEAD + "CP=&&DataTime=20241301120000;a34004-Rtd=35&&", "datetime"),
    "15 digits": (HEAD + "CP=&&DataTime=202401011200001&&", "datetime"),
    "not a number": (HEAD + "CP=&&DataTime=20240101120000;a34004-Rtd=abc&&", "value"),
    "exponent": (HEAD + "CP=&&DataTime=20240101120000;a34004-Rtd=1e5&&", "value"),
    "nan": (HEAD + "CP=&&DataTime=20240101120000;a34004-Rtd=nan&&", "value"),
    "two-letter flag": (HEAD + f"CP=&&{GOOD_CP[:-1]}NN&&", "flag"),
    "ST=101": (HEAD.replace("ST=22", "ST=101") + f"CP=&&{GOOD_CP}&&", "syntax"),
    "CN letters": (HEAD.replace("CN=2011", "CN=20x1") + f"CP=&&{GOOD_CP}&&", "syntax"),
    "Flag=256": (HEAD.replace("Flag=5", "Flag=256") + f"CP=&&{GOOD_CP}&&", "syntax"),
    "no MN": (HEAD.replace("MN=010000A8900016F000169DC0;", "") + "CP=&&&&", "syntax"),
    "unknown field": ("XX=1;" + HEAD + "CP=&&&&", "syntax"),
    "no CP": (HEAD[:-1], "syntax"),
    "CP not closed": (HEAD + "CP=&&&", "syntax"),
    "&& inside": (HEAD + "CP=&&a=1&&b=2&&", "syntax"),
    "repeated field": (HEAD + "CP=&&DataTime=20240101120000;a21-Rtd=0;a21-Rtd=0&&", "syntax"),
    "no name=value": (HEAD + "CP=&&DataTime=20240101120000;a34004-Rtd&&", "syntax"),
    "unknown command": (HEAD.replace("CN=2011", "CN=9015") + "CP=&&&&", "unknown_command"),
}


def _pipeline(data: bytes, codes: CodeTable = CODES) -> Packet:
    packet = parse_frame(data)
    command_kind(packet.cn)
    if packet.cn in DATA_COMMANDS:
        decode_upload(packet, codes)
    response_for(packet)
    return packet


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_segments_are_rejected_with_a_reason(case: str) -> None:
    segment, reason = MALFORMED[case]
    with pytest.raises(Hj212Error) as caught:
        _pipeline(frame(segment))
    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"{reason}: ")


def test_non_utf8_is_an_encoding_error() -> None:
    data = HEAD.encode() + b"CP=&&DataTime=20240101120000;x-Info=\xff&&"
    with pytest.raises(Hj212Error) as caught:
        parse_frame(b"##%04d%s%04X\r\n" % (len(data), data, crc16(data)))
    assert caught.value.reason == "encoding"


def test_an_empty_value_is_missing_not_an_error() -> None:
    segment = HEAD + "CP=&&DataTime=20240101120000;a34004-Rtd=,a34004-Flag=D&&"
    upload = decode_upload(parse_frame(frame(segment)), CODES)
    (value,) = upload.sample.values
    assert math.isnan(value.value) and value.flag == "D"


def test_unknown_flags_pass_through_and_are_reported() -> None:
    upload = decode_upload(parse_frame(frame(HEAD + f"CP=&&{GOOD_CP[:-1]}H&&")), CODES)
    assert upload.sample.values[0].flag == "H"
    assert upload.unknown_flags == ("H",)


def test_data_time_is_county_local_time() -> None:
    assert data_time("20240101000000") == utc(2023, 12, 31, 16, 0, 0)
    assert data_time("20240101000000123") == utc(2023, 12, 31, 16, 0, 0) + 0.123


# --- replies, section 6.5 / Appendix C --------------------------------------------------------


def _reply(request: bytes) -> Packet | None:
    reply = response_for(parse_frame(request))
    if reply is None:
        return None
    assert reply[2:6] == b"%04d" % len(reply[6:-6])
    assert int(reply[-6:-2], 16) == crc16(reply[6:-6])
    assert reply.endswith(b"\r\n") and reply.count(b"\r\n") == 1
    return parse_frame(reply)


def test_an_upload_with_ack_gets_a_9014_data_reply() -> None:
    reply = _reply(frame(HEAD + f"CP=&&{GOOD_CP}&&"))
    assert reply == Packet(
        st="91", cn="9014", pw="123456", mn="010000A8900016F000169DC0", cp={},
        qn="20240101120000000", flag=4,
    )  # fmt: skip
    assert response_for(parse_frame(frame(HEAD + f"CP=&&{GOOD_CP}&&"))) == (
        b"##0087QN=20240101120000000;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;"
        b"Flag=4;CP=&&&&4E00\r\n"
    )


def test_a_1013_notification_with_ack_gets_9013() -> None:
    request = HEAD.replace("CN=2011", "CN=1013") + "CP=&&PolId=w01018&&"
    reply = _reply(frame(request))
    assert reply is not None and (reply.cn, reply.qn, reply.flag) == (
        "9013",
        "20240101120000000",
        4,
    )


@pytest.mark.parametrize(
    "request_segment",
    [
        HEAD.replace("Flag=5", "Flag=4") + f"CP=&&{GOOD_CP}&&",  # no ack asked
        "ST=32;CN=2011;PW=123456;MN=LD130133000015;" + f"CP=&&{GOOD_CP}&&",  # 2005, no Flag
        HEAD.replace("CN=2011", "CN=9014") + "CP=&&&&",  # a reply is not answered
    ],
)
def test_no_reply_unless_the_standard_asks_for_one(request_segment: str) -> None:
    assert _reply(frame(request_segment)) is None


def test_the_standards_host_command_is_not_answered_by_the_platform() -> None:
    packet = parse_frame(sample("1C80"))
    assert packet.ack_requested and command_kind(packet.cn) is CommandKind.HOST_ONLY
    assert response_for(packet) is None


def test_a_2005_reply_keeps_the_version_bits() -> None:
    request = parse_frame(frame("ST=32;CN=2011;PW=123456;MN=LD130133000015;Flag=1;CP=&&&&"))
    reply = parse_frame(build_reply(request, "9014"))
    assert (reply.qn, reply.flag, reply.cn) == (None, 0, "9014")


# --- the code table ---------------------------------------------------------------------------


def test_every_quantity_has_a_code_and_required_codes_are_mapped() -> None:
    mapped = {f.quantity for f in CODES.factors.values()} - {None}
    assert mapped == set(quantity_table().quantities)
    expected = {
        "a21026": "SO2", "a21004": "NO2", "a21005": "CO", "a05024": "O3", "a34004": "PM2.5",
        "a34002": "PM10", "w01018": "COD", "w21003": "NH3-N", "w01009": "DO", "w01001": "pH",
        "Leq": "LAeq", "011": "COD", "060": "NH3-N", "001": "pH", "B01": None,
    }  # fmt: skip
    assert {code: CODES.factors[code].quantity for code in expected} == expected
    assert set(CODES.flags) == set("NFMSDCTB")


# --- framing ----------------------------------------------------------------------------------

GOOD = frame(HEAD + f"CP=&&{GOOD_CP}&&")


def test_a_frame_fed_byte_by_byte() -> None:
    splitter = FrameSplitter()
    out = [item for i in range(len(GOOD)) for item in splitter.feed(GOOD[i : i + 1])]
    assert out == [GOOD] and splitter.buffered == 0


def test_garbage_before_a_frame_is_reported_once_and_the_frame_kept() -> None:
    out = FrameSplitter().feed(b"AT+CSQ\r\nnoise" + GOOD + GOOD)
    assert isinstance(out[0], Hj212Error) and out[0].reason == "framing"
    assert isinstance(out[1], Hj212Error)  # "noise" before the first frame's header
    assert out[2:] == [GOOD, GOOD]
    assert FrameSplitter().feed(b"\r\n" + GOOD) == [GOOD]  # blank lines are not garbage


def test_a_stream_without_frame_end_is_bounded() -> None:
    splitter = FrameSplitter(max_buffer=1024)
    errors = [e for _ in range(50) for e in splitter.feed(b"x" * 1000)]
    assert splitter.buffered <= 1024 + 1000
    assert errors and all(isinstance(e, Hj212Error) and e.reason == "overflow" for e in errors)
    assert splitter.feed(b"tail of the junk" + GOOD) == [GOOD]  # rest of that junk: counted


def test_an_overflow_keeps_a_frame_that_began_in_the_buffer() -> None:
    splitter = FrameSplitter(max_buffer=len(GOOD) + 10)
    out = splitter.feed(b"x" * 200 + GOOD[:-2])
    assert [e.reason for e in out if isinstance(e, Hj212Error)] == ["overflow"]
    assert splitter.feed(b"\r\n") == [GOOD]


# --- hypothesis: random and mutated input -----------------------------------------------------

VALID = [s.packet for s in SAMPLES if s.valid and s.packet.endswith(b"\r\n")] + [GOOD]


def _feed_all(chunks: list[bytes], max_buffer: int = 512) -> None:
    splitter = FrameSplitter(max_buffer=max_buffer)
    for chunk in chunks:
        for item in splitter.feed(chunk):
            assert isinstance(item, bytes | Hj212Error)
            if isinstance(item, bytes):
                with suppress(Hj212Error):
                    _pipeline(item)
        assert splitter.buffered <= max_buffer + len(chunk)


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_hj212_errors(data: bytes) -> None:
    with suppress(Hj212Error):
        _pipeline(data)
    _feed_all([data])


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300) | st.sampled_from(VALID), max_size=12))
def test_random_streams_with_valid_frames_are_bounded(chunks: list[bytes]) -> None:
    _feed_all(chunks)


@st.composite
def mutated(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "insert", "delete"]))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=500)
@given(mutated(st.sampled_from(VALID)))
def test_mutated_packets_raise_only_hj212_errors(data: bytes) -> None:
    with suppress(Hj212Error):
        _pipeline(data)
    _feed_all([data])


SEGMENTS = [packet[6:-6] for packet in VALID]


@settings(max_examples=500)
@given(mutated(st.sampled_from(SEGMENTS)))
def test_mutated_segments_with_a_valid_crc_raise_only_hj212_errors(segment: bytes) -> None:
    # Re-framed with the right length and CRC, so the mutation reaches the segment parser.
    data = b"##%04d%s%04X\r\n" % (len(segment) % 10000, segment, crc16(segment))
    with suppress(Hj212Error):
        _pipeline(data)


_TEXT = st.text(st.characters(codec="ascii", exclude_characters=";,=&\r\n"), min_size=1)


@settings(max_examples=200)
@given(
    qn=st.none() | st.from_regex(r"[0-9]{17}", fullmatch=True),
    st_=st.from_regex(r"[0-9A-Z]{2}", fullmatch=True),
    cn=st.from_regex(r"[0-9]{4}", fullmatch=True),
    pw=_TEXT,
    mn=_TEXT,
    flag=st.none() | st.integers(0, 255),
    cp=st.dictionaries(_TEXT, _TEXT | st.just(""), max_size=8),
)
def test_built_packets_parse_back(
    qn: str | None, st_: str, cn: str, pw: str, mn: str, flag: int | None, cp: dict[str, str]
) -> None:
    head = "".join(
        [
            "" if qn is None else f"QN={qn};",
            f"ST={st_};CN={cn};PW={pw};MN={mn};",
            "" if flag is None else f"Flag={flag};",
        ]
    )
    area = ";".join(f"{k}={v}" for k, v in cp.items())
    packet = parse_frame(frame(f"{head}CP=&&{area}&&"))
    assert packet == Packet(st=st_, cn=cn, pw=pw, mn=mn, cp=cp, qn=qn, flag=flag)
