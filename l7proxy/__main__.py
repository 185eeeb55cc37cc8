"""``python -m l7proxy --config FILE [--listen HOST:PORT ...] [--workers N]``: run the
waypoint from a config file (Gateway API YAML plus a WaypointConfig document; see
``l7proxy.config``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from l7proxy.config import Limits, load_config, parse_address, waypoint_config
from l7proxy.server import describe, run_workers

_DEFAULTS = Limits()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l7proxy", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file: Gateway API objects, endpoints")
    parser.add_argument(
        "--listen", action="append", default=[], help="HOST:PORT (repeatable); overrides the file"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (SO_REUSEPORT)")
    parser.add_argument("--metrics", default=None, help="HOST:PORT for /metrics (+worker index)")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument(
        "--flows",
        default="off",
        help="L7 flows: off, count (built and dropped: benchmarks), stdout (JSON lines), "
        "or unix:PATH (the agent's flow intake socket)",
    )
    parser.add_argument(
        "--request-split",
        choices=("on", "off"),
        default="on",
        help="where each request's time went, in its flow (l7proxy.timing; default on)",
    )
    parser.add_argument("--max-connections", type=int, default=_DEFAULTS.max_connections)
    parser.add_argument("--header-timeout", type=float, default=_DEFAULTS.header_timeout)
    parser.add_argument("--idle-timeout", type=float, default=_DEFAULTS.idle_timeout)
    parser.add_argument("--max-header-bytes", type=int, default=_DEFAULTS.max_header_bytes)
    args = parser.parse_args(argv)
    try:
        loaded = load_config(args.config)
        listen = [parse_address(a) for a in args.listen]
        metrics = parse_address(args.metrics) if args.metrics else None
    except (OSError, ValueError) as exc:
        print(f"waypoint: {exc}", file=sys.stderr)
        return 2
    limits = Limits(
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        max_header_bytes=args.max_header_bytes,
    )
    if args.flows not in ("off", "count", "stdout") and not args.flows.startswith("unix:"):
        print(
            f"waypoint: --flows {args.flows!r}: expected off, count, stdout or unix:PATH",
            file=sys.stderr,
        )
        return 2
    config = waypoint_config(
        loaded, listen=listen, limits=limits, metrics=metrics,
        request_split=args.request_split == "on",
    )
    if not config.listeners:
        print(
            "waypoint: no listen address (use --listen or listeners: in the file)", file=sys.stderr
        )
        return 2
    print(
        f"waypoint: serving {describe(config.listeners)} with {args.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    return run_workers(config, args.workers, args.loop, flows=args.flows)


if __name__ == "__main__":
    raise SystemExit(main())
