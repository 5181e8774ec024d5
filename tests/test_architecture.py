"""Architecture rules of docs/architecture.md, checked on the source's import statements."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBSYSTEMS = ("edge", "ingest", "detect", "grid", "dashboards", "firmware_sim")
COMPOSITION_ROOT = {"tianwang.cli", "tianwang.demo", "tianwang.node_runtime", "tianwang.replay",
                    "tianwang.ingest_runtime"}  # fmt: skip
# The chaos harness (a tester's tool) wires every subsystem together too.
CHAOS = ("__init__", "__main__", "_rig", "_scenarios", "_escalation", "_fleet1000")
COMPOSITION_ROOT |= {f"firmware_sim.chaos.{m}" for m in CHAOS}
# Which project packages each package may import (tianwang = the shared contracts).
ALLOWED = {
    "tianwang": {"tianwang"},
    "edge": {"tianwang"},
    "detect": {"tianwang"},
    "ingest": {"tianwang", "detect"},
    "grid": {"tianwang", "detect"},
    "firmware_sim": {"tianwang", "edge"},
    "dashboards": {"tianwang"},
}
# Third-party I/O and compute libraries live in one adapter module each.
ADAPTERS = {
    "aiomqtt": {"tianwang/mqtt.py"},
    "paho": {"tianwang/mqtt.py"},
    "gmqtt": {"ingest/_subscriber.py"},
    "numba": {
        "detect/_kernels.py",
        "detect/_regulatory_kernels.py",
        "detect/_anomaly_kernels.py",
        "detect/_drift_kernels.py",
        "detect/_episode_kernels.py",
    },
    # The incident store and its Alembic migrations (grid/migrations/), which are part of it.
    "sqlalchemy": {"grid/_store.py"}
    | {str(p.relative_to(ROOT)) for p in (ROOT / "grid" / "migrations").rglob("*.py")},
    "pymodbus": {"edge/_modbus.py"},
    "httpx": {"ingest/_influx.py", "tianwang/services.py"},
    "influxdb_client": {"ingest/_influx.py"},
    "grafana_client": {"dashboards/_push.py"},
    "requests": {"dashboards/_push.py"},
}
PROJECT = set(ALLOWED)


def _modules() -> list[Path]:
    return sorted(p for pkg in PROJECT for p in (ROOT / pkg).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_rules(path: Path) -> None:
    here = path.relative_to(ROOT).parts[0]
    module = _module_name(path)
    for name in _imports(path):
        top = name.split(".")[0]
        if module in COMPOSITION_ROOT:
            continue  # the composition root wires every subsystem together
        if top in PROJECT and top != here:
            assert top in ALLOWED[here], f"{module} imports {name}"
            assert name not in COMPOSITION_ROOT, f"{module} imports {name}"
            if top != "tianwang":
                # other subsystems only through their public surface
                assert not any(part.startswith("_") for part in name.split(".")), name
        if top in ADAPTERS:
            assert str(path.relative_to(ROOT)) in ADAPTERS[top], f"{module} imports {name}"


@pytest.mark.parametrize("package", SUBSYSTEMS)
def test_public_surface_is_exactly_all(package: str) -> None:
    module = importlib.import_module(package)
    # a subpackage another test imported (firmware_sim.chaos) is an attribute, not surface
    public = {n for n, v in vars(module).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)}  # fmt: skip
    assert set(module.__all__) == public - {"annotations"}
