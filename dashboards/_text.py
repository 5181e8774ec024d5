"""Dashboard and panel titles in Chinese and English (the ``lang`` setting)."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

_TEXT: dict[str, tuple[str, str]] = {  # key -> (zh, en)
    "station": ("站点污染物", "Station pollutants"),
    "overview": ("网格总览", "Grid overview"),
    "series": ("{q} 浓度（一级 {g1} / 二级 {g2}，{p}）", "{q} ({p} limits: Grade I {g1}, II {g2})"),
    "latest": ("各站点最新 $quantity", "Latest $quantity per node"),
    "last_seen": ("站点最后上报", "Node last seen"),
    "exceed": (
        "各乡镇每日 PM2.5 日均超二级（{g2}）站点数",
        "Nodes over the PM2.5 24h Grade II limit ({g2}) per township per day",
    ),
    "county": ("县", "County"),
    "township": ("乡镇", "Township"),
    "village": ("村", "Village"),
    "node": ("站点", "Node"),
    "quantity": ("污染物", "Quantity"),
}


def text(key: str, lang: Lang, **fmt: object) -> str:
    zh, en = _TEXT[key]
    return (zh if lang == "zh" else en).format(**fmt)
