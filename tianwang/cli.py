"""The ``tianwang`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from tianwang.registry import RegistryError, load_registry

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _demo(args: argparse.Namespace) -> int:
    from tianwang.demo import demo

    result = asyncio.run(demo(args.grid, args.scenario, args.var, args.speed))
    print(json.dumps(result.summary()))
    # Every reading is stored, or was rejected by ingest (and counted) for a reason.
    settled = result.readings_stored + result.readings_rejected
    return 0 if result.readings_published == settled else 1


def _edge_run(args: argparse.Namespace) -> int:
    from edge import AgentConfigError
    from tianwang.node_runtime import run_node

    try:
        return asyncio.run(run_node(args.config))
    except AgentConfigError as exc:
        print(f"invalid agent configuration: {exc}", file=sys.stderr)
        return 2


def _sim(args: argparse.Namespace) -> int:
    """A fleet of simulated nodes against a running broker, labels written for scoring."""
    from firmware_sim import ScenarioError, load_scenario, run_fleet, write_labels
    from tianwang.mqtt import BrokerAddress

    try:
        registry = load_registry(args.grid)
        scenario = load_scenario(args.scenario, registry)
        fleet = asyncio.run(run_fleet(registry, scenario, BrokerAddress.parse(args.broker),
                                      speed=args.speed))  # fmt: skip
    except (RegistryError, ScenarioError, ValueError) as exc:
        print(f"cannot run the simulation: {exc}", file=sys.stderr)
        return 2
    labels = write_labels(scenario, fleet.start, args.labels) if args.labels else 0
    print(json.dumps({"sim": "done", "nodes": len(fleet.readings_published),
                      "readings_published": sum(fleet.readings_published.values()),
                      "labels": labels, "wall_s": round(fleet.wall_s, 1)}))  # fmt: skip
    return 0


def _replay(args: argparse.Namespace) -> int:
    """Replay hourly PRSA CSV files through the daily statistics (GB 3095, HJ 633)."""
    from tianwang.replay import replay_csv
    from tianwang.standards import StandardError

    try:
        summary = replay_csv(args.csv, args.out, timezone=args.timezone,
                             pinned_edition=args.pin_edition, grade=args.grade)  # fmt: skip
    except (OSError, ValueError, StandardError) as exc:
        print(f"cannot replay: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict()))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """One ingest worker until SIGTERM (tianwang/ingest_runtime.py)."""
    from tianwang.ingest_runtime import IngestOptions, main_ingest

    try:
        return main_ingest(IngestOptions(
            grid=args.grid, broker=args.broker, var=args.var, influx_url=args.influx,
            v2_url=args.influx_v2, v2_token=args.token, v2_org=args.org, database=args.database,
            workers=args.workers, worker=args.worker, client_id=args.client_id,
            metrics_port=args.metrics_port, spool_max_mb=args.spool_max_mb,
            checkpoint_s=args.checkpoint_s, incidents_url=args.incidents,
            escalation_tick_s=args.escalation_tick_s,
        ))  # fmt: skip
    except (RegistryError, ValueError) as exc:
        print(f"cannot run ingest: {exc}", file=sys.stderr)
        return 2


def _grid_serve(args: argparse.Namespace) -> int:
    """The officer API over the incident store (grid/_api.py), until interrupted."""
    from grid import IncidentStore, Tokens, create_app, load_passwords, serve

    try:
        registry = load_registry(args.grid)
        store = IncidentStore(args.store)
        tokens = Tokens(store, load_passwords(args.passwords) if args.passwords else {})
    except (RegistryError, OSError, ValueError) as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return 2
    serve(create_app(registry, store, tokens), args.host, args.port)
    return 0


def _grid_password(args: argparse.Namespace) -> int:
    """Print the scrypt hash of a password read from stdin, for the credentials file."""
    from grid import hash_password

    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("give the password on stdin", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _check_grid(args: argparse.Namespace) -> int:
    try:
        registry = load_registry(args.grid)
    except RegistryError as exc:
        print(f"invalid grid file: {exc}", file=sys.stderr)
        return 2
    print(
        f"{registry.county_name}: {len(registry.township_names)} townships, "
        f"{len(registry.villages)} villages, {len(registry.nodes)} nodes"
    )
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    """Mosquitto configuration, ACL and credentials from the grid file (docs/operations.md,
    "Security")."""
    from tianwang.broker_security import (
        BrokerConfigError,
        Listener,
        reload_broker,
        write_broker_config,
    )
    from tianwang.pki import PkiError, ServerTls, issue_test_pki

    try:
        registry = load_registry(args.grid)
        tls = None
        if args.tls_self_signed:
            tls = issue_test_pki(args.out / "tls", tuple(args.tls_self_signed.split(",")))
        elif args.tls_cert or args.tls_key or args.tls_ca:
            if not (args.tls_cert and args.tls_key and args.tls_ca):
                raise ValueError("--tls-ca, --tls-cert and --tls-key go together")
            tls = ServerTls(args.tls_ca.resolve(), args.tls_cert.resolve(), args.tls_key.resolve())
        if args.tls_listen and tls is None:
            raise ValueError(
                "--tls-listen needs --tls-ca/--tls-cert/--tls-key or --tls-self-signed"
            )
        listeners = [
            Listener.parse(a)
            for a in args.listen or ([] if args.tls_listen else ["127.0.0.1:1883"])
        ]
        listeners += [Listener.parse(a, tls) for a in args.tls_listen or []]
        files = write_broker_config(
            registry,
            args.out,
            listeners,
            rotate=args.rotate or (),
            run_as=args.run_as,
            data_dir=args.data,
        )
        if args.reload_pid:
            reload_broker(args.reload_pid)
    except (RegistryError, BrokerConfigError, PkiError, OSError, ValueError) as exc:
        print(f"cannot write the broker configuration: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(files.summary() | {"reloaded": bool(args.reload_pid)}))
    return 0


def _dashboards_build(args: argparse.Namespace) -> int:
    """Write the Grafana provisioning tree (docs/dashboards.md)."""
    from dashboards import write_provisioning

    for path in write_provisioning(
        args.out, args.lang, args.influx, args.database, args.dashboards_path
    ):
        print(path)
    return 0


def _dashboards_push(args: argparse.Namespace) -> int:
    """Create or update the folder, data source and dashboards in a Grafana (HTTP API)."""
    from dashboards import PushError, push_dashboards

    try:
        result = push_dashboards(args.url, args.token, args.lang, args.influx, args.database)
    except PushError as exc:
        print(f"cannot push the dashboards: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"folder": result.folder, "datasource": result.datasource,
                      "dashboards": result.dashboards}))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tianwang", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a simulated county end to end")
    demo.add_argument("--grid", type=Path, default=EXAMPLES / "county.yaml")
    demo.add_argument("--scenario", type=Path, default=EXAMPLES / "scenarios" / "demo.yaml")
    demo.add_argument("--var", type=Path, default=Path("var"))
    demo.add_argument(
        "--speed", type=float, default=600.0, help="simulated seconds per real second (default 600)"
    )
    demo.set_defaults(run=_demo)

    sim = sub.add_parser("sim", help="run simulated nodes against a broker")
    sim.add_argument("--grid", type=Path, default=EXAMPLES / "county.yaml")
    sim.add_argument("--scenario", type=Path, default=EXAMPLES / "scenarios" / "demo.yaml")
    sim.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument("--labels", type=Path, help="write the ground truth here (.jsonl or .csv)")
    sim.set_defaults(run=_sim)

    replay = sub.add_parser("replay", help="daily statistics and AQI of hourly CSV records")
    replay.add_argument("csv", type=Path, nargs="+", help="UCI PRSA files, one station each")
    replay.add_argument("--out", type=Path, default=Path("var/replay"))
    replay.add_argument("--timezone", default="Asia/Shanghai")
    replay.add_argument("--pin-edition", help='GB 3095 edition for every day, e.g. "GB 3095-2012"')
    replay.add_argument("--grade", type=int, choices=(1, 2), default=2)
    replay.set_defaults(run=_replay)

    ingest = sub.add_parser("ingest", help="run one ingest worker (broker -> TSDB, detector)")
    ingest.add_argument("--grid", type=Path, required=True)
    ingest.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    ingest.add_argument("--influx", help="InfluxDB 1.x URL, e.g. http://127.0.0.1:8086")
    ingest.add_argument("--influx-v2", help="URL of a server speaking the InfluxDB v2 write API")
    ingest.add_argument("--token", default="", help="v2 API token")
    ingest.add_argument("--org", default="tianwang", help="v2 organisation")
    ingest.add_argument("--database", default="tianwang", help="1.x database or v2 bucket")
    ingest.add_argument("--var", type=Path, default=Path("var"), help="spool, checkpoint, ...")
    ingest.add_argument("--workers", type=int, default=1, help="partition workers in all")
    ingest.add_argument("--worker", type=int, default=0, help="this worker's index")
    ingest.add_argument("--client-id", default="tianwang-ingest")
    ingest.add_argument("--metrics-port", type=int, help="serve Prometheus metrics here")
    ingest.add_argument("--spool-max-mb", type=int, default=1024)
    ingest.add_argument("--checkpoint-s", type=float, default=60.0)
    ingest.add_argument("--incidents", help="SQLAlchemy URL of the incident store")
    ingest.add_argument("--escalation-tick-s", type=float,
                        help="seconds between escalation ticks (default 30)")  # fmt: skip
    ingest.set_defaults(run=_ingest)

    grid = sub.add_parser("grid", help="the officers' side: API server, credentials")
    grid_sub = grid.add_subparsers(dest="grid_command", required=True)
    grid_serve = grid_sub.add_parser("serve", help="serve the officer API (OpenAPI at /docs)")
    grid_serve.add_argument("--grid", type=Path, required=True)
    grid_serve.add_argument("--store", required=True, help="SQLAlchemy URL of the incident store")
    grid_serve.add_argument("--passwords", type=Path, help="credentials file (passwords: ...)")
    grid_serve.add_argument("--host", default="127.0.0.1")
    grid_serve.add_argument("--port", type=int, default=8080)
    grid_serve.set_defaults(run=_grid_serve)
    grid_password = grid_sub.add_parser("hash-password", help="hash a password from stdin")
    grid_password.set_defaults(run=_grid_password)

    check = sub.add_parser("check-grid", help="validate a grid file")
    check.add_argument("grid", type=Path)
    check.set_defaults(run=_check_grid)

    edge = sub.add_parser("edge", help="the edge agent of one node")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    edge_run = edge_sub.add_parser("run", help="run the agent from its configuration file")
    edge_run.add_argument("--config", type=Path, required=True)
    edge_run.set_defaults(run=_edge_run)

    broker = sub.add_parser("broker-config", help="Mosquitto config, ACL and credentials")
    broker.add_argument("--grid", type=Path, required=True)
    broker.add_argument("--out", type=Path, required=True, help="folder for the files")
    broker.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="plain MQTT listener (default 127.0.0.1:1883 without --tls-listen)",
    )
    broker.add_argument("--tls-listen", action="append", metavar="HOST:PORT")
    broker.add_argument("--tls-ca", type=Path, help="CA certificate the clients verify against")
    broker.add_argument("--tls-cert", type=Path, help="the broker's certificate")
    broker.add_argument("--tls-key", type=Path, help="the broker's private key")
    broker.add_argument(
        "--tls-self-signed",
        metavar="HOSTS",
        help="make a test CA and server certificate for these comma-separated "
        "names and addresses in OUT/tls (not for production)",
    )
    broker.add_argument("--run-as", help="user Mosquitto switches to (default: mosquitto)")
    broker.add_argument("--data", type=Path, help="persistence folder")
    broker.add_argument(
        "--rotate",
        action="append",
        metavar="USER",
        help="give this user a new password (repeatable)",
    )
    broker.add_argument("--reload-pid", type=int, help="SIGHUP this Mosquitto afterwards")
    broker.set_defaults(run=_broker_config)

    boards = sub.add_parser("dashboards", help="Grafana dashboards (docs/dashboards.md)")
    boards_sub = boards.add_subparsers(dest="dashboards_command", required=True)
    boards_build = boards_sub.add_parser("build", help="write a Grafana provisioning tree")
    boards_build.add_argument("--out", type=Path, required=True)
    boards_build.add_argument("--lang", choices=("zh", "en"), default="zh", help="titles")
    boards_build.add_argument("--influx", default="http://127.0.0.1:8086", help="InfluxDB 1.x")
    boards_build.add_argument("--database", default="tianwang")
    boards_build.add_argument(
        "--dashboards-path",
        default="/etc/grafana/provisioning/dashboards",
        help="where Grafana will find the dashboard JSON files (the provider's path)",
    )
    boards_build.set_defaults(run=_dashboards_build)
    boards_push = boards_sub.add_parser("push", help="create or update them in a Grafana")
    boards_push.add_argument("--url", required=True, help="Grafana, e.g. http://grafana:3000")
    boards_push.add_argument("--token", required=True, help="a service account token")
    boards_push.add_argument("--lang", choices=("zh", "en"), default="zh", help="titles")
    boards_push.add_argument("--influx", default="http://127.0.0.1:8086",
                             help="InfluxDB 1.x URL as Grafana reaches it")  # fmt: skip
    boards_push.add_argument("--database", default="tianwang")
    boards_push.set_defaults(run=_dashboards_push)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
