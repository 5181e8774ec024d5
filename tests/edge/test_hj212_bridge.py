"""The HJ 212 bridge over a real TCP connection on the loopback interface."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest

from edge._driver import PushSource, Sample, SensorValue
from edge._hj212 import Packet, encode_packet, parse_frame
from edge._hj212_bridge import Hj212Bridge

T = TypeVar("T")
TIMEOUT_S = 10.0
MN = "010000A8900016F000169DC0"


def packet(
    cn: str, cp: str, *, qn: str, flag: int | None = 5, mn: str = MN, pw: str = "123456"
) -> bytes:
    flag_field = "" if flag is None else f"Flag={flag};"
    return encode_packet(f"QN={qn};ST=22;CN={cn};PW={pw};MN={mn};{flag_field}CP=&&{cp}&&")


def air(qn: str, pm25: str, *, cn: str = "2011", flag: int | None = 5, mn: str = MN) -> bytes:
    suffix = "Rtd" if cn == "2011" else "Avg"
    cp = f"DataTime={qn[:14]};a34004-{suffix}={pm25},a34004-Flag=N;a01001-{suffix}=21.5"
    return packet(cn, cp, qn=qn, flag=flag, mn=mn)


def pm25(value: float) -> list[SensorValue]:
    return [SensorValue("PM2.5", value, "ng/m3", "N")]


async def within(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, TIMEOUT_S)


async def reply(reader: asyncio.StreamReader) -> Packet:
    """The next packet the platform sent to the logger."""
    return parse_frame(await within(reader.readuntil(b"\r\n")))


async def send(writer: asyncio.StreamWriter, *chunks: bytes) -> None:
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()


# HJ/T 212-2005 style, from the annotated samples: no QN, no Flag, so never answered.
OLD_STYLE = (
    b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;"
    b"011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n"
)


async def one_connection_with_good_and_bad_packets() -> tuple[Hj212Bridge, list[Sample]]:
    async with Hj212Bridge(host="127.0.0.1", port=0) as bridge:
        source: PushSource = bridge
        samples = aiter(source.samples())
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        first = air("20240101120000001", "35")
        await send(writer, first[:7], first[7:60], first[60:])  # split across writes
        assert (await reply(reader)).qn == "20240101120000001"
        assert await within(anext(samples)) == Sample(1704081600.0, pm25(35.0))

        bad_crc = air("20240101120100002", "36")[:-6] + b"0000\r\n"
        bad_length = b"##0999" + air("20240101120200003", "37")[6:]
        no_ack = air("20240101121000004", "38", cn="2051", flag=4)
        bare_lf = air("20240101120300005", "39")[:-2] + b"\n"
        unknown_cn = packet("9015", "", qn="20240101120400006")
        host_cn = packet("1062", "RtdInterval=30", qn="20240101120500007")
        bad_time = packet("2011", "DataTime=20241301000000;a34004-Rtd=1", qn="20240101120600008")
        notice = packet("1013", "PolId=a34004", qn="20240101120700009")
        await send(writer, bad_crc + no_ack + b"+++AT\r\n" + bad_length, bare_lf)
        await send(writer, OLD_STYLE + unknown_cn + host_cn[:20], host_cn[20:] + bad_time + notice)
        notice_reply = await reply(reader)  # the only reply to that batch
        assert (notice_reply.cn, notice_reply.qn) == ("9013", "20240101120700009")

        last = air("20240101130000010", "40", cn="2061")
        await send(writer, last)  # the connection is still open after all that
        last_reply = await reply(reader)
        assert (last_reply.cn, last_reply.qn, last_reply.st, last_reply.flag) == (
            "9014",
            "20240101130000010",
            "91",
            4,
        )
        received = [await within(anext(samples)) for _ in range(3)]
        writer.close()
        await writer.wait_closed()
    return bridge, received


def test_one_connection_carries_good_and_bad_packets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge._hj212_bridge")
    bridge, received = asyncio.run(one_connection_with_good_and_bad_packets())
    assert received == [
        Sample(1704082200.0, pm25(38.0)),  # 2051 without ack: queued, not answered
        Sample(
            1471970297.0,  # 2016-08-24 00:38:17 +08:00
            [SensorValue("COD", 231.0, "mg/L", "N"), SensorValue("NH3-N", 1.803, "mg/L", "N")],
        ),
        Sample(1704085200.0, pm25(40.0)),
    ]
    assert bridge.rejections == {
        "crc": 1,
        "length": 1,
        "framing": 2,  # the modem's "+++AT" line and the bare LF
        "unknown_command": 1,
        "unexpected_command": 1,
        "datetime": 1,
    }
    assert bridge.stats.packets == 5 and bridge.stats.samples == 4 and bridge.stats.replies == 3
    assert bridge.stats.commands == {"2011": 2, "2051": 1, "2061": 1, "1013": 1}
    assert bridge.stats.unmapped == {"a01001": 3, "B01": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 7
    assert any("crc: declared 0000" in w and "##" in w for w in warnings)
    # the preview of a rejected packet hides its access password
    assert any("PW=***" in w for w in warnings)
    assert not any("PW=123456" in w or "PW=000000" in w for w in warnings)


async def a_garbage_flood_then_a_packet() -> Hj212Bridge:
    async with Hj212Bridge(port=0, max_buffer=2048) as bridge:
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        await send(writer, *[b"\x00garbage" * 1000] * 20)  # 160 kB without a frame end
        await send(writer, b"\r\n" + air("20240101120000001", "35"))
        assert (await reply(reader)).cn == "9014"
        assert await within(anext(aiter(bridge.samples()))) == Sample(1704081600.0, pm25(35.0))
        writer.close()
        await writer.wait_closed()
    return bridge


def test_a_peer_sending_garbage_without_frame_end_cannot_grow_memory() -> None:
    bridge = asyncio.run(a_garbage_flood_then_a_packet())
    assert bridge.rejections["overflow"] >= 160_000 // (2048 + 4096)
    assert set(bridge.rejections) == {"overflow"}


async def device_and_password_checks() -> Hj212Bridge:
    async with Hj212Bridge(port=0, allowed_mn={MN}, password="123456") as bridge:
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        stranger = air("20240101120000001", "35", mn="FFFFFFFFFFFFFFFFFFFFFFFF")
        wrong_pw = packet("2011", "DataTime=20240101120000", qn="20240101120000002", pw="000000")
        await send(writer, stranger + wrong_pw + air("20240101120000003", "36"))
        assert (await reply(reader)).qn == "20240101120000003"
        writer.close()
        await writer.wait_closed()
    return bridge


def test_only_the_allowed_device_with_its_password_is_accepted() -> None:
    bridge = asyncio.run(device_and_password_checks())
    assert bridge.rejections == {"mn": 1, "pw": 1}
    assert bridge.stats.samples == 1


async def backpressure_and_shutdown() -> list[Sample]:
    received: list[Sample] = []

    async def consume(stream: AsyncIterator[Sample]) -> None:
        async for item in stream:
            received.append(item)

    async with Hj212Bridge(port=0, queue_size=1) as bridge:
        consumer = asyncio.create_task(consume(bridge.samples()))
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        await send(writer, *(air(f"2024010112000{i}000", str(i)) for i in range(5)))
        assert [(await reply(reader)).qn for _ in range(5)] == [
            f"2024010112000{i}000" for i in range(5)
        ]
        second = await asyncio.open_connection("127.0.0.1", bridge.port)  # left open on exit
        writer.close()
        await writer.wait_closed()
    await within(consumer)  # samples() ends when the bridge closes
    second[1].close()
    return received


def test_samples_keep_their_order_through_a_small_queue_and_end_on_close() -> None:
    received = asyncio.run(backpressure_and_shutdown())
    assert [s.values[0].value for s in received] == [0.0, 1.0, 2.0, 3.0, 4.0]
