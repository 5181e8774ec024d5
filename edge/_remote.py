"""Remote configuration on the node's retained ``cfg`` topic, and its acknowledgement.

A cfg message is ``{"v": 1, "id": "...", "sampling_s": ..., "calibration": {...},
"precheck": {...}}``; absent keys keep their current values. It is applied whole or not at
all; either way the node answers on ``cfg_ack`` (docs/protocol.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from edge._config import AgentConfigError, Settings, parse_settings
from tianwang.codec import format_ts

KEYS = frozenset({"v", "id", "sampling_s", "calibration", "precheck"})
MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    id: str
    settings: Settings


def parse_remote_config(payload: bytes, current: Settings) -> RemoteConfig:
    """Raises AgentConfigError (a ValueError) naming what is wrong."""
    if len(payload) > MAX_BYTES:
        raise AgentConfigError(f"cfg: {len(payload)} bytes, at most {MAX_BYTES}")
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise AgentConfigError(f"cfg: not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise AgentConfigError("cfg: must be a JSON object")
    version = raw.get("v")
    if isinstance(version, bool) or version != 1:
        raise AgentConfigError(f"cfg.v: must be 1, got {version!r}")
    unknown = set(raw) - KEYS
    if unknown:
        raise AgentConfigError(f"cfg: unknown keys {sorted(unknown)}")
    cfg_id = raw.get("id")
    if not isinstance(cfg_id, str) or not 0 < len(cfg_id) <= 64:
        raise AgentConfigError("cfg.id: must be a string of 1-64 characters")
    for key in ("sampling_s", "calibration", "precheck"):
        if key in raw and raw[key] is None:
            raise AgentConfigError(f"cfg.{key}: must not be null (leave it out to keep it)")
    return RemoteConfig(cfg_id, parse_settings(raw, "cfg", current))


def readable_id(payload: bytes) -> str | None:
    """The id of a cfg that may be invalid, so that a rejection can name it. An oversized
    payload is not parsed for it: parsing 1 MB of JSON took 12 MB here (a node is small)."""
    if len(payload) > MAX_BYTES:
        return None
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    cfg_id = raw.get("id") if isinstance(raw, dict) else None
    return cfg_id if isinstance(cfg_id, str) and 0 < len(cfg_id) <= 64 else None


def encode_cfg_ack(node: str, cfg_id: str | None, status: str, reason: str | None,
                   now: float) -> bytes:  # fmt: skip
    return orjson.dumps({"v": 1, "node": node, "id": cfg_id, "status": status, "reason": reason,
                         "ts": format_ts(round(now * 1000))})  # fmt: skip
