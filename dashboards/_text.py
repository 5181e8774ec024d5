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
    "aqi_map": ("站点小时 AQI 地图", "Nodes by hourly AQI"),
    "status_map": ("站点在线状态地图", "Nodes by status"),
    "online": ("在线", "online"),
    "offline": ("离线", "offline"),
    "aqi_levels": ("AQI 级别分布（站点·小时）", "AQI category distribution (node-hours)"),
    "node_health": ("站点健康", "Node health"),
    "offline_now": ("当前离线站点数", "Nodes offline now"),
    "offline_series": ("离线站点数", "Nodes offline"),
    "node_status": ("站点状态", "Node status"),
    "last_health": ("站点最近健康报告", "Last health report per node"),
    "outbox": ("站点待发队列深度", "Outbox depth per node"),
    "ingest": ("接入服务健康", "Ingest health"),
    "rates": ("接入速率", "Intake rates"),
    "rejections": ("拒收数（按原因）", "Rejections by reason"),
    "lag": ("采样到检测延迟", "Sample-to-detection lag"),
    "backlog": ("待处理与缓存", "Backlog and spool"),
    "worker": ("接入进程", "Worker"),
    "county": ("县", "County"),
    "township": ("乡镇", "Township"),
    "village": ("村", "Village"),
    "node": ("站点", "Node"),
    "quantity": ("污染物", "Quantity"),
}


def text(key: str, lang: Lang, **fmt: object) -> str:
    zh, en = _TEXT[key]
    return (zh if lang == "zh" else en).format(**fmt)
