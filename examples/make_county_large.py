"""Write examples/county_large.yaml: a realistic grid file for a whole county.

青山县 (qingshan) is made up, as are its places and people: 12 townships, about 120 villages
and 400 nodes (mostly air, water nodes along the river, noise nodes in the town centres, two
permit sites), 网格员 per village, a 网格长 and a deputy per township and three duty officers
of the county's 生态环境局, with weekly rosters. The seed is fixed, so the file is the same on
every run:

    .venv/bin/python examples/make_county_large.py
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent / "county_large.yaml"
SEED = 6  # issue #6
COUNTY = "qingshan"
AIR = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3"]
WATER = ["COD", "NH3-N", "DO", "pH"]

# (id, name, centre lat, centre lon); 街道 are the county town, 镇 and 乡 rural
TOWNSHIPS = [
    ("chengguan", "城关街道", 36.150, 118.250),
    ("dongcheng", "东城街道", 36.155, 118.310),
    ("shiqiao", "石桥镇", 36.260, 118.180),
    ("liulin", "柳林镇", 36.300, 118.330),
    ("hekou", "河口镇", 36.040, 118.400),
    ("baita", "白塔镇", 36.080, 118.120),
    ("longquan", "龙泉镇", 36.380, 118.060),  # mountains and a reservoir: scenic, class 1
    ("huangzhuang", "黄庄镇", 35.980, 118.260),
    ("yangji", "杨集乡", 36.210, 118.470),
    ("madian", "马店乡", 35.930, 118.420),
    ("gaofeng", "高峰乡", 36.420, 118.240),
    ("qingshi", "青石乡", 36.330, 118.520),
]
STREET_OFFICES = {"chengguan", "dongcheng"}
RIVER = {"chengguan", "shiqiao", "hekou", "baita", "longquan", "huangzhuang", "madian"}

COMMUNITIES = [
    ("dongguan", "东关"),
    ("xiguan", "西关"),
    ("nanguan", "南关"),
    ("beiguan", "北关"),
    ("fuqian", "府前"),
    ("wenhua", "文化"),
    ("xinhua", "新华"),
    ("jianshe", "建设"),
    ("renmin", "人民"),
    ("heping", "和平"),
    ("shengli", "胜利"),
    ("zhenxing", "振兴"),
    ("binhe", "滨河"),
    ("qingnian", "青年"),
]
PREFIXES = [
    ("dong", "东"),
    ("xi", "西"),
    ("nan", "南"),
    ("bei", "北"),
    ("qian", "前"),
    ("hou", "后"),
    ("da", "大"),
    ("xiao", "小"),
    ("shang", "上"),
    ("xia", "下"),
    ("xin", "新"),
    ("gu", "古"),
]
MIDDLES = [
    ("wang", "王"),
    ("li", "李"),
    ("zhang", "张"),
    ("liu", "刘"),
    ("chen", "陈"),
    ("yang", "杨"),
    ("zhao", "赵"),
    ("sun", "孙"),
    ("xing", "杏"),
    ("shi", "石"),
    ("he", "河"),
    ("song", "宋"),
    ("guo", "郭"),
    ("tao", "桃"),
]
SUFFIXES = [
    ("zhuang", "庄"),
    ("cun", ""),
    ("tun", "屯"),
    ("ying", "营"),
    ("dian", "店"),
    ("zhai", "寨"),
    ("yu", "峪"),
    ("gou", "沟"),
    ("ling", "岭"),
    ("po", "坡"),
]

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = [
    "建国",
    "志强",
    "秀英",
    "桂兰",
    "海燕",
    "国庆",
    "明",
    "伟",
    "磊",
    "静",
    "丽",
    "军",
    "勇",
    "杰",
    "娟",
    "涛",
    "超",
    "红梅",
    "玉兰",
    "春华",
    "德胜",
    "宏伟",
    "晓东",
    "立新",
    "振华",
    "丽娟",
    "玉珍",
    "文斌",
    "爱华",
    "淑芬",
    "传军",
    "新民",
    "凤英",
    "庆云",
    "学文",
    "永刚",
    "金凤",
    "保国",
    "翠萍",
    "云龙",
    "长青",
    "素梅",
    "兆峰",
    "敏",
    "鹏",
    "婷",
    "霞",
    "斌",
]

# weekly rotas; a shift ending at or before its start runs into the next day
DAY_NIGHT = [  # two 网格员: one by day on weekdays and Sundays, the other nights and Saturday
    ("mon-fri", "08:00", "20:00", 0),
    ("mon-fri", "20:00", "08:00", 1),
    ("sat", "08:00", "08:00", 1),
    ("sun", "08:00", "08:00", 0),
]
HALF_WEEK = [("mon-thu", "08:00", "08:00", 0), ("fri-sun", "08:00", "08:00", 1)]
TOWNSHIP = [  # 网格长 in office hours, the deputy nights and weekends
    ("mon-fri", "08:00", "18:00", 0),
    ("mon-fri", "18:00", "08:00", 1),
    ("sat-sun", "08:00", "08:00", 1),
]
COUNTY_DUTY = [  # 生态环境局 24-hour duty (24小时值班), handed over at 08:30
    (["mon", "thu", "sun"], "08:30", "08:30", 0),
    (["tue", "fri"], "08:30", "08:30", 1),
    (["wed", "sat"], "08:30", "08:30", 2),
]

PERMITS = [
    {
        "id": "qs-paper-001",
        "holder": "青山县晨光纸业有限公司",
        "clause": "排污许可证 91370300MA3C000001 废水总排口",
        "limits": [
            {"quantity": "COD", "period": "1h", "max": 80},
            {"quantity": "NH3-N", "period": "1h", "max": 8},
            {"quantity": "pH", "min": 6, "max": 9},
        ],
    },
    {
        "id": "qs-cement-001",
        "holder": "青山县石桥水泥有限公司",
        "clause": "排污许可证 91370300MA3C000002 厂界无组织颗粒物 (GB 4915-2013 表3)",
        "limits": [{"quantity": "PM10", "period": "1h", "max": 500}],
    },
]


class _Dumper(yaml.SafeDumper):
    """Lists of scalars and mappings of scalars (a node, a shift, an officer) on one line;
    the tree of townships and villages in blocks. No anchors: each node reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _flat(value: Any) -> bool:
    return not isinstance(value, dict | list) or (
        isinstance(value, list) and all(not isinstance(x, dict | list) for x in value)
    )


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_flat(data))


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flat = all(_flat(v) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


class _People:
    """Officers with unique made-up names."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.officers: list[dict[str, Any]] = []
        self.names: set[str] = set()

    def add(self, officer_id: str, phone_block: int, **channels: str) -> str:
        name = ""
        while not name or name in self.names:
            name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)
        self.names.add(name)
        phone = f"+86 533 {phone_block:04d} {len(self.officers):04d}"
        self.officers.append(
            {
                "id": officer_id,
                "name": name,
                "phone": phone,
                "email": f"{officer_id}@{COUNTY}.example.org",
                **channels,
            }
        )
        return officer_id


def _roster(cell: str, pattern: list[tuple[Any, str, str, int]], who: list[str]) -> dict[str, Any]:
    shifts = [
        {"days": days, "from": begin, "to": end, "officer": who[slot]}
        for days, begin, end, slot in pattern
    ]
    return {"cell": cell, "shifts": shifts}


def _village_names(rng: random.Random, t_id: str, count: int) -> list[tuple[str, str]]:
    if t_id in STREET_OFFICES:
        return [(f"{i}", f"{n}社区") for i, n in rng.sample(COMMUNITIES, count)]
    names: dict[str, str] = {}
    while len(names) < count:
        (pi, pn), (mi, mn), (si, sn) = (rng.choice(x) for x in (PREFIXES, MIDDLES, SUFFIXES))
        names.setdefault(pi + mi + si, f"{pn}{mn}{sn}村")
    return list(names.items())


class _Nodes:
    """Node ids by kind: qs-0001 air, qs-w01 water, qs-n01 noise, qs-p01 permit sites."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counts = {"air": 0, "w": 0, "n": 0, "p": 0}

    def _id(self, kind: str) -> str:
        self.counts[kind] += 1
        n = self.counts[kind]
        return f"qs-{n:04d}" if kind == "air" else f"qs-{kind}{n:02d}"

    def _at(self, lat: float, lon: float, spread: float) -> dict[str, float]:
        return {
            "lat": round(lat + self.rng.uniform(-spread, spread), 4),
            "lon": round(lon + self.rng.uniform(-spread, spread), 4),
        }

    def air(self, lat: float, lon: float, zone_class: int) -> dict[str, Any]:
        return {
            "id": self._id("air"),
            **self._at(lat, lon, 0.006),
            "zone_class": zone_class,
            "sampling_s": 60,
            "quantities": AIR,
        }

    def water(self, lat: float, lon: float, water_class: str) -> dict[str, Any]:
        return {
            "id": self._id("w"),
            **self._at(lat, lon, 0.004),
            "water_class": water_class,
            "sampling_s": 300,
            "quantities": WATER,
        }

    def noise(self, lat: float, lon: float, zone: str) -> dict[str, Any]:
        return {
            "id": self._id("n"),
            **self._at(lat, lon, 0.003),
            "noise_zone": zone,
            "sampling_s": 60,
            "quantities": ["LAeq"],
        }

    def permit_site(self, lat: float, lon: float, permit: str, **node: Any) -> dict[str, Any]:
        return {
            "id": self._id("p"),
            **self._at(lat, lon, 0.002),
            **node,
            "permit": permit,
            "sampling_s": 60,
        }


def _village_nodes(nodes: _Nodes, t_id: str, vi: int, lat: float, lon: float) -> list[Any]:
    rng = nodes.rng
    zone_class = 1 if t_id == "longquan" else 2
    found = [nodes.air(lat, lon, zone_class) for _ in range(rng.choice([2, 3, 3, 4]))]
    if t_id in RIVER and rng.random() < 0.3:
        water_class = "II" if t_id == "longquan" else rng.choice(["III", "IV"])
        found.append(nodes.water(lat, lon, water_class))
    if vi == 0 or (t_id in STREET_OFFICES and vi < 4):  # town centres and the county town
        found.append(nodes.noise(lat, lon, "1" if t_id in STREET_OFFICES and vi else "2"))
    if (t_id, vi) == ("hekou", 1):
        found.append(
            nodes.permit_site(
                lat, lon, "qs-paper-001", water_class="IV", quantities=["COD", "NH3-N", "pH"]
            )
        )
    if (t_id, vi) == ("shiqiao", 2):
        found.append(
            nodes.permit_site(lat, lon, "qs-cement-001", zone_class=2, quantities=["PM10", "SO2"])
        )
    return found


def _township(
    rng: random.Random, people: _People, nodes: _Nodes, ti: int, rosters: list[Any]
) -> dict[str, Any]:
    t_id, t_name, t_lat, t_lon = TOWNSHIPS[ti]
    chiefs = [people.add(f"chief-{t_id}", 3300 + ti), people.add(f"chief-{t_id}-deputy", 3300 + ti)]
    rosters.append(_roster(f"{COUNTY}/{t_id}", TOWNSHIP, chiefs))
    villages = []
    for vi, (v_id, v_name) in enumerate(_village_names(rng, t_id, rng.randint(8, 12))):
        lat, lon = t_lat + rng.uniform(-0.04, 0.04), t_lon + rng.uniform(-0.05, 0.05)
        two = rng.random() < 0.3
        officers = [people.add(f"off-{t_id}-{v_id}", 3400 + ti)]
        if two:
            officers.append(people.add(f"off-{t_id}-{v_id}-2", 3400 + ti))
            pattern = DAY_NIGHT if rng.random() < 0.5 else HALF_WEEK
            rosters.append(_roster(f"{COUNTY}/{t_id}/{v_id}", pattern, officers))
        villages.append(
            {
                "id": v_id,
                "name": v_name,
                "grid_officer": officers if two else officers[0],
                "nodes": _village_nodes(nodes, t_id, vi, lat, lon),
            }
        )
    return {"id": t_id, "name": t_name, "grid_chief": chiefs, "villages": villages}


def make() -> dict[str, Any]:
    rng = random.Random(SEED)
    people, nodes = _People(rng), _Nodes(rng)
    duty = [
        people.add(
            f"county-duty-{i}",
            3200,
            webhook=f"https://duty.{COUNTY}.example.org/hook/county-duty-{i}",
        )
        for i in (1, 2, 3)
    ]
    rosters = [_roster(COUNTY, COUNTY_DUTY, duty)]
    townships = [_township(rng, people, nodes, ti, rosters) for ti in range(len(TOWNSHIPS))]
    return {
        "county": {
            "id": COUNTY,
            "name": "青山县",
            "timezone": "Asia/Shanghai",
            "county_officer": duty,
        },
        "escalation": {
            "critical": {"ack_within_min": 10, "up_to": "county"},  # stricter than the default
            "major": {"ack_within_min": 60, "up_to": "county"},
            "minor": {"ack_within_min": 240, "up_to": "township"},
        },
        "officers": people.officers,
        "rosters": rosters,
        "permits": PERMITS,
        "townships": townships,
    }


HEADER = """\
# 青山县 (qingshan): a made-up county for tests and load: 12 townships, villages with their
# 网格员, 网格长 per township, 生态环境局 duty officers, weekly rosters and nodes. Places,
# people and phone numbers are illustrative. Format: docs/architecture.md (grid file).
# Generated by examples/make_county_large.py (fixed seed): edit the script, not this file.
"""


def main() -> None:
    text = yaml.dump(make(), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
    OUT.write_text(HEADER + text, "utf-8")


if __name__ == "__main__":
    main()
