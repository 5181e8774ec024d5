"""The periodic health report: uptime, outbox depth, drops, clock offset, CPU temperature."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from tianwang.codec import format_ts

if TYPE_CHECKING:
    from edge._agent import EdgeAgent

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
_STA_NANO = 0x2000


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux, 64-bit): the fields we read, then padding.
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("pad", ctypes.c_long * 20),
    ]  # fmt: skip


@cache
def _adjtimex() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    func = getattr(ctypes.CDLL(name, use_errno=True), "adjtimex", None)
    return func


def clock_offset() -> tuple[float | None, bool | None]:
    """(offset from the NTP reference in seconds, synchronised?) as the kernel reports them;
    (None, None) where that cannot be read. Read-only: ``modes = 0``."""
    func = _adjtimex()
    if func is None:
        return None, None
    timex = _Timex()
    state = func(ctypes.byref(timex))
    if state < 0:
        return None, None
    scale = 1e-9 if timex.status & _STA_NANO else 1e-6
    return timex.offset * scale, state != _TIME_ERROR


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    try:
        return int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def health_report(agent: EdgeAgent, uptime_s: float) -> bytes:
    offset, synced = clock_offset()
    stats = agent.stats
    return orjson.dumps({
        "v": 1,
        "node": agent.config.node,
        "ts": format_ts(round(agent.clock.now() * 1000)),
        "uptime_s": round(uptime_s, 1),
        "outbox_depth": len(agent.outbox),
        "dropped": agent.outbox.dropped,
        "readings_published": stats.readings_published,
        "reconnects": stats.reconnects,
        "driver_errors": stats.driver_errors,
        "clock_offset_s": offset,
        "clock_synced": synced,
        "cpu_temp_c": cpu_temperature_c(),
        "sampling_s": agent.settings.sampling_s,
        "cfg_id": agent.cfg_id,
    })  # fmt: skip
